// SPDX-License-Identifier: GPL-2.0

//! Test only: a driver that leaks a pageless MMIO mapping of a peer's BAR.
//!
//! It binds devices only through `driver_override`. The first device it binds becomes the
//! provider: P2PDMA on, BAR 2 kept in a [`Devres`] that every later probe can reach. Each
//! later device is a client: it maps the first page of that BAR for itself
//! ([`MmioMapping`]), logs how, and leaks the mapping with `core::mem::forget()`.
//!
//! A mapping through the host bridge is a device-managed resource of the client, so
//! unbinding the client must still unmap it: the selftest checks that the DMA API debug
//! layer's list of live mappings (`/sys/kernel/debug/dma-api/dump`) loses it, and the
//! layer itself reports a driver released with mappings outstanding.
//!
//! The provider is kept in a `static` and never given back: after the provider device is
//! unbound, binding it again fails with `ENODEV` until the module is reloaded, and
//! unloading the module leaks the `Devres` (a device reference). The selftest loads it
//! once and leaves it loaded.

use kernel::{
    device::Core,
    devres::Devres,
    dma::DataDirection,
    p2pdma::{
        BarIndex,
        MmioMapping,
        P2pdma,
        ProviderHandle, //
    },
    page::PAGE_SIZE,
    pci,
    prelude::*,
    sync::SetOnce, //
};

/// The provider: BAR 2 of the first device bound.
static PROVIDER: SetOnce<Devres<ProviderHandle>> = SetOnce::new();

struct LeakDriver;

kernel::pci_device_table!(
    PCI_TABLE,
    MODULE_PCI_TABLE,
    <LeakDriver as pci::Driver>::IdInfo,
    [
        // No such device (QEMU's IDs are low): devices are bound through driver_override.
        (pci::DeviceId::from_id(pci::Vendor::REDHAT, 0xffff), ()),
    ]
);

#[vtable]
impl pci::Driver for LeakDriver {
    type IdInfo = ();
    type Data<'bound> = ();

    const ID_TABLE: pci::IdTable<Self::IdInfo> = &PCI_TABLE;

    fn probe<'bound>(
        pdev: &'bound pci::Device<Core<'_>>,
        _info: &'bound Self::IdInfo,
    ) -> impl PinInit<Self::Data<'bound>, Error> + 'bound {
        if PROVIDER.as_ref().is_none() {
            provide(pdev)
        } else {
            leak(pdev)
        }
    }
}

/// The first device: BAR 2 becomes the provider that later probes map.
fn provide(pdev: &pci::Device<Core<'_>>) -> Result {
    let provider = P2pdma::init(pdev)?.provider(BarIndex::new(2)?)?;
    if !PROVIDER.populate(provider.into_devres(pdev)?) {
        return Err(EBUSY);
    }
    dev_info!(pdev, "provider: BAR 2\n");
    Ok(())
}

/// A later device: maps the provider's first page for itself and leaks the mapping.
fn leak(pdev: &pci::Device<Core<'_>>) -> Result {
    let handle = PROVIDER.as_ref().ok_or(ENODEV)?;
    let guard = handle.try_access().ok_or(ENODEV)?;
    let provider = guard.provider();
    match MmioMapping::new(
        &provider,
        pdev.as_ref(),
        0,
        PAGE_SIZE,
        DataDirection::ToDevice,
    ) {
        Ok(m) => {
            dev_info!(
                pdev,
                "client: leaking a {} mapping at {:#x}\n",
                m.map_type(),
                m.dma_address()
            );
            core::mem::forget(m);
        }
        Err(e) => dev_info!(pdev, "client: cannot map: {:?}\n", e),
    }
    Ok(())
}

kernel::module_pci_driver! {
    type: LeakDriver,
    name: "rust_p2pdma_leak",
    authors: ["p2pdma-rs developers"],
    description: "Test only: leaks a pageless P2PDMA MMIO mapping (mem::forget)",
    license: "GPL v2",
}
