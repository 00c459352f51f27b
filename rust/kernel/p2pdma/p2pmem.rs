// SPDX-License-Identifier: GPL-2.0

//! p2pmem: BAR memory with `struct page`s (a `MEMORY_DEVICE_PCI_P2PDMA` pgmap), handed out
//! from a per-device pool.

use super::{
    client::raw_clients,
    BarIndex,
    P2pdma, //
};
use crate::{
    bindings,
    device::{
        self,
        Bound,
        Core, //
    },
    devres::Devres,
    dma::DmaAddress,
    error::to_result,
    page::{
        BorrowedPage,
        PAGE_SIZE, //
    },
    pci,
    prelude::*,
    sync::aref::ARef, //
};
use core::{
    ffi::c_void,
    ptr::NonNull, //
};

/// Granule of a p2pmem resource: memory hot-plug maps whole subsections (2 MiB on x86-64).
pub const P2PMEM_ALIGN: u64 = bindings::SUBSECTION_SIZE as u64;

impl<'bound> P2pdma<'bound> {
    /// Adds `size` bytes of memory BAR `bar`, from `offset`, to the device's p2pmem pool
    /// (`pci_p2pdma_add_resource()`); a `size` of 0 takes the rest of the BAR.
    ///
    /// The memory gets `struct page`s that stay until the driver unbinds. Unbinding first
    /// removes the sysfs `p2pmem/allocate` file, which takes user mappings of it away, and
    /// then waits until every page still handed out (to [`P2pmemAlloc`]s, to I/O in flight)
    /// has been given back.
    ///
    /// Takes the device, which must be this one, in its [`Core`] context (probe): the C code
    /// sets the pool up and adds to it relying on the device lock, which also makes the
    /// `EBUSY` check below one step with the add.
    ///
    /// Fails with `EINVAL` if `pdev` is another device, if `bar` is not a memory BAR or the
    /// range is not inside it or not aligned to [`P2PMEM_ALIGN`], and with `EBUSY` if the
    /// range already has pages (added before, here or by another user of the device).
    pub fn add_p2pmem(
        &self,
        pdev: &pci::Device<Core<'_>>,
        bar: BarIndex,
        size: u64,
        offset: u64,
    ) -> Result<P2pmem<'bound>> {
        if pdev.as_raw() != self.device().as_raw() {
            return Err(EINVAL);
        }
        let provider = self.provider(bar)?;
        let bar_len = provider.len();
        let size = if size == 0 {
            bar_len.checked_sub(offset).ok_or(EINVAL)?
        } else {
            size
        };
        let start = provider.phys_start().checked_add(offset).ok_or(EINVAL)?;
        if size == 0
            || offset.checked_add(size).is_none_or(|end| end > bar_len)
            || (start | size) % P2PMEM_ALIGN != 0
        {
            return Err(EINVAL);
        }
        // The C code WARNs on a range that already has pages; refuse it instead. Ranges are
        // added whole subsections at a time, so checking one pfn per subsection finds them.
        let step = P2PMEM_ALIGN / PAGE_SIZE as u64;
        let first = start / PAGE_SIZE as u64;
        for pfn in (first..first + size / PAGE_SIZE as u64).step_by(step as usize) {
            // SAFETY: Looking a pfn up has no preconditions.
            let pgmap = unsafe { bindings::get_dev_pagemap(pfn as usize) };
            if !pgmap.is_null() {
                // SAFETY: `get_dev_pagemap()` returned a reference, given back here.
                unsafe { bindings::put_dev_pagemap(pgmap) };
                return Err(EBUSY);
            }
        }
        let size = usize::try_from(size)?;
        // SAFETY: `pdev` is bound and its device lock held (`Core`), `bar` is a memory BAR and
        // the range was checked to be inside it.
        to_result(unsafe {
            bindings::pci_p2pdma_add_resource(
                self.device().as_raw(),
                bar.get() as i32,
                size,
                offset,
            )
        })?;
        // INVARIANT: the device has a p2pmem pool now, for the rest of its binding.
        Ok(P2pmem {
            pdev: self.device(),
        })
    }
}

/// The p2pmem pool of a bound PCI device.
///
/// # Examples
///
/// ```
/// use kernel::{device::Core, p2pdma::{BarIndex, P2pdma, P2pmem}, pci};
///
/// // In probe: offer all of BAR 2 to other drivers and take 64 KiB of it for ourselves.
/// fn setup(pdev: &pci::Device<Core<'_>>) -> Result {
///     let p2p = P2pdma::init(pdev)?;
///     let pool = p2p.add_p2pmem(pdev, BarIndex::new(2)?, 0, 0)?;
///     pool.publish(true);
///     let buf = pool.alloc(64 << 10)?;
///     pr_info!("64 KiB at bus address {:#x}\n", buf.bus_addr());
///     Ok(())
///     // `buf` goes back to the pool here.
/// }
/// ```
///
/// # Invariants
///
/// `pci_p2pdma_add_resource()` succeeded for `pdev` during its current binding, so the pool
/// exists until the binding ends, which is not before `'bound` ends.
#[derive(Clone, Copy)]
pub struct P2pmem<'bound> {
    pdev: &'bound pci::Device<Bound>,
}

impl<'bound> P2pmem<'bound> {
    /// Returns the PCI device (as a plain device, see [`P2pdmaProvider::device`]).
    ///
    /// [`P2pdmaProvider::device`]: super::P2pdmaProvider::device
    pub fn device(&self) -> &'bound pci::Device {
        self.pdev
    }

    /// Makes the pool visible, or not, to [`find_p2pmem`] (`pci_p2pmem_publish()`).
    pub fn publish(&self, publish: bool) {
        // SAFETY: `pdev` has P2PDMA state (type invariant).
        unsafe { bindings::pci_p2pmem_publish(self.pdev.as_raw(), publish) };
    }

    /// Allocates `size` bytes from the pool (`pci_alloc_p2pmem()`); does not sleep.
    ///
    /// Fails with `EINVAL` for a `size` of 0 and `ENOMEM` when the pool has no room.
    pub fn alloc(&self, size: usize) -> Result<P2pmemAlloc<'_>> {
        if size == 0 {
            return Err(EINVAL);
        }
        // SAFETY: `pdev` has a p2pmem pool (type invariant).
        let addr = unsafe { bindings::pci_alloc_p2pmem(self.pdev.as_raw(), size) };
        let addr = NonNull::new(addr).ok_or(ENOMEM)?;
        // INVARIANT: `addr` is a fresh allocation of `size` bytes from the pool.
        Ok(P2pmemAlloc {
            pool: self,
            addr,
            size,
        })
    }

    /// Allocates `len` bytes from the pool as a one-entry scatterlist
    /// (`pci_p2pmem_alloc_sgl()`). May sleep.
    pub fn alloc_sgl(&self, len: u32) -> Result<P2pmemSgl<'_>> {
        if len == 0 {
            return Err(EINVAL);
        }
        let mut nents = 0;
        // SAFETY: `pdev` has a p2pmem pool (type invariant), `nents` is writable.
        let sgl = unsafe { bindings::pci_p2pmem_alloc_sgl(self.pdev.as_raw(), &mut nents, len) };
        let sgl = NonNull::new(sgl).ok_or(ENOMEM)?;
        // INVARIANT: `sgl` is a fresh scatterlist of `nents` entries from the pool.
        Ok(P2pmemSgl {
            pool: self,
            sgl,
            nents,
            len,
        })
    }

    /// Registers the pool handle as a device-managed resource, for holders that must be
    /// `'static`; access is revoked when the device is unbound.
    ///
    /// Takes the pool's device, in its [`Core`] context (probe), `EINVAL` if `pdev` is
    /// another device: a pool lent by a `Devres` guard may belong to a device whose
    /// resources are being released, and a `Devres` added then would never be revoked.
    pub fn into_devres(self, pdev: &pci::Device<Core<'_>>) -> Result<Devres<P2pmemHandle>> {
        if pdev.as_raw() != self.pdev.as_raw() {
            return Err(EINVAL);
        }
        let dev = self.pdev.as_ref();
        // INVARIANT: The `'static` copy lives only inside the handle, which lends it for no
        // longer than the handle is borrowed, within the `Devres` guard or `access()`. As
        // `pci::Bar::into_devres()`: `Devres` drops the copy at unbind, before the pool goes.
        // SAFETY: Only the lifetime changes; the copy is never used past the binding.
        let pool: P2pmem<'static> = unsafe { core::mem::transmute(self) };
        Devres::new(dev, P2pmemHandle(pool))
    }
}

/// A p2pmem allocation, given back to the pool on drop (`pci_free_p2pmem()`).
///
/// # Invariants
///
/// `addr` is an allocation of `size` bytes from the pool of `pool`, owned by this object.
pub struct P2pmemAlloc<'a> {
    pool: &'a P2pmem<'a>,
    addr: NonNull<c_void>,
    size: usize,
}

impl P2pmemAlloc<'_> {
    /// Returns the size in bytes.
    pub fn len(&self) -> usize {
        self.size
    }

    /// Returns `true` if the allocation is empty (never: empty allocations fail).
    pub fn is_empty(&self) -> bool {
        self.size == 0
    }

    /// Returns the PCI bus address of the start of the allocation
    /// (`pci_p2pmem_virt_to_bus()`), for clients behind the same switch.
    pub fn bus_addr(&self) -> DmaAddress {
        // SAFETY: `addr` is an allocation from the pool of `pdev` (type invariant).
        unsafe { bindings::pci_p2pmem_virt_to_bus(self.pool.pdev.as_raw(), self.addr.as_ptr()) }
    }

    /// Returns the `index`th page of the allocation, a pgmap-backed P2P page, or `None` if
    /// the allocation is shorter.
    pub fn page(&self, index: usize) -> Option<BorrowedPage<'_>> {
        if index >= self.size.div_ceil(PAGE_SIZE) {
            return None;
        }
        let virt = self
            .addr
            .as_ptr()
            .cast::<u8>()
            .wrapping_add(index * PAGE_SIZE);
        // SAFETY: `virt` is inside the allocation, in the pool's linear mapping.
        let page = unsafe { bindings::virt_to_page(virt.cast()) };
        // SAFETY: The page belongs to the allocation, which the borrow keeps.
        NonNull::new(page).map(|p| unsafe { BorrowedPage::from_raw(p) })
    }
}

impl Drop for P2pmemAlloc<'_> {
    fn drop(&mut self) {
        // SAFETY: `addr` is our allocation of `size` bytes from this pool (type invariant).
        unsafe {
            bindings::pci_free_p2pmem(self.pool.pdev.as_raw(), self.addr.as_ptr(), self.size)
        };
    }
}

/// A p2pmem scatterlist, given back to the pool on drop (`pci_p2pmem_free_sgl()`).
///
/// # Invariants
///
/// `sgl` is a scatterlist of `nents` entries allocated from the pool of `pool`, owned by
/// this object.
pub struct P2pmemSgl<'a> {
    pool: &'a P2pmem<'a>,
    sgl: NonNull<bindings::scatterlist>,
    nents: u32,
    len: u32,
}

impl P2pmemSgl<'_> {
    /// Returns the number of entries.
    pub fn nents(&self) -> u32 {
        self.nents
    }

    /// Returns the number of bytes.
    pub fn len(&self) -> u32 {
        self.len
    }

    /// Returns `true` if the list is empty (never: empty allocations fail).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Returns the PCI bus address of the first entry.
    pub fn bus_addr(&self) -> DmaAddress {
        // SAFETY: `sgl` is valid (type invariant); its first entry is set.
        let virt = unsafe { bindings::sg_virt(self.sgl.as_ptr()) };
        // SAFETY: `virt` is an allocation from the pool of `pdev` (type invariant).
        unsafe { bindings::pci_p2pmem_virt_to_bus(self.pool.pdev.as_raw(), virt) }
    }
}

impl Drop for P2pmemSgl<'_> {
    fn drop(&mut self) {
        // SAFETY: `sgl` is our scatterlist from this pool (type invariant).
        unsafe { bindings::pci_p2pmem_free_sgl(self.pool.pdev.as_raw(), self.sgl.as_ptr()) };
    }
}

/// Returns the published p2pmem provider closest to all of `clients`, or `None` if none can
/// serve them all (`pci_p2pmem_find_many()`). Among equally close ones, picks one at random.
///
/// May sleep.
///
/// # Examples
///
/// ```
/// use kernel::{device::Device, p2pdma::find_p2pmem};
///
/// // Where should a transfer between two devices stage its data?
/// fn staging(a: &Device, b: &Device) -> Result {
///     match find_p2pmem(&[a, b])? {
///         Some(pdev) => pr_info!("p2pmem of {}\n", pdev.as_ref().name()),
///         None => pr_info!("no p2pmem serves both: use system memory\n"),
///     }
///     Ok(())
/// }
/// ```
pub fn find_p2pmem(clients: &[&device::Device]) -> Result<Option<ARef<pci::Device>>> {
    let (mut raw, num) = raw_clients(clients)?;
    // SAFETY: `raw` holds `num` valid devices.
    let pdev = unsafe { bindings::pci_p2pmem_find_many(raw.as_mut_ptr(), num) };
    // SAFETY: A non-NULL result is a PCI device with a reference held for us;
    // `pci::Device` is a transparent wrapper of `struct pci_dev`.
    Ok(NonNull::new(pdev).map(|p| unsafe { ARef::from_raw(p.cast()) }))
}

/// A [`P2pmem`] pool held in a [`Devres`] ([`P2pmem::into_devres`]).
///
/// Neither `Copy` nor `Clone`, and it lends the pool only for as long as it is itself
/// borrowed: through the `Devres` guard or `Devres::access()`, never past the binding.
///
/// # Invariants
///
/// The pool exists while the handle is reachable, which `Devres` ends when the device is
/// unbound; the `'static` in its type is never handed out.
pub struct P2pmemHandle(P2pmem<'static>);

impl P2pmemHandle {
    /// Returns the pool, for as long as the handle is borrowed.
    pub fn pool(&self) -> P2pmem<'_> {
        self.0
    }
}
