// SPDX-License-Identifier: GPL-2.0

//! C1: a `MapState` that cached a provider lent by a `Devres` guard cannot be used after
//! the guard is gone (it would read the freed provider's bus offset).

use kernel::{
    device::Device,
    devres::Devres,
    p2pdma::{MapState, ProviderHandle},
    prelude::*,
};

#[allow(dead_code)]
fn walk(dr: &Devres<ProviderHandle>, client: &Device) -> Option<u64> {
    let mut st = MapState::new(client);
    {
        let guard = dr.try_access()?;
        #[cfg(cf_neg)]
        st.provider(&guard.provider()); //~ E0597
        #[cfg(not(cf_neg))]
        let _ = (st.provider(&guard.provider()), st.bus_addr(0));
    }
    #[cfg(cf_neg)]
    return st.bus_addr(0);
    #[cfg(not(cf_neg))]
    None
}
