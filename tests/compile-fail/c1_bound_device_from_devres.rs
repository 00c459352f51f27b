// SPDX-License-Identifier: GPL-2.0

//! C1: the device a provider kept in a `Devres` gives is a plain one, not a forged bound
//! device that would open other `Devres` of the device.

use kernel::{
    device::Bound,
    devres::Devres,
    p2pdma::ProviderHandle,
    pci,
    prelude::*,
};

#[allow(dead_code)]
fn device(dr: &Devres<ProviderHandle>) -> Option<u32> {
    let guard = dr.try_access()?;
    #[cfg(cf_neg)]
    let dev: &pci::Device<Bound> = guard.provider().device(); //~ E0308
    #[cfg(not(cf_neg))]
    let dev: &pci::Device = guard.provider().device();
    Some(u32::from(dev.vendor_id().as_raw()))
}
