// SPDX-License-Identifier: GPL-2.0

//! The map-state cache of a mapping walk.

use super::{
    MapType,
    P2pdmaProvider, //
};
use crate::{
    bindings,
    device,
    dma::DmaAddress,
    io::PhysAddr,
    page::Page, //
};
use core::{
    marker::PhantomData,
    ptr, //
};

/// Map-state cache for one mapping walk (`struct pci_p2pdma_map_state`).
///
/// A walk over the pages or ranges of a transfer asks, for each one, how `client` reaches
/// the memory. Consecutive sources almost always share a provider, so the state remembers
/// the last provider and its map type: a hit costs one pointer compare, as in C.
///
/// One cache serves both kinds of source: pgmap-backed P2P pages ([`MapState::page`]) and
/// pageless providers ([`MapState::provider`]). Both lead to the same `struct
/// p2pdma_provider` of a BAR, so switching between them keeps the cached answer when the
/// provider is the same, and asks again when it is not.
///
/// # Examples
///
/// ```
/// use kernel::{
///     device::Device,
///     p2pdma::{MapState, MapType, P2pdmaProvider},
///     page::Page,
/// };
///
/// // Count the sources of a transfer that `client` reaches by PCI bus address.
/// fn bus_sources<'a>(client: &'a Device, page: &'a Page, ranges: &[P2pdmaProvider<'a>]) -> usize {
///     let mut st = MapState::new(client);
///     // A P2P page of a provider counts; an ordinary page is `MapType::None`.
///     let mut n = usize::from(st.page(page) == MapType::BusAddr);
///     // Consecutive ranges of one provider cost one compare each.
///     n += ranges.iter().filter(|p| st.provider(p) == MapType::BusAddr).count();
///     n
/// }
/// ```
///
/// # Invariants
///
/// `state.mem` is NULL or the provider of a source seen during `'a`, and then `map` is its
/// map type for `client` and `state.map` the same value in C form. `pgmap` is NULL or the
/// `dev_pagemap` of a P2P page seen during `'a` whose provider is `state.mem`; that pgmap
/// lives for `'a` (the page is borrowed for `'a`, and P2PDMA frees a pgmap, a
/// `devm_kzalloc`'d `struct pci_p2pdma_pagemap`, only after `memunmap_pages()` has removed
/// its pages), so its address cannot be reused by another pgmap while it is cached, and
/// its provider (`p2p_pgmap->mem`) never changes.
pub struct MapState<'a> {
    state: bindings::pci_p2pdma_map_state,
    // `state.map` as a `MapType`, so that a hit costs the pointer compare alone and no
    // conversion; written only together with `state` (in `lookup()` and `page_miss()`).
    map: MapType,
    // The key of a page hit: pages of one pgmap share its provider, so a page of the
    // cached pgmap is answered without calling into C.
    pgmap: *mut bindings::dev_pagemap,
    client: &'a device::Device,
    _sources: PhantomData<&'a bindings::p2pdma_provider>,
}

impl<'a> MapState<'a> {
    /// Starts a walk for transfers between `client` and the sources it will be given.
    pub fn new(client: &'a device::Device) -> Self {
        // INVARIANT: no provider cached yet.
        Self {
            state: bindings::pci_p2pdma_map_state {
                mem: ptr::null_mut(),
                map: bindings::pci_p2pdma_map_type_PCI_P2PDMA_MAP_UNKNOWN,
            },
            map: MapType::NotSupported,
            pgmap: ptr::null_mut(),
            client,
            _sources: PhantomData,
        }
    }

    /// Returns the map type of `provider` for the client, asking the topology only when
    /// `provider` is not the one cached.
    #[inline]
    pub fn provider(&mut self, provider: &P2pdmaProvider<'a>) -> MapType {
        // The miss calls `P2pdmaProvider::map_type()`, which stays in the kernel crate
        // (`pci_p2pdma_map_type()` is not exported); only the compare is inlined.
        self.lookup(provider.as_raw(), |client| provider.map_type(client))
    }

    /// The cache rule: a hit on `key` is one pointer compare; a miss asks `miss` and
    /// remembers its answer.
    #[inline]
    pub(super) fn lookup(
        &mut self,
        key: *mut bindings::p2pdma_provider,
        miss: impl FnOnce(&device::Device) -> MapType,
    ) -> MapType {
        if ptr::eq(self.state.mem, key) {
            return self.map;
        }
        let map = miss(self.client);
        // INVARIANT: `map` is the answer for `key`, stored in both forms; no pgmap is known
        // to belong to `key`.
        self.pgmap = ptr::null_mut();
        self.state.mem = key;
        self.state.map = map.as_raw();
        self.map = map;
        map
    }

    /// Returns the map type of `page` for the client: [`MapType::None`] for ordinary memory,
    /// the cached answer for a P2P page of the cached provider, else a fresh one
    /// (`pci_p2pdma_state()`).
    ///
    /// A hit (a page of the same pgmap as the last P2P page) makes no call into C: the test
    /// of the page's kind and the pgmap compare are inlined into the caller. An ordinary
    /// page costs the same test as in C.
    #[inline]
    pub fn page(&mut self, page: &'a Page) -> MapType {
        // SAFETY: `page` is a valid page; the helper reads its flags and its folio's pgmap,
        // as `pci_p2pdma_state()` does, and needs no reference.
        let pgmap = unsafe { bindings::pci_p2pdma_page_pgmap(page.as_ptr()) };
        if pgmap.is_null() {
            return MapType::None;
        }
        if ptr::eq(pgmap, self.pgmap) {
            return self.map;
        }
        self.page_miss(page, pgmap)
    }

    /// The miss of [`Self::page`]: `pgmap` must be the pgmap of `page`, a P2P page.
    // `pci_p2pdma_state()` calls `__pci_p2pdma_update_state()`, which is not exported: the
    // miss stays in the built-in kernel crate (see `P2pdmaProvider::map_type`), so that a
    // module inlining `page()` links.
    #[inline(never)]
    fn page_miss(&mut self, page: &'a Page, pgmap: *mut bindings::dev_pagemap) -> MapType {
        let (state, client) = (&raw mut self.state, self.client.as_raw());
        // SAFETY: `state` is a valid map state, `client` a valid device, `page` a valid page.
        let raw = unsafe { bindings::pci_p2pdma_state(state, client, page.as_ptr()) };
        // Not reached for other pages (`page()` returns early), but never cache one.
        if raw == bindings::pci_p2pdma_map_type_PCI_P2PDMA_MAP_NONE {
            return MapType::None;
        }
        // INVARIANT: the C code updated `state` for the provider of `page`, a P2P page seen
        // during `'a`, whose pgmap is `pgmap` (the only caller, `page()`, passes the pgmap of
        // `page`).
        self.pgmap = pgmap;
        self.map = MapType::from_c(raw);
        self.map
    }

    /// Returns the PCI bus address of CPU physical address `paddr` of the source last looked
    /// up, if the client reaches it by bus address (`pci_p2pdma_bus_addr_map()`).
    ///
    /// As in C, `paddr` is not checked against the source: use [`P2pdmaProvider::bus_addr`]
    /// to translate a range with checks.
    pub fn bus_addr(&self, paddr: PhysAddr) -> Option<DmaAddress> {
        if self.state.mem.is_null() || self.map != MapType::BusAddr {
            return None;
        }
        // SAFETY: `state.mem` is the provider of a source seen during `'a` (type invariant),
        // valid and unchanged for `'a`.
        let offset = unsafe { (*self.state.mem).bus_offset };
        Some(paddr.wrapping_add(offset))
    }

    /// Returns the PCI bus address of `page`, which must be the page last looked up and a
    /// P2P page of the cached provider, if the client reaches it by bus address. As in C,
    /// this is not checked: after an ordinary page the cached provider's offset is used.
    pub fn page_bus_addr(&self, page: &Page) -> Option<DmaAddress> {
        // SAFETY: `page` is a valid page.
        let paddr = unsafe { bindings::page_to_phys(page.as_ptr()) };
        self.bus_addr(paddr)
    }

    /// Returns the cached map type, if a provider has been seen.
    pub fn cached(&self) -> Option<MapType> {
        (!self.state.mem.is_null()).then_some(self.map)
    }
}
