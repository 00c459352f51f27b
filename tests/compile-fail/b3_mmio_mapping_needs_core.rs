// SPDX-License-Identifier: GPL-2.0

//! B3: a pageless `MmioMapping` takes its client in the `Core` context. A mapping made from a
//! mere `&Device<Bound>` (an IRQ handler, a `Devres` guard) could add its devres node while
//! the client's resources are being released, and a leaked one would survive the unbind.

use kernel::{
    device::{Bound, Core, Device},
    dma::DataDirection,
    p2pdma::{MmioMapping, P2pdmaProvider},
    prelude::*,
};

#[allow(dead_code)]
#[cfg(cf_neg)]
fn map(p: &P2pdmaProvider<'_>, client: &Device<Bound>) -> Result {
    let m = MmioMapping::new(p, client, 0, 4096, DataDirection::ToDevice)?; //~ E0308
    drop(m);
    Ok(())
}

#[allow(dead_code)]
#[cfg(not(cf_neg))]
fn map(p: &P2pdmaProvider<'_>, client: &Device<Core<'_>>) -> Result {
    let m = MmioMapping::new(p, client, 0, 4096, DataDirection::ToDevice)?;
    drop(m);
    Ok(())
}
