// SPDX-License-Identifier: GPL-2.0

//! P2PDMA provider driver for QEMU's ivshmem-plain device.
//!
//! Enables P2PDMA on each device it binds, takes a provider for every memory BAR and
//! reports, in debugfs, the providers and the map type from each of them to every PCI
//! device of the system:
//!
//! ```text
//! /sys/kernel/debug/p2pdma_rs-<bdf>/providers   bar, CPU range, bus offset
//! /sys/kernel/debug/p2pdma_rs-<bdf>/map_types   <provider> bar<N> <client> <MAP_TYPE> <distance>
//! ```

use kernel::{
    debugfs,
    device::Core,
    devres::Devres,
    p2pdma::{
        BarIndex,
        P2pdma,
        P2pdmaProvider,
        PciDevices, //
    },
    pci,
    prelude::*,
    str::CString,
    sync::{
        aref::ARef,
        Arc, //
    },
};

/// What the debugfs files of one device read.
struct Info {
    pdev: ARef<pci::Device>,
    providers: KVec<Devres<P2pdmaProvider<'static>>>,
}

impl Info {
    fn show_providers(&self, f: &mut kernel::fmt::Formatter<'_>) -> kernel::fmt::Result {
        for p in &self.providers {
            if let Some(p) = p.try_access() {
                f.write_fmt(fmt!(
                    "bar{} start {:#x} len {:#x} bus_offset {:#x}\n",
                    p.bar().get(),
                    p.phys_start(),
                    p.len(),
                    p.bus_offset()
                ))?;
            }
        }
        Ok(())
    }

    fn show_map_types(&self, f: &mut kernel::fmt::Formatter<'_>) -> kernel::fmt::Result {
        let me = self.pdev.as_ref().name();
        for client in PciDevices::new() {
            let c = client.as_ref();
            for p in &self.providers {
                // The distance query also fills the C map-type cache quietly, so the
                // map-type query below does not log for unreachable pairs.
                let dist = p.try_access_with(|p| (p.distance_to(c), p.map_type(c), p.bar()));
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
}

#[pin_data]
struct P2pdmaRsData {
    #[pin]
    providers: debugfs::File<Arc<Info>>,
    #[pin]
    map_types: debugfs::File<Arc<Info>>,
    _dir: debugfs::Dir,
}

struct P2pdmaRs;

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

            let p2p = P2pdma::init(pdev)?;
            let mut providers = KVec::new();
            for bar in BarIndex::all() {
                // I/O and unused BARs are no providers.
                if let Ok(provider) = p2p.provider(bar) {
                    providers.push(provider.into_devres()?, GFP_KERNEL)?;
                }
            }
            dev_info!(pdev, "{} P2PDMA provider(s)\n", providers.len());

            let info = Arc::new(
                Info {
                    pdev: pdev.into(),
                    providers,
                },
                GFP_KERNEL,
            )?;
            let name = CString::try_from_fmt(fmt!("p2pdma_rs-{}", pdev.as_ref().name()))?;
            let dir = debugfs::Dir::new(&name);
            Ok(try_pin_init!(P2pdmaRsData {
                providers <- dir.read_callback_file(
                    c"providers",
                    Ok::<_, Error>(info.clone()),
                    &|i: &Arc<Info>, f| i.show_providers(f)
                ),
                map_types <- dir.read_callback_file(
                    c"map_types",
                    Ok::<_, Error>(info),
                    &|i: &Arc<Info>, f| i.show_map_types(f)
                ),
                _dir: dir,
            }? Error))
        })
    }
}

kernel::module_pci_driver! {
    type: P2pdmaRs,
    name: "p2pdma_rs",
    authors: ["p2pdma-rs developers"],
    description: "P2PDMA provider driver for QEMU ivshmem-plain, in Rust",
    license: "GPL v2",
}
