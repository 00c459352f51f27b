// SPDX-License-Identifier: GPL-2.0

//! C5: the `PagesExporter` is made in probe, with the device lock held (it adds p2pmem).

use kernel::{
    device::{Bound, Core},
    p2pdma::{BarIndex, PagesExporter},
    pci,
    prelude::*,
};

#[allow(dead_code)]
fn pages(pdev: &pci::Device<Core<'_>>, bound: &pci::Device<Bound>) -> Result {
    let bar = BarIndex::new(2)?;
    #[cfg(cf_neg)]
    let _ = (pdev, PagesExporter::new(bound, bar, 0, 2 << 20)?); //~ E0308
    #[cfg(not(cf_neg))]
    let _ = (bound, PagesExporter::new(pdev, bar, 0, 2 << 20)?);
    Ok(())
}
