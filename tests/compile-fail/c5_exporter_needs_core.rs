// SPDX-License-Identifier: GPL-2.0

//! C5: the dma-buf `Exporter` is made in probe, with the device lock held.

use kernel::{
    device::{Bound, Core},
    p2pdma::{BarIndex, Exporter},
    pci,
    prelude::*,
};

#[allow(dead_code)]
fn export(pdev: &pci::Device<Core<'_>>, bound: &pci::Device<Bound>) -> Result {
    #[cfg(cf_neg)]
    let _ = (pdev, Exporter::new(bound, BarIndex::all())?); //~ E0308
    #[cfg(not(cf_neg))]
    let _ = (bound, Exporter::new(pdev, BarIndex::all())?);
    Ok(())
}
