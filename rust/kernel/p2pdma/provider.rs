// SPDX-License-Identifier: GPL-2.0

//! P2PDMA providers: the memory BARs of a bound PCI device.

use super::{
    client::raw_clients,
    MapType, //
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
    io::{
        PhysAddr,
        ResourceSize, //
    },
    page::PAGE_SIZE,
    pci,
    prelude::*, //
};
use core::ptr::NonNull;

/// Index of a standard PCI BAR, the only BARs that can be P2PDMA providers.
///
/// `pcim_p2pdma_provider()` does not check its BAR index against the six standard BARs;
/// this type does, once, when it is made.
///
/// # Invariants
///
/// The index is less than `PCI_STD_NUM_BARS`.
///
/// # Examples
///
/// ```
/// use kernel::p2pdma::BarIndex;
///
/// assert_eq!(BarIndex::new(2)?.get(), 2);
/// assert_eq!(BarIndex::new(6), Err(EINVAL)); // The ROM BAR is not a provider.
/// assert_eq!(BarIndex::all().count(), 6);
/// # Ok::<(), Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct BarIndex(u8);

impl BarIndex {
    /// Number of standard BARs (`PCI_STD_NUM_BARS`).
    pub const COUNT: u32 = bindings::PCI_STD_NUM_BARS;

    /// Makes a BAR index, or fails with `EINVAL` if `index` is not a standard BAR.
    pub const fn new(index: u32) -> Result<Self> {
        if index < Self::COUNT {
            // INVARIANT: checked above; the value fits in `u8`.
            Ok(Self(index as u8))
        } else {
            Err(EINVAL)
        }
    }

    /// Returns the index.
    pub const fn get(self) -> u32 {
        self.0 as u32
    }

    /// Iterates over the six standard BARs.
    pub fn all() -> impl Iterator<Item = BarIndex> {
        // INVARIANT: every value is below `COUNT`.
        (0..Self::COUNT as u8).map(BarIndex)
    }
}

/// P2PDMA enabled on a bound PCI device (`pcim_p2pdma_init()`).
///
/// This is the proof that the device's P2PDMA state exists; it gives out the device's
/// [`P2pdmaProvider`]s.
///
/// # Invariants
///
/// `pcim_p2pdma_init()` succeeded for `pdev` during its current binding, so
/// `pdev->p2pdma` is valid until the binding ends, which is not before `'bound` ends.
pub struct P2pdma<'bound> {
    pdev: &'bound pci::Device<Bound>,
}

impl<'bound> P2pdma<'bound> {
    /// Enables P2PDMA on `pdev` (idempotent). The state is freed when the driver unbinds.
    ///
    /// Takes the device in its [`Core`] context (probe): `pcim_p2pdma_init()` is an unlocked
    /// check-then-set that relies on the device lock.
    ///
    /// Fails with `EOPNOTSUPP` when the device's BARs cannot be mapped
    /// (`pdev->non_mappable_bars`) and `ENOMEM` when out of memory.
    pub fn init(pdev: &'bound pci::Device<Core<'_>>) -> Result<Self> {
        // SAFETY: `pdev` is a valid, bound PCI device whose device lock is held (`Core`).
        to_result(unsafe { bindings::pcim_p2pdma_init(pdev.as_raw()) })?;
        // INVARIANT: `pcim_p2pdma_init()` succeeded for this binding.
        Ok(Self { pdev })
    }

    /// Returns the PCI device.
    pub fn device(&self) -> &'bound pci::Device<Bound> {
        self.pdev
    }

    /// Returns the provider of memory BAR `bar`.
    ///
    /// Fails with `EINVAL` if `bar` is not a memory BAR (an I/O BAR, or an unused one).
    pub fn provider(&self, bar: BarIndex) -> Result<P2pdmaProvider<'bound>> {
        // `pcim_p2pdma_provider()` returns NULL, quietly, for a BAR that is not a memory
        // BAR; it WARNs only without `pcim_p2pdma_init()`, which our invariant rules out.
        // SAFETY: P2PDMA is initialised (type invariant), `bar < PCI_STD_NUM_BARS`.
        let ptr = unsafe { bindings::pcim_p2pdma_provider(self.pdev.as_raw(), bar.get() as i32) };
        let raw = NonNull::new(ptr).ok_or(EINVAL)?;
        // INVARIANT: `raw` is `pdev->p2pdma->mem[bar]` for a memory BAR, freed only when the
        // binding ends.
        Ok(P2pdmaProvider {
            raw,
            pdev: self.pdev,
            bar,
        })
    }
}

/// A P2PDMA provider: one memory BAR of a bound PCI device (`struct p2pdma_provider`).
///
/// It can be copied and shared freely while the device stays bound, and cannot be kept
/// past that: see [`P2pdmaProvider::into_devres`] for a handle that can.
///
/// # Invariants
///
/// `raw` points to the provider of memory BAR `bar` of `pdev`, which stays valid and
/// unchanged until the binding of `pdev` ends, which is not before `'bound` ends.
#[derive(Clone, Copy)]
pub struct P2pdmaProvider<'bound> {
    raw: NonNull<bindings::p2pdma_provider>,
    pdev: &'bound pci::Device<Bound>,
    bar: BarIndex,
}

// SAFETY: A provider is written once by `pcim_p2pdma_init()` and only read afterwards, and
// `pci::Device` is `Sync`; any thread may use it.
unsafe impl Send for P2pdmaProvider<'_> {}

// SAFETY: See `Send`: shared references only ever read.
unsafe impl Sync for P2pdmaProvider<'_> {}

impl<'bound> P2pdmaProvider<'bound> {
    /// Returns the BAR this provider is.
    pub fn bar(&self) -> BarIndex {
        self.bar
    }

    /// Returns the provider's PCI device.
    ///
    /// As a plain device: a bound device reference would let a holder of the provider call
    /// `Devres::access()` of other resources of the device.
    pub fn device(&self) -> &'bound pci::Device {
        self.pdev
    }

    /// Returns the CPU physical address where the BAR starts.
    pub fn phys_start(&self) -> PhysAddr {
        // A memory BAR of a bound device always has a resource: the index is valid.
        self.pdev.resource_start(self.bar.get()).unwrap_or(0)
    }

    /// Returns the BAR's length in bytes.
    pub fn len(&self) -> ResourceSize {
        self.pdev.resource_len(self.bar.get()).unwrap_or(0)
    }

    /// Returns `true` if the BAR is empty (never for a provider of an enabled device).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Returns the PCI bus address minus the CPU physical address of this BAR (wrapping).
    pub fn bus_offset(&self) -> u64 {
        // SAFETY: `raw` is valid for `'bound` (type invariant) and never written again.
        unsafe { (*self.raw.as_ptr()).bus_offset }
    }

    /// Translates the CPU physical range `[paddr, paddr + len)` of this BAR to the PCI bus
    /// address a client behind the same switch ([`MapType::BusAddr`]) must use.
    ///
    /// Fails with `ERANGE` if the range is not inside the BAR, `EINVAL` if it is empty or
    /// not page-aligned.
    pub fn bus_addr(&self, paddr: PhysAddr, len: u64) -> Result<DmaAddress> {
        Self::bus_addr_in(self.phys_start(), self.len(), self.bus_offset(), paddr, len)
    }

    /// Pure rule behind [`Self::bus_addr`]: translates the CPU physical range
    /// `[paddr, paddr + len)` of a BAR at `bar_start` of `bar_len` bytes to a PCI bus address.
    ///
    /// The range must be non-empty, page-aligned (start and length) and lie inside the BAR
    /// `[bar_start, bar_start + bar_len)`; nothing may overflow. The translation adds
    /// `bus_offset` (PCI bus address minus CPU address of the BAR) with wrapping arithmetic,
    /// as the C code does: the offset is a difference of two `u64` values and is
    /// conceptually signed.
    ///
    /// # Examples
    ///
    /// ```
    /// use kernel::p2pdma::P2pdmaProvider;
    ///
    /// // A 16 MiB BAR at 0xfc00_0000 whose bus address is 0x1000 lower.
    /// let offset = 0u64.wrapping_sub(0x1000);
    /// let bus = P2pdmaProvider::bus_addr_in(0xfc00_0000, 16 << 20, offset, 0xfc00_2000, 4096)?;
    /// assert_eq!(bus, 0xfbff_f000 + 0x2000);
    /// // Outside the BAR, or running over its end, is `ERANGE`.
    /// let f = P2pdmaProvider::bus_addr_in;
    /// assert_eq!(f(0xfc00_0000, 16 << 20, 0, 0xfd00_0000, 4096), Err(ERANGE));
    /// // Empty or not page-aligned is `EINVAL`.
    /// assert_eq!(f(0xfc00_0000, 16 << 20, 0, 0xfc00_0000, 0), Err(EINVAL));
    /// assert_eq!(f(0xfc00_0000, 16 << 20, 0, 0xfc00_0800, 4096), Err(EINVAL));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn bus_addr_in(
        bar_start: PhysAddr,
        bar_len: ResourceSize,
        bus_offset: u64,
        paddr: PhysAddr,
        len: u64,
    ) -> Result<DmaAddress> {
        let page = PAGE_SIZE as u64;
        if len == 0 || paddr % page != 0 || len % page != 0 {
            return Err(EINVAL);
        }
        let bar_end = bar_start.checked_add(bar_len).ok_or(ERANGE)?;
        let end = paddr.checked_add(len).ok_or(ERANGE)?;
        if paddr < bar_start || end > bar_end {
            return Err(ERANGE);
        }
        Ok(paddr.wrapping_add(bus_offset))
    }

    /// Returns how `client` reaches this provider (`pci_p2pdma_map_type()`).
    ///
    /// The answer is cached by the C code per provider device and client. A client that
    /// is not a PCI device gets [`MapType::NotSupported`].
    // `pci_p2pdma_map_type()` is not exported: this non-generic, never-inlined function
    // keeps the call inside the built-in kernel crate, so modules call this exported
    // Rust symbol instead (the pattern of `devres::base`).
    #[inline(never)]
    pub fn map_type(&self, client: &device::Device) -> MapType {
        // SAFETY: `raw` is valid for `'bound` (type invariant), `client` is a valid device.
        let raw = unsafe { bindings::pci_p2pdma_map_type(self.raw.as_ptr(), client.as_raw()) };
        MapType::from_c(raw)
    }

    /// Returns the PCI distance from this provider's device to `client`, or `None` if the
    /// client cannot reach it (`pci_p2pdma_distance()`). Does not sleep.
    ///
    /// Unlike [`Self::map_type`], a client that is not a PCI device is judged by its
    /// closest PCI parent.
    pub fn distance_to(&self, client: &device::Device) -> Option<u32> {
        let mut raw = [client.as_raw()];
        // SAFETY: `pdev` is a valid PCI device and `raw` holds one valid device.
        let dist = unsafe {
            bindings::pci_p2pdma_distance_many(self.pdev.as_raw(), raw.as_mut_ptr(), 1, false)
        };
        u32::try_from(dist).ok()
    }

    /// Returns the sum of the PCI distances from this provider's device to `clients`, or
    /// `None` if any of them cannot reach it (`pci_p2pdma_distance_many()`).
    ///
    /// Allocates, so it may sleep; see [`Self::distance_to`] for a single client.
    pub fn distance(&self, clients: &[&device::Device]) -> Result<Option<u32>> {
        let (mut raw, num) = raw_clients(clients)?;
        // SAFETY: `pdev` is a valid PCI device and `raw` holds `num` valid devices.
        let dist = unsafe {
            bindings::pci_p2pdma_distance_many(self.pdev.as_raw(), raw.as_mut_ptr(), num, false)
        };
        Ok(u32::try_from(dist).ok())
    }

    /// Registers the provider as a device-managed resource, for holders that must be
    /// `'static`; access is revoked when the device is unbound.
    ///
    /// Takes the provider's device, in its [`Core`] context (probe), `EINVAL` if `pdev` is
    /// another device: a provider lent by a `Devres` guard may belong to a device whose
    /// resources are being released, and a `Devres` added then would never be revoked.
    pub fn into_devres(self, pdev: &pci::Device<Core<'_>>) -> Result<Devres<ProviderHandle>> {
        if pdev.as_raw() != self.pdev.as_raw() {
            return Err(EINVAL);
        }
        let dev = self.pdev.as_ref();
        // INVARIANT: The `'static` copy lives only inside the handle, which lends it for no
        // longer than the handle is borrowed, within the `Devres` guard or `access()`. As
        // `pci::Bar::into_devres()`: `Devres` drops the copy at unbind, before the provider
        // goes (`pcim_p2pdma_init()`'s devres action, registered earlier, frees it).
        // SAFETY: Only the lifetime changes; the copy is never used past the binding.
        let provider: P2pdmaProvider<'static> = unsafe { core::mem::transmute(self) };
        Devres::new(dev, ProviderHandle(provider))
    }

    /// Returns the raw provider pointer, valid for `'bound`.
    pub(crate) fn as_raw(&self) -> *mut bindings::p2pdma_provider {
        self.raw.as_ptr()
    }
}

/// A [`P2pdmaProvider`] held in a [`Devres`] ([`P2pdmaProvider::into_devres`]).
///
/// Neither `Copy` nor `Clone`, and it lends the provider only for as long as it is itself
/// borrowed: through the `Devres` guard or `Devres::access()`, never past the binding.
///
/// # Invariants
///
/// The provider is valid while the handle is reachable, which `Devres` ends when the device
/// is unbound; the `'static` in its type is never handed out.
pub struct ProviderHandle(P2pdmaProvider<'static>);

impl ProviderHandle {
    /// Returns the provider, for as long as the handle is borrowed.
    pub fn provider(&self) -> P2pdmaProvider<'_> {
        self.0
    }
}
