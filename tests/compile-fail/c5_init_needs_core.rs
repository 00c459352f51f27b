// SPDX-License-Identifier: GPL-2.0

//! C5: `P2pdma::init()` needs the device lock, so a `Device<Bound>` is not enough.

use kernel::{p2pdma::P2pdma, pci, prelude::*};

#[cfg(cf_neg)]
#[allow(dead_code)]
fn enable(pdev: &pci::Device<kernel::device::Bound>) -> Result {
    P2pdma::init(pdev)?; //~ E0308
    Ok(())
}

#[cfg(not(cf_neg))]
#[allow(dead_code)]
fn enable(pdev: &pci::Device<kernel::device::Core<'_>>) -> Result {
    P2pdma::init(pdev)?;
    Ok(())
}
