// SPDX-License-Identifier: GPL-2.0

//! C1: a provider lent by a `Devres` guard cannot be registered again as a `Devres` of its
//! own: `into_devres()` takes the device in its `Core` context. From a guard, the device may
//! be in the middle of releasing its resources; a `Devres` added then is never revoked and
//! lends the provider after it is freed.

use kernel::{
    device::{Bound, Core},
    devres::Devres,
    p2pdma::{P2pdmaProvider, ProviderHandle},
    pci,
    prelude::*,
};

#[allow(dead_code)]
#[cfg(cf_neg)]
fn again(dr: &Devres<ProviderHandle>, pdev: &pci::Device<Bound>) -> Result<Devres<ProviderHandle>> {
    let guard = dr.try_access().ok_or(ENODEV)?;
    guard.provider().into_devres(pdev) //~ E0308
}

#[allow(dead_code)]
#[cfg(not(cf_neg))]
fn again(pdev: &pci::Device<Core<'_>>, p: P2pdmaProvider<'_>) -> Result<Devres<ProviderHandle>> {
    p.into_devres(pdev)
}
