// SPDX-License-Identifier: GPL-2.0

//! PCI peer-to-peer DMA (P2PDMA).
//!
//! C header: [`include/linux/pci-p2pdma.h`](srctree/include/linux/pci-p2pdma.h)
//!
//! A *provider* is a memory BAR of a PCI device that other devices (the *clients*) may
//! read and write directly, without going through system memory. Whether and how a
//! client can reach a provider depends on the PCI topology between them and is given by
//! its [`MapType`]: behind a common switch, the client is programmed with PCI bus
//! addresses ([`MapType::BusAddr`]); through an allowlisted host bridge, the memory is
//! mapped like any MMIO ([`MapType::ThruHostBridge`]); otherwise it cannot be done
//! ([`MapType::NotSupported`]).
//!
//! # Lifetime
//!
//! P2PDMA state lives in device-managed memory of the provider device and is freed when
//! its driver is unbound. [`P2pdma`] and [`P2pdmaProvider`] borrow the bound device
//! (`&'bound pci::Device<Bound>`), so a provider cannot be kept past the binding it
//! belongs to: driver data holding one is dropped before the device's resources are
//! released. Where a `'static` holder is needed (a debugfs file, a work item), use
//! [`P2pdmaProvider::into_devres`] or [`P2pmem::into_devres`]: the [`ProviderHandle`] or
//! [`P2pmemHandle`] in the `Devres` is neither `Copy` nor `Clone` and lends the provider or
//! pool only while the `Devres` guard (or `access()`) borrows it, and no provider or pool
//! hands out a bound device, so nothing escapes the binding.
//!
//! # Locking
//!
//! Enabling P2PDMA ([`P2pdma::init`]) and adding p2pmem ([`P2pdma::add_p2pmem`]) change the
//! device's P2PDMA state with C code that relies on the device lock, so they take the
//! device in its `Core` context (`&pci::Device<Core>`, which only the bus callbacks that
//! the driver core calls with the device lock held, such as `probe()`, have). A dma-buf
//! [`Exporter`] (which enables P2PDMA itself) and an [`Importer`] are made in `probe()` too:
//! each belongs to the binding it is made in, whose unbind revokes or detaches what it
//! made. Everything else works with a bound device.
//!
//! Every DMA mapping made for a provider must be gone before the provider's driver
//! finishes its `remove()`; for pageless providers this is the job of the mapping's
//! owner. A dma-buf [`Exporter`] revokes its importers, and an [`Importer`] detaches its
//! imports, in the PCI remove callback before the driver's `unbind`: this is
//! device-managed work, done even if the exporter or importer was leaked.
//!
//! A [`PagesExporter`] has both kinds of users at once: a range with `struct page`s that
//! user space maps (and hands to `O_DIRECT` I/O) and that importers map through dma-bufs.
//! Its revocation zaps the user mappings, waits until the pages pinned by I/O are back,
//! then revokes the importers; at unbind too, and then the pages go back to the pool.

#[cfg(CONFIG_RUST_P2PDMA_BENCH)]
pub mod bench;
mod client;
mod dmabuf;
mod import;
mod map;
mod mmio;
mod node;
mod p2pmem;
mod pages;
mod provider;
mod state;
mod unbind;

pub use client::PciDevices;
pub use dmabuf::{
    check_ranges,
    BarInfo,
    BarRange,
    Exporter,
    ExporterHandle,
    ExporterStatus,
    Revocation,
    MAX_RANGES, //
};
pub use import::{
    DmaRange,
    ImportRef,
    ImportStatus,
    Importer,
    ImporterHandle, //
};
pub use map::MapType;
pub use mmio::MmioMapping;
pub use node::{
    Node,
    NodeFile, //
};
pub use p2pmem::{
    find_p2pmem,
    P2pmem,
    P2pmemAlloc,
    P2pmemHandle,
    P2pmemSgl,
    P2PMEM_ALIGN, //
};
pub use pages::{
    PagesExporter,
    PagesHandle,
    PagesStatus,
    RevocationStages,
    PAGES_RESET_WAIT, //
};
pub use provider::{
    BarIndex,
    P2pdma,
    P2pdmaProvider,
    ProviderHandle, //
};
pub use state::MapState;
pub(crate) use unbind::before_remove;

#[cfg(CONFIG_RUST_P2PDMA_KUNIT_TEST)]
mod tests;
