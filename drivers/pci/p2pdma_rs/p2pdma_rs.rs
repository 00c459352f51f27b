// SPDX-License-Identifier: GPL-2.0

//! P2PDMA provider driver: turns a memory BAR of a PCI device into published p2pmem.
//!
//! It binds QEMU's ivshmem-plain by ID, and any other device through `driver_override` or
//! `new_id`. Module parameters choose the BAR, the offset into it and the size (both
//! multiples of 2 MiB, the memory hot-plug granule); the defaults give out all of BAR 2,
//! ivshmem-plain's shared memory:
//!
//! ```text
//! modprobe p2pdma_rs bar=2 offset=0x200000 size=0x400000
//! echo p2pdma_rs > /sys/bus/pci/devices/<bdf>/driver_override
//! echo <bdf> > /sys/bus/pci/drivers/p2pdma_rs/bind
//! ```
//!
//! User space then allocates the memory through `/sys/bus/pci/devices/<bdf>/p2pmem/allocate`
//! (a shared mmap), and can hand it to O_DIRECT I/O of a device that does peer-to-peer DMA.
//! Unbinding takes those user mappings away and then waits until every page is given back
//! (I/O in flight included): the pgmap's reference count is the lifetime guarantee.
//!
//! A reset of the device (the `reset` attribute in sysfs, a bus or slot reset) does not
//! take the memory away: the pages stay published and mapped, but the BAR does not decode
//! while the device is reset, so peer DMA into it in that window is lost and reads return
//! all-ones. The C P2PDMA API cannot hold off allocations around a reset (unpublishing only
//! hides the device from `pci_p2pmem_find_many()`, not from `pci_alloc_p2pmem()` or sysfs),
//! so this driver does not implement [`pci::Driver::reset_prepare`]: its users must not
//! reset a device whose p2pmem is in use.
//!
//! For each device it binds, the driver also enables P2PDMA, takes a provider for every
//! memory BAR, and offers in debugfs what the selftests check
//! (`/sys/kernel/debug/p2pdma_rs-<bdf>/`):
//!
//! ```text
//! providers    bar<N> start <cpu> len <len> bus_offset <off> bus <bus address|-errno>
//! map_types    <provider> bar<N> <client> <MAP_TYPE> <distance|->
//! probe        results of the checks made while probing (pageless mappings, p2pmem
//!              scatterlist, refused p2pmem resources)
//! p2pmem_alloc allocates the whole pool in chunks, reports, frees (runs on each read)
//! map_state    <client> <provider> <page> <other provider> <page again> <bus check> <page hit>
//! closest      <client> <closest published p2pmem provider|->
//! bench        map-state cache hits, Rust against C (CONFIG_RUST_P2PDMA_BENCH)
//! ```

use kernel::{
    debugfs,
    device::{
        self,
        Core, //
    },
    devres::Devres,
    dma::DataDirection,
    fmt,
    p2pdma::{
        find_p2pmem,
        BarIndex,
        MapState,
        MmioMapping,
        P2pdma,
        P2pdmaProvider,
        P2pmem,
        P2pmemHandle,
        PciDevices,
        ProviderHandle, //
    },
    page::PAGE_SIZE,
    pci,
    prelude::*,
    str::CString,
    sync::aref::ARef,
};

/// Chunk size of the `p2pmem_alloc` test.
const CHUNK: usize = 1 << 20;
/// Most chunks the `p2pmem_alloc` test takes (a 64 MiB pool).
const MAX_CHUNKS: usize = 64;

/// What the debugfs files of one device read.
struct Info {
    pdev: ARef<pci::Device>,
    providers: KVec<Devres<ProviderHandle>>,
    /// Index in `providers` of the p2pmem BAR.
    p2pmem_provider: usize,
    p2pmem: Devres<P2pmemHandle>,
    /// Text of the checks made while probing.
    probe: KVec<u8>,
}

/// Appends formatted text to `out`.
fn put(out: &mut KVec<u8>, args: fmt::Arguments<'_>) -> Result {
    let s = CString::try_from_fmt(args)?;
    Ok(out.extend_from_slice(s.to_bytes(), GFP_KERNEL)?)
}

/// How a call ended, for reports: `ok` or the negative errno.
struct Outcome(Option<Error>);

fn outcome<T>(r: &Result<T>) -> Outcome {
    Outcome(r.as_ref().err().copied())
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            None => f.write_str("ok"),
            Some(e) => f.write_fmt(fmt!("{}", e.to_errno())),
        }
    }
}

impl Info {
    fn show_providers(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in &self.providers {
            if let Some(guard) = p.try_access() {
                let p = guard.provider();
                f.write_fmt(fmt!(
                    "bar{} start {:#x} len {:#x} bus_offset {:#x} ",
                    p.bar().get(),
                    p.phys_start(),
                    p.len(),
                    p.bus_offset(),
                ))?;
                // A BAR smaller than a page has no page-granular bus range.
                match p.bus_addr(p.phys_start(), p.len()) {
                    Ok(bus) => f.write_fmt(fmt!("bus {bus:#x}\n"))?,
                    Err(e) => f.write_fmt(fmt!("bus {}\n", e.to_errno()))?,
                }
            }
        }
        Ok(())
    }

    fn show_map_types(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let me = self.pdev.as_ref().name();
        for client in PciDevices::new() {
            let c = client.as_ref();
            for p in &self.providers {
                // The distance query also fills the C map-type cache quietly, so the
                // map-type query below does not log for unreachable pairs.
                let dist = p.try_access_with(|h| {
                    let p = h.provider();
                    (p.distance_to(c), p.map_type(c), p.bar())
                });
                let Some((dist, map, bar)) = dist else {
                    return f.write_fmt(fmt!("{me} unbound\n"));
                };
                let bar = bar.get();
                let cname = c.name();
                match dist {
                    Some(d) => f.write_fmt(fmt!("{me} bar{bar} {cname} {map} {d}\n"))?,
                    None => f.write_fmt(fmt!("{me} bar{bar} {cname} {map} -\n"))?,
                }
            }
        }
        Ok(())
    }

    fn show_probe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(core::str::from_utf8(&self.probe).unwrap_or("not text\n"))
    }

    /// Takes the whole pool in chunks, then gives it back, and reports what it saw.
    fn show_p2pmem_alloc(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(pool) = self.p2pmem.try_access() else {
            return f.write_str("unbound\n");
        };
        let pool = pool.pool();
        let bus_range = self.providers[self.p2pmem_provider].try_access_with(|h| {
            let p = h.provider();
            (p.bus_addr(p.phys_start(), p.len()), p.len())
        });
        let Some((Ok(bus_start), bus_len)) = bus_range else {
            return f.write_str("unbound\n");
        };
        // Inside the RCU read section of the guards: no sleeping.
        let Ok(mut chunks) = KVec::with_capacity(MAX_CHUNKS, GFP_ATOMIC) else {
            return f.write_str("no memory\n");
        };
        let mut inside = true;
        while chunks.len() < MAX_CHUNKS {
            let Ok(chunk) = pool.alloc(CHUNK) else { break };
            let bus = chunk.bus_addr();
            inside &= bus >= bus_start && bus + CHUNK as u64 <= bus_start + bus_len;
            // Cannot fail: the capacity is reserved.
            if chunks.push(chunk, GFP_ATOMIC).is_err() {
                break;
            }
        }
        let zero = pool.alloc(0);
        let more = pool.alloc(PAGE_SIZE);
        let taken = chunks.len() * CHUNK;
        drop(chunks);
        f.write_fmt(fmt!(
            "allocated {} chunks_inside_bar {} zero {} when_full {}\n",
            taken,
            if inside { "yes" } else { "no" },
            outcome(&zero),
            outcome(&more),
        ))
    }

    /// Walks one map state per client over pgmap pages and pageless providers.
    fn show_map_state(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Any provider other than the p2pmem BAR's.
        let Some(other) = (0..self.providers.len()).find(|&i| i != self.p2pmem_provider) else {
            return f.write_str("no second provider\n");
        };
        for client in PciDevices::new() {
            let c = client.as_ref();
            let (Some(pool), Some(p2p), Some(other)) = (
                self.p2pmem.try_access(),
                self.providers[self.p2pmem_provider].try_access(),
                self.providers[other].try_access(),
            ) else {
                return f.write_str("unbound\n");
            };
            let (pool, p2p, other) = (pool.pool(), p2p.provider(), other.provider());
            let Ok(alloc) = pool.alloc(2 * PAGE_SIZE) else {
                return f.write_str("p2pmem full\n");
            };
            let (Some(page0), Some(page1)) = (alloc.page(0), alloc.page(1)) else {
                return f.write_str("no pages\n");
            };
            // Distance first, so that unreachable pairs do not log.
            let _ = (p2p.distance_to(c), other.distance_to(c));
            let mut st = MapState::new(c);
            let by_provider = st.provider(&p2p);
            let by_page = st.page(&page0);
            let bus0 = st.page_bus_addr(&page0);
            // Hits: the same provider, then another page of the same pgmap.
            let _ = st.provider(&p2p);
            let by_page_hit = st.page(&page1);
            let by_other = st.provider(&other);
            let by_page_again = st.page(&page1);
            let bus1 = st.page_bus_addr(&page1);
            let want = alloc.bus_addr();
            let bus = match (bus0, bus1) {
                (Some(b0), Some(b1)) if b0 == want && b1 == want + PAGE_SIZE as u64 => "bus_ok",
                (None, None) => "bus_none",
                _ => "bus_wrong",
            };
            f.write_fmt(fmt!(
                "{} {by_provider} {by_page} {by_other} {by_page_again} {bus} {by_page_hit}\n",
                c.name()
            ))?;
        }
        Ok(())
    }

    fn show_closest(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for client in PciDevices::new() {
            let c = client.as_ref();
            match find_p2pmem(&[c]) {
                Ok(Some(p)) => f.write_fmt(fmt!("{} {}\n", c.name(), p.as_ref().name()))?,
                Ok(None) => f.write_fmt(fmt!("{} -\n", c.name()))?,
                Err(_) => f.write_fmt(fmt!("{} error\n", c.name()))?,
            }
        }
        Ok(())
    }

    #[cfg(CONFIG_RUST_P2PDMA_BENCH)]
    fn show_bench(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use kernel::p2pdma::bench::HitCost;
        const LOOKUPS: u32 = 1_000_000;

        let (Some(pool), Some(p2p)) = (
            self.p2pmem.try_access(),
            self.providers[self.p2pmem_provider].try_access(),
        ) else {
            return f.write_str("unbound\n");
        };
        let (pool, p2p) = (pool.pool(), p2p.provider());
        let Ok(alloc) = pool.alloc(PAGE_SIZE) else {
            return f.write_str("p2pmem full\n");
        };
        let Some(page) = alloc.page(0) else {
            return f.write_str("no page\n");
        };
        let cost = HitCost::measure(&p2p, &page, self.pdev.as_ref(), LOOKUPS, 5);
        // Hundredths of a nanosecond per lookup, and thousandths of the C cost.
        let per = |ns: u64| ns * 100 / u64::from(cost.lookups);
        let ratio = |ns: u64| ns * 1000 / cost.c_page_ns.max(1);
        for (name, ns) in [
            ("rust_provider", cost.rust_provider_ns),
            ("rust_page", cost.rust_page_ns),
            ("c_page", cost.c_page_ns),
        ] {
            let (p, r) = (per(ns), ratio(ns));
            f.write_fmt(fmt!(
                "bench map_state_hit {} lookups {} ns_per_lookup {}.{:02} ratio_to_c {}.{:03}\n",
                name,
                cost.lookups,
                p / 100,
                p % 100,
                r / 1000,
                r % 1000,
            ))?;
        }
        Ok(())
    }
}

/// Checks made while probing, when the device is bound and sleeping is allowed.
fn probe_checks(
    pdev: &pci::Device<Core<'_>>,
    p2p: &P2pdma<'_>,
    providers: &[P2pdmaProvider<'_>],
    pool: &P2pmem<'_>,
    range: &Range,
) -> Result<KVec<u8>> {
    let dev: &device::Device<Core<'_>> = pdev.as_ref();
    let mut out = KVec::new();
    // Pageless mapping of the first page of each BAR for the device itself.
    for p in providers {
        let m = MmioMapping::new(p, dev, 0, PAGE_SIZE, DataDirection::Bidirectional);
        let want = p.phys_start().wrapping_add(p.bus_offset());
        match &m {
            Ok(m) => {
                let addr = if m.dma_address() == want {
                    "addr_ok"
                } else {
                    "addr_wrong"
                };
                put(
                    &mut out,
                    fmt!("mmio bar{} {} {}\n", p.bar().get(), m.map_type(), addr),
                )?
            }
            Err(_) => put(
                &mut out,
                fmt!("mmio bar{} {}\n", p.bar().get(), outcome(&m)),
            )?,
        }
        // Ranges outside the BAR or not page-aligned are refused.
        let past = MmioMapping::new(p, dev, p.len(), PAGE_SIZE, DataDirection::ToDevice);
        let odd = MmioMapping::new(p, dev, 1, PAGE_SIZE, DataDirection::ToDevice);
        put(
            &mut out,
            fmt!(
                "mmio_bad bar{} past_end {} unaligned {}\n",
                p.bar().get(),
                outcome(&past),
                outcome(&odd)
            ),
        )?;
    }
    // A scatterlist from the pool.
    let sgl = pool.alloc_sgl(1 << 16);
    match &sgl {
        Ok(s) => put(
            &mut out,
            fmt!(
                "sgl nents {} len {} bus {:#x}\n",
                s.nents(),
                s.len(),
                s.bus_addr()
            ),
        )?,
        Err(_) => put(&mut out, fmt!("sgl {}\n", outcome(&sgl)))?,
    }
    drop(sgl);
    // Refused p2pmem resources: the same range again, unaligned, outside the BAR, I/O or
    // missing BARs.
    let bar = range.bar;
    let again = p2p.add_p2pmem(pdev, bar, range.size, range.offset);
    let unaligned = p2p.add_p2pmem(pdev, bar, PAGE_SIZE as u64, 0);
    let outside = p2p.add_p2pmem(pdev, bar, 1 << 21, 1 << 40);
    let missing = p2p.add_p2pmem(pdev, BarIndex::new(1)?, 0, 0);
    put(
        &mut out,
        fmt!(
            "add_p2pmem again {} unaligned {} outside {} bar1 {}\n",
            outcome(&again),
            outcome(&unaligned),
            outcome(&outside),
            outcome(&missing),
        ),
    )?;
    Ok(out)
}

/// The debugfs directory of one device, which owns the [`Info`] its files report on.
#[pin_data]
struct P2pdmaRsData {
    #[pin]
    files: debugfs::Scope<Info>,
}

struct P2pdmaRs;

/// The part of a BAR the module parameters give out as p2pmem.
struct Range {
    bar: BarIndex,
    offset: u64,
    size: u64,
}

impl Range {
    fn from_params() -> Result<Self> {
        Ok(Self {
            bar: BarIndex::new(*module_parameters::bar.value())?,
            offset: *module_parameters::offset.value(),
            size: *module_parameters::size.value(),
        })
    }
}

kernel::pci_device_table!(
    PCI_TABLE,
    MODULE_PCI_TABLE,
    <P2pdmaRs as pci::Driver>::IdInfo,
    [
        // QEMU ivshmem-plain: BAR0 holds registers, BAR2 the shared memory.
        (
            pci::DeviceId::from_id(pci::Vendor::REDHAT_QUMRANET, 0x1110),
            ()
        ),
    ]
);

#[vtable]
impl pci::Driver for P2pdmaRs {
    type IdInfo = ();
    type Data<'bound> = P2pdmaRsData;

    const ID_TABLE: pci::IdTable<Self::IdInfo> = &PCI_TABLE;

    fn probe<'bound>(
        pdev: &'bound pci::Device<Core<'_>>,
        _info: &'bound Self::IdInfo,
    ) -> impl PinInit<Self::Data<'bound>, Error> + 'bound {
        pin_init::pin_init_scope(move || {
            pdev.enable_device_mem()?;

            let range = Range::from_params().inspect_err(|_| {
                dev_err!(pdev, "bar={} is no BAR\n", *module_parameters::bar.value());
            })?;
            let p2p = P2pdma::init(pdev)?;
            let mut providers = KVec::new();
            for bar in BarIndex::all() {
                // I/O and unused BARs are no providers.
                if let Ok(provider) = p2p.provider(bar) {
                    providers.push(provider, GFP_KERNEL)?;
                }
            }
            let bar = range.bar.get();
            let (offset, size) = (range.offset, range.size);
            let pool = p2p
                .add_p2pmem(pdev, range.bar, size, offset)
                .inspect_err(|e| {
                    dev_err!(
                        pdev,
                        "cannot add BAR{} offset {:#x} size {:#x} as p2pmem: {}\n",
                        bar,
                        offset,
                        size,
                        e.to_errno()
                    );
                })?;
            // Found: `add_p2pmem` succeeded, so the BAR is a memory BAR with a provider.
            let p2pmem_provider = providers
                .iter()
                .position(|p| p.bar() == range.bar)
                .ok_or(ENODEV)?;
            pool.publish(true);
            let probe = probe_checks(pdev, &p2p, &providers, &pool, &range)?;
            dev_info!(
                pdev,
                "p2pmem of BAR{} published, {} P2PDMA provider(s)\n",
                bar,
                providers.len()
            );

            let mut managed = KVec::with_capacity(providers.len(), GFP_KERNEL)?;
            for p in providers {
                managed.push(p.into_devres(pdev)?, GFP_KERNEL)?;
            }
            let info = Info {
                pdev: pdev.into(),
                providers: managed,
                p2pmem_provider,
                p2pmem: pool.into_devres(pdev)?,
                probe,
            };
            let name = CString::try_from_fmt(fmt!("p2pdma_rs-{}", pdev.as_ref().name()))?;
            Ok(try_pin_init!(P2pdmaRsData {
                files <- debugfs::Scope::dir(info, &name, |info, dir| {
                    dir.read_callback_file(c"providers", info, &|i: &Info, f| i.show_providers(f));
                    dir.read_callback_file(c"map_types", info, &|i: &Info, f| i.show_map_types(f));
                    dir.read_callback_file(c"probe", info, &|i: &Info, f| i.show_probe(f));
                    dir.read_callback_file(c"p2pmem_alloc", info, &|i: &Info, f| {
                        i.show_p2pmem_alloc(f)
                    });
                    dir.read_callback_file(c"map_state", info, &|i: &Info, f| i.show_map_state(f));
                    dir.read_callback_file(c"closest", info, &|i: &Info, f| i.show_closest(f));
                    #[cfg(CONFIG_RUST_P2PDMA_BENCH)]
                    dir.read_callback_file(c"bench", info, &|i: &Info, f| i.show_bench(f));
                }),
            }? Error))
        })
    }
}

kernel::module_pci_driver! {
    type: P2pdmaRs,
    name: "p2pdma_rs",
    authors: ["p2pdma-rs developers"],
    description: "P2PDMA provider: a PCI BAR as published p2pmem, in Rust",
    license: "GPL v2",
    params: {
        bar: u32 {
            default: 2,
            description: "BAR given out as p2pmem (default 2: ivshmem-plain's shared memory)",
        },
        offset: u64 {
            default: 0,
            description: "Offset into the BAR, a multiple of 2 MiB (default 0)",
        },
        size: u64 {
            default: 0,
            description: "Bytes given out, a multiple of 2 MiB (default 0: the rest of the BAR)",
        },
    },
}
