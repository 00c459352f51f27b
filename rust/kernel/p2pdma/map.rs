// SPDX-License-Identifier: GPL-2.0

//! P2PDMA map types.

use crate::{
    bindings,
    fmt,
    prelude::*, //
};

/// How a client device reaches a P2PDMA provider (`enum pci_p2pdma_map_type`).
///
/// # Examples
///
/// ```
/// use kernel::p2pdma::MapType;
///
/// assert_eq!(MapType::try_from(MapType::BusAddr.as_raw()), Ok(MapType::BusAddr));
/// // `PCI_P2PDMA_MAP_UNKNOWN` is internal to the C code and never a valid answer.
/// assert_eq!(MapType::try_from(0), Err(EINVAL));
/// assert!(MapType::BusAddr.is_p2p());
/// assert!(!MapType::NotSupported.is_p2p());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum MapType {
    /// Not a P2PDMA transfer: ordinary memory.
    None = bindings::pci_p2pdma_map_type_PCI_P2PDMA_MAP_NONE,
    /// The client cannot reach the provider (no common switch and the host bridge is not
    /// known to route peer-to-peer traffic). Mapping fails.
    NotSupported = bindings::pci_p2pdma_map_type_PCI_P2PDMA_MAP_NOT_SUPPORTED,
    /// Client and provider share a switch: the client uses PCI bus addresses and no DMA
    /// mapping is made.
    BusAddr = bindings::pci_p2pdma_map_type_PCI_P2PDMA_MAP_BUS_ADDR,
    /// Traffic goes through a host bridge that supports it: the memory is DMA-mapped as
    /// MMIO (`DMA_ATTR_MMIO`).
    ThruHostBridge = bindings::pci_p2pdma_map_type_PCI_P2PDMA_MAP_THRU_HOST_BRIDGE,
}

impl MapType {
    /// Returns the C value of this map type.
    pub const fn as_raw(self) -> bindings::pci_p2pdma_map_type {
        self as bindings::pci_p2pdma_map_type
    }

    /// Returns `true` for the two map types that allow a P2PDMA transfer.
    pub const fn is_p2p(self) -> bool {
        matches!(self, Self::BusAddr | Self::ThruHostBridge)
    }

    /// Converts a value returned by the C code, treating anything that is not a valid
    /// answer (including `PCI_P2PDMA_MAP_UNKNOWN`) as [`MapType::NotSupported`], the safe
    /// choice: such a pair is never mapped.
    pub(crate) fn from_c(raw: bindings::pci_p2pdma_map_type) -> Self {
        Self::try_from(raw).unwrap_or_else(|_| {
            crate::pr_warn_once!(
                "p2pdma: unexpected map type {}, treated as NOT_SUPPORTED\n",
                raw
            );
            Self::NotSupported
        })
    }

    /// Returns the name the C code and its documentation use for this map type.
    pub const fn name(self) -> &'static str {
        match self {
            Self::None => "NONE",
            Self::NotSupported => "NOT_SUPPORTED",
            Self::BusAddr => "BUS_ADDR",
            Self::ThruHostBridge => "THRU_HOST_BRIDGE",
        }
    }
}

impl TryFrom<bindings::pci_p2pdma_map_type> for MapType {
    type Error = Error;

    fn try_from(raw: bindings::pci_p2pdma_map_type) -> Result<Self> {
        match raw {
            bindings::pci_p2pdma_map_type_PCI_P2PDMA_MAP_NONE => Ok(Self::None),
            bindings::pci_p2pdma_map_type_PCI_P2PDMA_MAP_NOT_SUPPORTED => Ok(Self::NotSupported),
            bindings::pci_p2pdma_map_type_PCI_P2PDMA_MAP_BUS_ADDR => Ok(Self::BusAddr),
            bindings::pci_p2pdma_map_type_PCI_P2PDMA_MAP_THRU_HOST_BRIDGE => {
                Ok(Self::ThruHostBridge)
            }
            _ => Err(EINVAL),
        }
    }
}

impl fmt::Display for MapType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
