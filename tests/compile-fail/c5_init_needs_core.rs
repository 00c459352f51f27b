// SPDX-License-Identifier: GPL-2.0

//! C5: `P2pdma::init()` needs the device lock, so a `Device<Bound>` is not enough.

use kernel::{
    device::{Bound, Core},
    p2pdma::P2pdma,
    pci,
    prelude::*,
};

#[allow(dead_code)]
fn enable(pdev: &pci::Device<Core<'_>>, bound: &pci::Device<Bound>) -> Result {
    #[cfg(cf_neg)]
    let _ = (pdev, P2pdma::init(bound)?); //~ E0308
    #[cfg(not(cf_neg))]
    let _ = (bound, P2pdma::init(pdev)?);
    Ok(())
}
