// SPDX-License-Identifier: GPL-2.0

//! Pageless DMA mappings of provider ranges.

use super::{
    MapType,
    P2pdmaProvider, //
};
use crate::{
    bindings,
    device::{
        self,
        Bound, //
    },
    dma::{
        attrs,
        DataDirection,
        DmaAddress, //
    },
    prelude::*, //
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
/// The mapping borrows the provider and the bound client, so it cannot outlive either
/// binding; a mapping that must (a dma-buf attachment) has to be revoked by its owner before
/// the provider's driver finishes `remove()`.
///
/// # Examples
///
/// ```
/// use kernel::{
///     device::{Bound, Device},
///     dma::DataDirection,
///     p2pdma::{MapType, MmioMapping, P2pdmaProvider},
///     page::PAGE_SIZE,
/// };
///
/// // Give `client` the address of the first page of `provider`'s BAR, if it can reach it.
/// fn first_page<'a>(provider: &P2pdmaProvider<'a>, client: &'a Device<Bound>) -> Result<u64> {
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
/// `dma` is the DMA address, for `client`, of `len` bytes of a provider's BAR; if `map` is
/// [`MapType::ThruHostBridge`] it was mapped by `dma_map_phys(client, .., len, dir,
/// DMA_ATTR_MMIO)` and is owned by this object, else `map` is [`MapType::BusAddr`].
pub struct MmioMapping<'a> {
    client: &'a device::Device<Bound>,
    dma: DmaAddress,
    len: usize,
    dir: DataDirection,
    map: MapType,
}

impl<'a> MmioMapping<'a> {
    /// Maps `len` bytes of `provider`'s BAR, from `offset`, for DMA by `client`.
    ///
    /// The range must be page-aligned and inside the BAR (`EINVAL`, `ERANGE`). Fails with
    /// `EREMOTEIO` if `client` cannot reach the provider and `ENOMEM` if the DMA layer could
    /// not map it.
    pub fn new(
        provider: &P2pdmaProvider<'a>,
        client: &'a device::Device<Bound>,
        offset: u64,
        len: usize,
        dir: DataDirection,
    ) -> Result<Self> {
        let paddr = provider.phys_start().checked_add(offset).ok_or(ERANGE)?;
        let bus = provider.bus_addr(paddr, len as u64)?;
        let map = provider.map_type(client);
        let dma = match map {
            MapType::BusAddr => bus,
            MapType::ThruHostBridge => {
                let attrs = attrs::DMA_ATTR_MMIO.as_raw();
                // SAFETY: `client` is bound; `[paddr, paddr + len)` is MMIO of a live BAR
                // that the client reaches through the host bridge.
                let dma = unsafe {
                    bindings::dma_map_phys(client.as_raw(), paddr, len, dir.into(), attrs)
                };
                // SAFETY: `client` is a valid device and `dma` an address it was given.
                if unsafe { bindings::dma_mapping_error(client.as_raw(), dma) } != 0 {
                    return Err(ENOMEM);
                }
                dma
            }
            MapType::None | MapType::NotSupported => {
                return Err(Error::from_errno(-(bindings::EREMOTEIO as i32)))
            }
        };
        // INVARIANT: mapped above according to `map`.
        Ok(Self {
            client,
            dma,
            len,
            dir,
            map,
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
        self.map
    }
}

impl Drop for MmioMapping<'_> {
    fn drop(&mut self) {
        if self.map != MapType::ThruHostBridge {
            return;
        }
        let attrs = attrs::DMA_ATTR_MMIO.as_raw();
        // SAFETY: We own the mapping, made with these arguments (type invariant).
        unsafe {
            bindings::dma_unmap_phys(
                self.client.as_raw(),
                self.dma,
                self.len,
                self.dir.into(),
                attrs,
            )
        };
    }
}
