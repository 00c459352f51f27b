// SPDX-License-Identifier: GPL-2.0

//! KUnit tests for the pure rules of [`kernel::p2pdma`](super).

use crate::prelude::*;

#[kunit_tests(rust_p2pdma)]
mod rules {
    use crate::{
        bindings,
        p2pdma::{
            BarIndex,
            MapState,
            MapType,
            P2pdmaProvider, //
        },
        page::PAGE_SIZE,
        prelude::*, //
    };
    use core::cell::Cell;

    #[test]
    fn bar_index_bounds() {
        for i in 0..6 {
            assert_eq!(BarIndex::new(i).map(BarIndex::get), Ok(i));
        }
        assert_eq!(BarIndex::new(6), Err(EINVAL));
        assert_eq!(BarIndex::new(u32::MAX), Err(EINVAL));
        assert_eq!(BarIndex::all().map(BarIndex::get).last(), Some(5));
    }

    #[test]
    fn map_type_conversion() {
        for t in [
            MapType::None,
            MapType::NotSupported,
            MapType::BusAddr,
            MapType::ThruHostBridge,
        ] {
            assert_eq!(MapType::try_from(t.as_raw()), Ok(t));
        }
        assert_eq!(
            MapType::try_from(bindings::pci_p2pdma_map_type_PCI_P2PDMA_MAP_UNKNOWN),
            Err(EINVAL)
        );
        assert_eq!(MapType::try_from(5), Err(EINVAL));
        assert_eq!(MapType::try_from(u32::MAX), Err(EINVAL));
        // Unknown answers from C are never treated as mappable.
        assert_eq!(MapType::from_c(0), MapType::NotSupported);
        assert_eq!(MapType::from_c(77), MapType::NotSupported);
    }

    #[test]
    fn bus_addr_range_and_wrap() {
        const START: u64 = 0xfc00_0000;
        const LEN: u64 = 16 << 20;
        const P: u64 = PAGE_SIZE as u64;
        let f = P2pdmaProvider::bus_addr_in;
        // First and last page of the BAR, and all of it.
        assert_eq!(f(START, LEN, 0, START, P), Ok(START));
        assert_eq!(f(START, LEN, 0, START + LEN - P, P), Ok(START + LEN - P));
        assert_eq!(f(START, LEN, 0, START, LEN), Ok(START));
        // Below, above, running over the end.
        assert_eq!(f(START, LEN, 0, START - P, P), Err(ERANGE));
        assert_eq!(f(START, LEN, 0, START + LEN, P), Err(ERANGE));
        assert_eq!(f(START, LEN, 0, START + LEN - P, 2 * P), Err(ERANGE));
        // Empty, or not page-aligned in start or length.
        assert_eq!(f(START, LEN, 0, START, 0), Err(EINVAL));
        assert_eq!(f(START, LEN, 0, START + 1, P), Err(EINVAL));
        assert_eq!(f(START, LEN, 0, START, P + 1), Err(EINVAL));
        // Overflow of the range or of the BAR end.
        assert_eq!(f(START, LEN, 0, u64::MAX - P + 1, 2 * P), Err(ERANGE));
        let top = u64::MAX - P + 1;
        assert_eq!(f(top, 2 * P, 0, top, P), Err(ERANGE));
        // A negative bus offset wraps, as the C `paddr + bus_offset` does.
        assert_eq!(f(START, LEN, 0u64.wrapping_sub(START), START + P, P), Ok(P));
        // A bus address above 4 GiB for a BAR below it.
        assert_eq!(f(START, LEN, 1 << 40, START, P), Ok(START + (1 << 40)));
    }

    #[test]
    fn map_state_hit_miss_and_switch() -> Result {
        // Two real provider structs; only their identity matters to the cache.
        let mut a = bindings::p2pdma_provider {
            owner: core::ptr::null_mut(),
            bus_offset: 0,
        };
        let mut b = bindings::p2pdma_provider { ..a };
        let (pa, pb): (*mut _, *mut _) = (&mut a, &mut b);
        let client = crate::faux::Registration::new(c"rust_p2pdma_test", None)?;
        let mut st = MapState::new(client.as_ref());
        let misses = Cell::new(0);
        // Looks `p` up; a miss is counted and answered with `answer`.
        let mut ask = |p, answer| {
            st.lookup(p, |_| {
                misses.set(misses.get() + 1);
                answer
            })
        };

        // Miss, then a hit on the same provider: a hit gives the cached answer.
        assert_eq!(ask(pa, MapType::BusAddr), MapType::BusAddr);
        assert_eq!(ask(pa, MapType::NotSupported), MapType::BusAddr);
        assert_eq!(misses.get(), 1);
        // Switching providers asks again, and so does switching back.
        assert_eq!(ask(pb, MapType::ThruHostBridge), MapType::ThruHostBridge);
        assert_eq!(ask(pa, MapType::BusAddr), MapType::BusAddr);
        assert_eq!(misses.get(), 3);
        assert_eq!(st.cached(), Some(MapType::BusAddr));

        // An ordinary page is no P2P source: NONE, and the cached provider is kept.
        let page = crate::page::Page::alloc_page(GFP_KERNEL)?;
        assert_eq!(st.page(&page), MapType::None);
        assert_eq!(st.cached(), Some(MapType::BusAddr));
        assert_eq!(st.lookup(pa, |_| MapType::NotSupported), MapType::BusAddr);
        Ok(())
    }

    #[test]
    fn map_state_bus_addr() -> Result {
        // A provider whose bus addresses are 0x1000 below its CPU addresses.
        let mut a = bindings::p2pdma_provider {
            owner: core::ptr::null_mut(),
            bus_offset: 0u64.wrapping_sub(0x1000),
        };
        let mut b = bindings::p2pdma_provider { ..a };
        let (pa, pb): (*mut _, *mut _) = (&mut a, &mut b);
        let client = crate::faux::Registration::new(c"rust_p2pdma_test", None)?;
        let mut st = MapState::new(client.as_ref());

        // Nothing cached: no bus address.
        assert_eq!(st.bus_addr(0x10_0000), None);
        // BUS_ADDR: translated through the cached provider's offset.
        st.lookup(pa, |_| MapType::BusAddr);
        assert_eq!(st.bus_addr(0x10_0000), Some(0xf_f000));
        // Through the host bridge or not at all: no bus address.
        st.lookup(pb, |_| MapType::ThruHostBridge);
        assert_eq!(st.bus_addr(0x10_0000), None);
        st.lookup(pa, |_| MapType::NotSupported);
        assert_eq!(st.bus_addr(0x10_0000), None);
        Ok(())
    }
}
