// SPDX-License-Identifier: GPL-2.0

//! The mapping `DynamicAttachment::map()` returns borrows the buffer's reservation lock
//! (`ResvGuard`) mutably: the exporter cannot invalidate it while the lock is held, and safe
//! code on this thread can neither unlock, unmap, invalidate, nor map another attachment of
//! the buffer (whose exporter may move it, invalidating the first) while it still uses it.

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
fn attach(dev: &Device<Bound>, fd: i32) -> Result<usize> {
    let buf = DmaBuf::get(fd)?;
    let a = DynamicAttachment::new(buf.clone(), dev, DataDirection::FromDevice, Quiet)?;
    let b = DynamicAttachment::new(buf, dev, DataDirection::FromDevice, Quiet)?;
    let mut resv = a.dma_buf().lock();
    let table = a.map(&mut resv)?;
    #[cfg(cf_neg)]
    b.map(&mut resv)?; //~ E0499
    #[cfg(cf_neg)]
    a.unmap(&mut resv)?; //~ E0499
    #[cfg(cf_neg)]
    drop(resv); //~ E0505
    let n = table.iter().count();
    #[cfg(not(cf_neg))]
    {
        b.map(&mut resv)?;
        a.unmap(&mut resv)?;
        drop(resv);
    }
    Ok(n)
}
