// SPDX-License-Identifier: GPL-2.0

//! Pageless DMA mappings of provider ranges.

use super::{
    MapType,
    P2pdmaProvider, //
};
use crate::{
    alloc::flags::{
        __GFP_NOWARN,
        GFP_NOWAIT, //
    },
    bindings,
    device::{
        self,
        Bound,
        Core, //
    },
    dma::{
        attrs,
        DataDirection,
        DmaAddress, //
    },
    prelude::*, //
};
use core::{
    ffi::c_void,
    ptr::NonNull, //
};

/// A range of a provider's BAR mapped for DMA by a client device, without `struct page`s.
///
/// How it is mapped depends on how the client reaches the provider:
///
/// - [`MapType::BusAddr`]: behind a common switch the client uses PCI bus addresses; nothing
///   is mapped and nothing needs unmapping.
/// - [`MapType::ThruHostBridge`]: through the host bridge the range is mapped like any MMIO
///   (`dma_map_phys()` with `DMA_ATTR_MMIO`, an IOVA when an IOMMU translates), and unmapped
///   on drop with the same arguments.
/// - [`MapType::NotSupported`]: no mapping; [`MmioMapping::new`] fails with `EREMOTEIO`, the
///   errno the DMA API uses for P2PDMA memory a device cannot reach.
///
/// The mapping borrows the provider and the client, the latter in its [`Core`] context (a
/// bus callback, such as probe): dropped, it is unmapped within both bindings. A mapping
/// that must outlive them (a dma-buf attachment) has to be revoked by its owner before the
/// provider's driver finishes `remove()`.
///
/// A mapping through the host bridge is a device-managed resource of the client: if it is
/// leaked (`core::mem::forget()` is safe), it is unmapped when the client's driver is
/// unbound, with the client's other resources; dropping it unmaps it early. It is not
/// unmapped when the provider is unbound: until the client is, a leaked mapping keeps a DMA
/// address of the provider's BAR (with an IOMMU, a live IOVA). Mappings of a peer's BAR that
/// live longer than a callback belong behind a dma-buf exporter, whose revocation the
/// provider's driver controls.
///
/// [`MmioMapping::new`] does not sleep (except where the IOMMU attaches the client on its
/// first mapping, as in a kdump kernel): it may be called under a `Devres` guard.
///
/// # Examples
///
/// ```
/// use kernel::{
///     device::{Core, Device},
///     dma::DataDirection,
///     p2pdma::{MapType, MmioMapping, P2pdmaProvider},
///     page::PAGE_SIZE,
/// };
///
/// // Give `client` the address of the first page of `provider`'s BAR, if it can reach it.
/// fn first_page<'a>(provider: &P2pdmaProvider<'a>, client: &'a Device<Core<'_>>) -> Result<u64> {
///     let m = MmioMapping::new(provider, client, 0, PAGE_SIZE, DataDirection::ToDevice)?;
///     if m.map_type() == MapType::BusAddr {
///         pr_info!("behind one switch: bus address {:#x}\n", m.dma_address());
///     }
///     // ... program the client with `m.dma_address()` and wait for its DMA ...
///     Ok(m.dma_address())
///     // `m` is unmapped here.
/// }
/// ```
///
/// # Invariants
///
/// `client` is in its `Core` context for `'a`. `dma` is the DMA address, for `client`, of
/// `len` bytes of a provider's BAR. `node` is `Some` if the client reaches the BAR through
/// the host bridge: then `dma` was mapped by `dma_map_phys(client, .., len, dir,
/// DMA_ATTR_MMIO)` and `node` is an `unmap` devres node of `client` that holds `dma`, `len`
/// and `dir` and unmaps them when it is released, whichever of this object's drop and the
/// client's unbind comes first. `node` is `None` for [`MapType::BusAddr`].
pub struct MmioMapping<'a> {
    client: &'a device::Device<Bound>,
    dma: DmaAddress,
    len: usize,
    node: Option<NonNull<c_void>>,
}

// SAFETY: `node` is written only in `new`, before the node is added, and is then only a key
// for `devres_release()`; the
// rest are shared references to `Sync` types and plain values.
unsafe impl Send for MmioMapping<'_> {}
// SAFETY: See `Send`; `&MmioMapping` only reads plain values.
unsafe impl Sync for MmioMapping<'_> {}

/// The data of a host-bridge mapping's devres node: what unmapping it takes.
struct Unmap {
    dma: DmaAddress,
    len: usize,
    dir: DataDirection,
}

// Devres data is aligned to `ARCH_DMA_MINALIGN`, at least that of `unsigned long long`.
const _: () = assert!(core::mem::align_of::<Unmap>() <= core::mem::align_of::<u64>());

/// The devres release function of a host-bridge mapping (also the key of its nodes):
/// unmaps it.
///
/// # Safety
///
/// Called by the devres core, once, with `res` the initialised [`Unmap`] of a node that
/// [`MmioMapping::new`] added to `dev`, the device the range was mapped for.
unsafe extern "C" fn unmap(dev: *mut bindings::device, res: *mut c_void) {
    // SAFETY: `res` holds an initialised `Unmap` (function safety requirements).
    let u = unsafe { &*res.cast::<Unmap>() };
    let attrs = attrs::DMA_ATTR_MMIO.as_raw();
    // SAFETY: The range was mapped for `dev` with these arguments and is unmapped once,
    // here (function safety requirements).
    unsafe { bindings::dma_unmap_phys(dev, u.dma, u.len, u.dir.into(), attrs) };
}

/// `dr_match_t` for the [`unmap`] node at `data`: only compares pointers.
extern "C" fn is_node(_dev: *mut bindings::device, res: *mut c_void, data: *mut c_void) -> c_int {
    c_int::from(core::ptr::eq(res, data))
}

impl<'a> MmioMapping<'a> {
    /// Maps `len` bytes of `provider`'s BAR, from `offset`, for DMA by `client`.
    ///
    /// The range must be page-aligned and inside the BAR (`EINVAL`, `ERANGE`) and the
    /// direction a real one (`EINVAL` for [`DataDirection::None`]). Fails with `EREMOTEIO`
    /// if `client` cannot reach the provider and `ENOMEM` if the DMA layer could not map it.
    ///
    /// The client is in its [`Core`] context: its resources are not being released, so the
    /// mapping's devres node is added to a live list and found again on drop.
    pub fn new(
        provider: &P2pdmaProvider<'a>,
        client: &'a device::Device<Core<'_>>,
        offset: u64,
        len: usize,
        dir: DataDirection,
    ) -> Result<Self> {
        let client: &'a device::Device<Bound> = client;
        // `dma_map_phys()` has a `BUG_ON()` for it.
        if dir == DataDirection::None {
            return Err(EINVAL);
        }
        let paddr = provider.phys_start().checked_add(offset).ok_or(ERANGE)?;
        let bus = provider.bus_addr(paddr, len as u64)?;
        let (dma, node) = match provider.map_type(client) {
            MapType::BusAddr => (bus, None),
            MapType::ThruHostBridge => {
                // The node first: nothing is mapped that could not be unmapped at unbind.
                // SAFETY: Allocates a node of `unmap`; nothing else is required.
                let node = unsafe {
                    bindings::__devres_alloc_node(
                        Some(unmap),
                        core::mem::size_of::<Unmap>(),
                        (GFP_NOWAIT | __GFP_NOWARN).as_raw(),
                        bindings::NUMA_NO_NODE,
                        c"p2pdma_mmio".as_char_ptr(),
                    )
                };
                let node = NonNull::new(node).ok_or(ENOMEM)?;
                let attrs = attrs::DMA_ATTR_MMIO.as_raw();
                // SAFETY: `client` is bound; `[paddr, paddr + len)` is MMIO of a live BAR
                // that the client reaches through the host bridge.
                let dma = unsafe {
                    bindings::dma_map_phys(client.as_raw(), paddr, len, dir.into(), attrs)
                };
                // SAFETY: `client` is a valid device and `dma` an address it was given.
                if unsafe { bindings::dma_mapping_error(client.as_raw(), dma) } != 0 {
                    // SAFETY: `node` is ours and was never added.
                    unsafe { bindings::devres_free(node.as_ptr()) };
                    return Err(ENOMEM);
                }
                // SAFETY: `node` is fresh devres memory, large and aligned enough (see the
                // assertion on `Unmap`), and is never moved.
                unsafe { node.cast::<Unmap>().write(Unmap { dma, len, dir }) };
                // The client is in its `Core` context: its resources are not being released,
                // so the node joins the list released at its unbind.
                // SAFETY: `client` is bound; `node` is an initialised `unmap` node of it.
                unsafe { bindings::devres_add(client.as_raw(), node.as_ptr()) };
                (dma, Some(node))
            }
            MapType::None | MapType::NotSupported => return Err(EREMOTEIO),
        };
        // INVARIANT: mapped above, with an `unmap` node through the host bridge.
        Ok(Self {
            client,
            dma,
            len,
            node,
        })
    }

    /// Returns the address the client must use.
    pub fn dma_address(&self) -> DmaAddress {
        self.dma
    }

    /// Returns the length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Returns `true` if the mapping is empty (never: empty ranges are refused).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Returns how the client reaches the range: [`MapType::BusAddr`] or
    /// [`MapType::ThruHostBridge`].
    pub fn map_type(&self) -> MapType {
        if self.node.is_some() {
            MapType::ThruHostBridge
        } else {
            MapType::BusAddr
        }
    }
}

impl Drop for MmioMapping<'_> {
    fn drop(&mut self) {
        let Some(node) = self.node else {
            return;
        };
        // Takes the node off the client, unmaps and frees it. It is there: the client's
        // resources are released only after `'a`, a lifetime of its `Core` context.
        // SAFETY: `client` is valid (`'a`); `is_node` is a `dr_match_t`.
        let _ = unsafe {
            bindings::devres_release(
                self.client.as_raw(),
                Some(unmap),
                Some(is_node),
                node.as_ptr(),
            )
        };
    }
}
