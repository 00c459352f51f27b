// SPDX-License-Identifier: GPL-2.0

//! C1: a p2pmem pool kept in a `Devres` cannot be copied out of it and kept: the handle is
//! neither `Copy` nor `Clone` and lends the pool only while it is borrowed.

use kernel::{
    device::Bound,
    devres::Devres,
    p2pdma::{P2pmem, P2pmemHandle},
    pci,
    prelude::*,
};

#[allow(dead_code)]
fn keep_forever<T: 'static>(_: T) {}

#[allow(dead_code)]
fn copy_out(dr: &Devres<P2pmemHandle>, dev: &pci::Device<Bound>) -> Result {
    let handle = dr.access(dev.as_ref())?;
    #[cfg(cf_neg)]
    keep_forever::<P2pmem<'_>>(handle.pool()); //~ E0521 E0521
    #[cfg(not(cf_neg))]
    let _ = keep_forever::<()>;
    #[cfg(not(cf_neg))]
    handle.pool().publish(false);
    Ok(())
}
