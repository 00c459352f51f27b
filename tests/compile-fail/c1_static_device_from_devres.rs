// SPDX-License-Identifier: GPL-2.0

//! C1: no `&'static` device comes out of a provider kept in a `Devres`: the device lives
//! only as long as the guard that lent the provider.

use kernel::{devres::Devres, p2pdma::ProviderHandle, pci, prelude::*};

#[allow(dead_code)]
fn device(dr: &'static Devres<ProviderHandle>) -> Option<u32> {
    let guard = dr.try_access()?;
    #[cfg(cf_neg)]
    let dev: &'static pci::Device = guard.provider().device(); //~ E0597
    #[cfg(not(cf_neg))]
    let dev: &pci::Device = guard.provider().device();
    Some(u32::from(dev.vendor_id().as_raw()))
}
