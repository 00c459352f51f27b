// SPDX-License-Identifier: GPL-2.0

//! C5: `P2pdma::add_p2pmem()` needs the device lock, so a `Device<Bound>` is not enough,
//! even with a `P2pdma` made in probe.

use kernel::{
    device::{Bound, Core},
    p2pdma::{BarIndex, P2pdma},
    pci,
    prelude::*,
};

#[allow(dead_code)]
fn add(pdev: &pci::Device<Core<'_>>, bound: &pci::Device<Bound>) -> Result {
    let p2p = P2pdma::init(pdev)?;
    let bar = BarIndex::new(2)?;
    #[cfg(cf_neg)]
    let _ = (pdev, p2p.add_p2pmem(bound, bar, 0, 0)?); //~ E0308
    #[cfg(not(cf_neg))]
    let _ = (bound, p2p.add_p2pmem(pdev, bar, 0, 0)?);
    Ok(())
}
