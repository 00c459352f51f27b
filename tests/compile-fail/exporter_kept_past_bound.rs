// SPDX-License-Identifier: GPL-2.0

//! An `Exporter<'bound>` cannot be kept past the binding it was made in (here: handed to
//! something that keeps it forever); its `'static` handle is the way to do that. rustc
//! reports the escape once for each lifetime of the `&Device<Core<'_>>`.

use kernel::{
    device::Core,
    p2pdma::{BarIndex, Exporter, ExporterHandle},
    pci,
    prelude::*,
};

#[allow(dead_code)]
fn keep_forever<T: 'static>(_: T) {}

#[allow(dead_code)]
fn export(pdev: &pci::Device<Core<'_>>) -> Result {
    let exporter = Exporter::new(pdev, BarIndex::all())?;
    #[cfg(cf_neg)]
    keep_forever::<Exporter<'_>>(exporter); //~ E0521 E0521
    #[cfg(not(cf_neg))]
    keep_forever::<ExporterHandle>(exporter.handle());
    Ok(())
}
