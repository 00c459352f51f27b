// SPDX-License-Identifier: GPL-2.0

//! Benchmark of the map-state cache hit, Rust against C (`CONFIG_RUST_P2PDMA_BENCH`).

use super::{
    MapState,
    P2pdmaProvider, //
};
use crate::{
    bindings,
    device,
    page::Page,
    time::{
        Instant,
        Monotonic, //
    }, //
};
use core::hint::black_box;

/// Nanoseconds taken by the same number of map-state cache hits in three loops.
#[derive(Clone, Copy, Debug)]
pub struct HitCost {
    /// Lookups per loop.
    pub lookups: u32,
    /// [`MapState::provider`] on a pageless provider.
    pub rust_provider_ns: u64,
    /// [`MapState::page`] on a P2P page.
    pub rust_page_ns: u64,
    /// C `pci_p2pdma_state()` on the same P2P page.
    pub c_page_ns: u64,
}

impl HitCost {
    /// Measures `lookups` hits of each kind, for `client`, on `provider` and on `page`, a
    /// P2P page of that provider. Each loop is run `rounds` times and the fastest round kept.
    ///
    /// Does not sleep; runs for about `rounds * lookups * 3` lookups' worth of time.
    pub fn measure(
        provider: &P2pdmaProvider<'_>,
        page: &Page,
        client: &device::Device,
        lookups: u32,
        rounds: u32,
    ) -> Self {
        let mut cost = Self {
            lookups,
            rust_provider_ns: u64::MAX,
            rust_page_ns: u64::MAX,
            c_page_ns: u64::MAX,
        };
        for _ in 0..rounds {
            let mut st = MapState::new(client);
            let mut acc = st.provider(provider) as u32;
            let t = Instant::<Monotonic>::now();
            for _ in 0..lookups {
                acc = acc.wrapping_add(st.provider(black_box(provider)) as u32);
            }
            cost.rust_provider_ns = cost.rust_provider_ns.min(ns(t));

            let mut st = MapState::new(client);
            acc = acc.wrapping_add(st.page(page) as u32);
            let t = Instant::<Monotonic>::now();
            for _ in 0..lookups {
                acc = acc.wrapping_add(st.page(black_box(page)) as u32);
            }
            cost.rust_page_ns = cost.rust_page_ns.min(ns(t));
            black_box(acc);

            // SAFETY: `client` is a valid device and `page` a valid page.
            let c =
                unsafe { bindings::p2pdma_bench_c_hits(client.as_raw(), page.as_ptr(), lookups) };
            cost.c_page_ns = cost.c_page_ns.min(c);
        }
        cost
    }
}

fn ns(start: Instant<Monotonic>) -> u64 {
    u64::try_from(start.elapsed().as_nanos()).unwrap_or(0)
}
