// SPDX-License-Identifier: GPL-2.0

//! A `PagesExporter<'bound>` cannot be kept past the binding it was made in (its unbind
//! work gives the pages back to the pool); its `'static` handle is the way to do that.
//! rustc reports the escape once for each lifetime of the `&Device<Core<'_>>`.

use kernel::{
    device::Core,
    p2pdma::{BarIndex, PagesExporter, PagesHandle},
    pci,
    prelude::*,
};

#[allow(dead_code)]
fn keep_forever<T: 'static>(_: T) {}

#[allow(dead_code)]
fn pages(pdev: &pci::Device<Core<'_>>) -> Result {
    let pages = PagesExporter::new(pdev, BarIndex::new(2)?, 0, 2 << 20)?;
    #[cfg(cf_neg)]
    keep_forever::<PagesExporter<'_>>(pages); //~ E0521 E0521
    #[cfg(not(cf_neg))]
    keep_forever::<PagesHandle>(pages.handle());
    Ok(())
}
