// SPDX-License-Identifier: GPL-2.0

//! A `dma_buf::DynamicAttachment<'a, _>` borrows the binding of the device it attaches
//! (`&'a Device<Bound>`): safe code cannot keep it, or the mapping it hands out, past that
//! binding, where the unmap would run for a device whose DMA and IOMMU state are gone.

use kernel::{
    device::{Bound, Device},
    dma::DataDirection,
    dma_buf::{DmaBuf, DynamicAttachment, DynamicImporter},
    prelude::*,
};

struct Quiet;

#[vtable]
impl DynamicImporter for Quiet {
    fn stop(&self) {}
}

#[allow(dead_code)]
fn keep_forever<T: 'static>(_: T) {}

#[allow(dead_code)]
fn attach(dev: &Device<Bound>, fd: i32) -> Result {
    let buf = DmaBuf::get(fd)?;
    let attach = DynamicAttachment::new(buf, dev, DataDirection::FromDevice, Quiet)?;
    #[cfg(cf_neg)]
    keep_forever(attach); //~ E0521
    #[cfg(not(cf_neg))]
    {
        let mut resv = attach.dma_buf().lock();
        let _ranges = attach.map(&mut resv)?.iter().count();
    }
    Ok(())
}
