// SPDX-License-Identifier: GPL-2.0

//! C1: a pageless `MmioMapping` of a provider lent by a `Devres` guard cannot outlive the
//! guard (the IOMMU mapping of the BAR would outlive the provider's binding).

use kernel::{
    device::{Core, Device},
    devres::Devres,
    dma::DataDirection,
    p2pdma::{MmioMapping, ProviderHandle},
    prelude::*,
};

#[allow(dead_code)]
fn map<'a>(
    dr: &'a Devres<ProviderHandle>,
    client: &'a Device<Core<'_>>,
) -> Result<MmioMapping<'a>> {
    let guard = dr.try_access().ok_or(ENODEV)?;
    #[cfg(cf_neg)]
    return MmioMapping::new(&guard.provider(), client, 0, 4096, DataDirection::ToDevice); //~ E0515
    #[cfg(not(cf_neg))]
    {
        let m = MmioMapping::new(&guard.provider(), client, 0, 4096, DataDirection::ToDevice)?;
        drop(m);
        Err(ENODEV)
    }
}
