// SPDX-License-Identifier: GPL-2.0

//! There is no `p2pdma::Import` a driver could build from a momentary `&Device<Bound>` and
//! keep past that device's binding: every import goes through an `Importer` of the
//! binding, whose unbind work detaches it (and the general `dma_buf::DynamicAttachment`
//! borrows the binding: see `c3_attachment_kept_past_bound`).

#[cfg(cf_neg)]
#[allow(unused_imports)]
use kernel::p2pdma::Import; //~ E0432
#[allow(unused_imports)]
use kernel::{p2pdma::ImportRef, prelude::*};
