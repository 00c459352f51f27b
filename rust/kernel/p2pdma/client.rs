// SPDX-License-Identifier: GPL-2.0

//! Finding P2PDMA clients.

use crate::{
    bindings,
    device,
    pci,
    prelude::*,
    sync::aref::ARef, //
};
use core::ptr::{
    self,
    NonNull, //
};

/// Iterator over every PCI device of the system, in bus order (`pci_get_device()`).
///
/// Each device is yielded with a reference held, so it stays valid for as long as the
/// caller keeps it, even if it is hot-unplugged meanwhile.
///
/// # Examples
///
/// ```
/// use kernel::p2pdma::PciDevices;
///
/// for pdev in PciDevices::new() {
///     pr_info!("{} {:?}\n", pdev.as_ref().name(), pdev.vendor_id());
/// }
/// ```
pub struct PciDevices {
    last: Option<ARef<pci::Device>>,
}

impl PciDevices {
    /// Starts a walk over all PCI devices.
    pub fn new() -> Self {
        Self { last: None }
    }
}

impl Default for PciDevices {
    fn default() -> Self {
        Self::new()
    }
}

impl Iterator for PciDevices {
    type Item = ARef<pci::Device>;

    fn next(&mut self) -> Option<ARef<pci::Device>> {
        // `pci_get_device()` drops the reference on `from`: hand it the one `last` holds.
        let from = self
            .last
            .take()
            .map_or(ptr::null_mut(), |d| ARef::into_raw(d).as_ptr().cast());
        // SAFETY: `from` is NULL or a PCI device we own a reference to, which is consumed.
        let next = unsafe { bindings::pci_get_device(!0, !0, from) };
        let next = NonNull::new(next)?;
        // SAFETY: `pci_get_device()` returned a valid device with a reference held, which
        // the `ARef` now owns; `pci::Device` is a transparent wrapper of `struct pci_dev`.
        let dev: ARef<pci::Device> = unsafe { ARef::from_raw(next.cast()) };
        self.last = Some(dev.clone());
        Some(dev)
    }
}

/// Returns `clients` as the array of `struct device *` the C client-set queries take, and
/// its length as their `int`.
pub(super) fn raw_clients(
    clients: &[&device::Device],
) -> Result<(KVec<*mut bindings::device>, i32)> {
    let mut raw = KVec::with_capacity(clients.len(), GFP_KERNEL)?;
    for client in clients {
        raw.push(client.as_raw(), GFP_KERNEL)?;
    }
    let num = i32::try_from(raw.len())?;
    Ok((raw, num))
}
