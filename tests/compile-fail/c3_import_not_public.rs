// SPDX-License-Identifier: GPL-2.0

//! There is no public `Import` a driver could build from a momentary `&Device<Bound>` and
//! keep past that device's binding: every import goes through an `Importer` of the
//! binding, whose unbind work detaches it.

#[cfg(cf_neg)]
#[allow(unused_imports)]
use kernel::p2pdma::Import; //~ E0432
#[allow(unused_imports)]
use kernel::{p2pdma::ImportRef, prelude::*};
