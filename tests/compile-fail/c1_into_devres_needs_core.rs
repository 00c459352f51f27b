// SPDX-License-Identifier: GPL-2.0

//! C1: a provider or pool lent by a `Devres` guard cannot be registered again as a `Devres`
//! of its own: `into_devres()` takes the device in its `Core` context. From a guard, the
//! device may be in the middle of releasing its resources; a `Devres` added then is never
//! revoked and lends the provider or pool after it is freed.

use kernel::{
    device::{Bound, Core},
    devres::Devres,
    p2pdma::{P2pdmaProvider, P2pmem, P2pmemHandle, ProviderHandle},
    pci,
    prelude::*,
};

#[allow(dead_code)]
#[cfg(cf_neg)]
fn again(dr: &Devres<ProviderHandle>, pool: &Devres<P2pmemHandle>, pdev: &pci::Device<Bound>) -> Result {
    let guard = dr.try_access().ok_or(ENODEV)?;
    let _ = guard.provider().into_devres(pdev)?; //~ E0308
    let guard = pool.try_access().ok_or(ENODEV)?;
    let _ = guard.pool().into_devres(pdev)?; //~ E0308
    Ok(())
}

#[allow(dead_code)]
#[cfg(not(cf_neg))]
fn again(pdev: &pci::Device<Core<'_>>, p: P2pdmaProvider<'_>, pool: P2pmem<'_>) -> Result {
    let _ = p.into_devres(pdev)?;
    let _ = pool.into_devres(pdev)?;
    Ok(())
}
