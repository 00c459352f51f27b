// SPDX-License-Identifier: GPL-2.0

//! An `Importer<'bound>` cannot be kept past the binding of its device: imports are made
//! through its `'static` handle, whose `ImportRef`s fail with `ENODEV` once the device is
//! unbound. rustc reports the escape once for each lifetime of the `&Device<Core<'_>>`.

use kernel::{
    device::{Core, Device},
    dma::DataDirection,
    p2pdma::{ImportRef, Importer, ImporterHandle},
    prelude::*,
};

#[allow(dead_code)]
fn keep_forever<T: 'static>(_: T) {}

#[allow(dead_code)]
fn import(dev: &Device<Core<'_>>, fd: i32) -> Result {
    let importer = Importer::new(dev, DataDirection::FromDevice, || {})?;
    #[cfg(cf_neg)]
    keep_forever::<Importer<'_>>(importer); //~ E0521 E0521
    #[cfg(not(cf_neg))]
    {
        let handle: ImporterHandle = importer.handle();
        keep_forever::<ImportRef>(handle.import(fd)?);
    }
    Ok(())
}
