// SPDX-License-Identifier: GPL-2.0

//! Rust P2PDMA dma-buf importer sample for QEMU's edu device.
//!
//! A dynamic importer that allows peer-to-peer: it attaches dma-bufs (for example those of
//! `rust_p2pdma_dmabuf`), maps them for the edu device, reports the DMA addresses and the
//! map type, and makes the edu DMA engine write into them. When the exporter invalidates a
//! buffer, the importer waits for the engine (the edu cannot abort a transfer) and unmaps,
//! inside the callback; a transfer is only ever started while the mapping cannot be
//! invalidated ([`kernel::p2pdma::ImportRef::with_mapping`]).
//!
//! Each open file of `/dev/p2pdma-import-<bdf>` is one importer (`<linux/p2pdma_dmabuf.h>`):
//! `P2PDMA_IMPORT_ATTACH` (the dma-buf fd as argument), `P2PDMA_IMPORT_MAP`,
//! `P2PDMA_IMPORT_UNMAP`, `P2PDMA_IMPORT_DMA`, `P2PDMA_IMPORT_STATUS` and
//! `P2PDMA_IMPORT_DETACH`.
//!
//! The edu engine copies through its 4 KiB buffer: a write of the pattern first copies it
//! from system memory into the edu buffer, then from there into the dma-buf, peer to peer.
//!
//! The edu masks the DMA addresses it is given to its `dma_mask` (28 bits by default, a QEMU
//! device property): the `dma_bits` parameter says how wide it is. It is the device's DMA
//! mask ([`pci::Driver::dma_mask`]), and a transfer to or from an address the engine cannot
//! reach (a peer's bus address) is refused with `ERANGE` instead of landing in the wrong
//! place. At unbind the driver stops the engine for good, waits for the transfer in
//! flight and clears bus mastering, before its staging buffer and registers are released.

use kernel::{
    device::{
        Bound,
        Core, //
    },
    devres::Devres,
    dma::{
        Coherent,
        DataDirection,
        DmaMask, //
    },
    io::Io,
    ioctl::{
        _IO,
        _IOR,
        _IOW, //
        _IOWR,
    },
    new_mutex,
    p2pdma::{
        DmaRange,
        ImportRef,
        Importer,
        ImporterHandle,
        MapType,
        Node,
        NodeFile, //
    },
    pci,
    prelude::*,
    str::CString,
    sync::{
        atomic::{
            Atomic,
            Relaxed, //
        },
        Arc,
        Mutex, //
    },
    time::{
        delay::fsleep,
        Delta, //
    },
    uaccess::{
        UserPtr,
        UserSlice, //
    },
    uapi, //
};

const TYPE: u32 = uapi::P2PDMA_DMABUF_TYPE;
const ATTACH: u32 = _IO(TYPE, 0x10);
const MAP: u32 = _IOWR::<uapi::p2pdma_import_map>(TYPE, 0x16);
const UNMAP: u32 = _IO(TYPE, 0x12);
const DMA: u32 = _IOW::<uapi::p2pdma_import_dma>(TYPE, 0x13);
const STATUS: u32 = _IOR::<uapi::p2pdma_import_status>(TYPE, 0x14);
const DETACH: u32 = _IO(TYPE, 0x15);

/// QEMU's edu device.
const EDU_VENDOR: u16 = 0x1234;
const EDU_DEVICE: u16 = 0x11e8;
/// edu registers (QEMU docs/specs/edu.rst).
const EDU_REGS: usize = 0x100;
const EDU_DMA_SRC: usize = 0x80;
const EDU_DMA_DST: usize = 0x88;
const EDU_DMA_CNT: usize = 0x90;
const EDU_DMA_CMD: usize = 0x98;
const EDU_CMD_RUN: u64 = 1 << 0;
/// Direction bit: from the edu buffer to the bus address (else from the bus into the buffer).
const EDU_CMD_TO_PCI: u64 = 1 << 1;
/// The edu buffer, as the engine addresses it, and its size.
const EDU_BUF: u64 = 0x40000;
const EDU_BUF_SIZE: usize = 4096;
const EDU_BUF_WORDS: usize = EDU_BUF_SIZE / 8;
/// Longest transfer: QEMU releases before 8.0 stop the machine (`hw_error()`) for a transfer
/// that ends exactly at the end of the edu buffer, so one word is left out.
const EDU_MAX_LEN: usize = EDU_BUF_SIZE - 8;

/// A transfer takes 100 ms of guest time; give up after 5 s (a dead device).
const POLL: Delta = Delta::from_millis(2);
const POLL_LIMIT: u32 = 2500;

/// The highest DMA address the engine reaches: `dma_bits` (1 to 64) wide.
fn dma_limit() -> Result<u64> {
    match *module_parameters::dma_bits.value() {
        bits @ 1..=64 => Ok(u64::MAX >> (64 - bits)),
        _ => Err(EINVAL),
    }
}

/// Checks that the engine reaches all of `[addr, addr + len)`; `ERANGE` if not.
fn reachable(addr: u64, len: usize) -> Result<u64> {
    let last = addr
        .checked_add((len as u64).saturating_sub(1))
        .ok_or(ERANGE)?;
    if last > dma_limit()? {
        return Err(ERANGE);
    }
    Ok(addr)
}

/// Word `i` of the test pattern of `seed` (splitmix64, as the selftests and the host check).
fn pattern_word(seed: u64, i: u64) -> u64 {
    let mut z = seed.wrapping_add((i + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The edu device, reachable from files: every access fails with `ENODEV` once unbound.
#[pin_data]
struct Edu {
    bar: Devres<pci::Bar<'static, EDU_REGS>>,
    /// System memory the engine copies the pattern from.
    stage: Devres<Coherent<[u64]>>,
    /// One user of the engine at a time (the stop hook only waits, without it); `true` once
    /// the driver stopped the engine for good (unbind).
    #[pin]
    engine: Mutex<bool>,
    started: Atomic<u32>,
}

impl Edu {
    /// Whether a transfer runs. All ones is no answer (the device is gone or powered
    /// down), and a device that does not answer does no DMA to wait for.
    fn busy(&self) -> bool {
        self.bar
            .try_access_with(|bar| {
                let cmd = bar.read64(EDU_DMA_CMD);
                cmd != u64::MAX && cmd & EDU_CMD_RUN != 0
            })
            .unwrap_or(false)
    }

    /// Waits until the engine is idle; sleeps between polls, outside the RCU guard.
    fn wait_idle(&self) -> Result {
        for _ in 0..POLL_LIMIT {
            if !self.busy() {
                return Ok(());
            }
            fsleep(POLL);
        }
        Err(ETIMEDOUT)
    }

    /// Waits until the engine is idle, however long that takes: for the importer's stop
    /// hook, where returning with a transfer in flight would let the engine write to
    /// memory about to be unmapped. The edu cannot abort a transfer, and clearing bus
    /// mastering needs the device lock, which the stop hook must not take.
    fn wait_quiet(&self) {
        while self.wait_idle().is_err() {
            pr_warn!("edu engine still busy after 5 s, waiting for it\n");
        }
    }

    /// Starts a transfer of `len` bytes; the engine must be idle.
    fn start(&self, src: u64, dst: u64, len: usize, cmd: u64) -> Result {
        self.bar
            .try_access_with(|bar| {
                bar.write64(src, EDU_DMA_SRC);
                bar.write64(dst, EDU_DMA_DST);
                bar.write64(len as u64, EDU_DMA_CNT);
                bar.write64(cmd | EDU_CMD_RUN, EDU_DMA_CMD);
            })
            .ok_or(ENODEV)
    }

    /// Fills the edu buffer with `len` bytes of the pattern of `seed`.
    ///
    /// The transfer starts under the same access to the staging buffer that filled it:
    /// the buffer cannot be released in between, and unbind waits for the engine before it
    /// releases the buffer.
    fn stage_pattern(&self, seed: u64, len: usize) -> Result {
        self.stage
            .try_access_with(|stage| -> Result {
                let src = reachable(stage.dma_handle(), len)?;
                for i in 0..len / 8 {
                    kernel::dma_write!(stage, [try: i], pattern_word(seed, i as u64));
                }
                self.start(src, EDU_BUF, len, 0)
            })
            .ok_or(ENODEV)??;
        self.wait_idle()
    }
}

/// The DMA address of `len` bytes at `offset` of a mapping, if they lie in one range
/// (`EINVAL` if not) that the engine reaches (`ERANGE` if not).
fn dma_addr_at(ranges: &[DmaRange], offset: u64, len: usize) -> Result<u64> {
    let mut at = 0u64;
    for r in ranges {
        if offset >= at && offset - at < r.len {
            let end = (offset - at).checked_add(len as u64).ok_or(EINVAL)?;
            return if end <= r.len {
                reachable(r.addr.checked_add(offset - at).ok_or(EINVAL)?, len)
            } else {
                Err(EINVAL)
            };
        }
        at = at.checked_add(r.len).ok_or(EINVAL)?;
    }
    Err(EINVAL)
}

/// The map type as `<linux/p2pdma_dmabuf.h>` numbers it.
fn map_type_number(map_type: Option<MapType>) -> u32 {
    match map_type {
        Some(MapType::NotSupported) => uapi::P2PDMA_MAP_NOT_SUPPORTED,
        Some(MapType::BusAddr) => uapi::P2PDMA_MAP_BUS_ADDR,
        Some(MapType::ThruHostBridge) => uapi::P2PDMA_MAP_THRU_HOST_BRIDGE,
        _ => uapi::P2PDMA_MAP_UNKNOWN,
    }
}

/// What every file of a device's node starts from.
struct NodeData {
    edu: Arc<Edu>,
    importer: ImporterHandle,
}

/// An open `/dev/p2pdma-import-<bdf>`: at most one attached dma-buf.
#[pin_data]
struct ImportFile {
    edu: Arc<Edu>,
    importer: ImporterHandle,
    #[pin]
    import: Mutex<Option<ImportRef>>,
}

impl ImportFile {
    fn with_import<R>(&self, f: impl FnOnce(&mut ImportRef) -> Result<R>) -> Result<R> {
        match &mut *self.import.lock() {
            Some(import) => f(import),
            None => Err(ENOENT),
        }
    }

    fn attach(&self, arg: usize) -> Result<isize> {
        let fd = i32::try_from(arg).map_err(|_| EBADF)?;
        let mut slot = self.import.lock();
        if slot.is_some() {
            return Err(EBUSY);
        }
        *slot = Some(self.importer.import(fd)?);
        Ok(0)
    }

    /// `P2PDMA_IMPORT_MAP`: maps, then copies the ranges out (not under the reservation
    /// lock: a fault on user memory must not happen with it held).
    fn map(&self, arg: usize) -> Result<isize> {
        let size = core::mem::size_of::<uapi::p2pdma_import_map>();
        let (mut reader, mut writer) =
            UserSlice::new(UserPtr::from_addr(arg), size).reader_writer();
        let room = reader.read::<u32>()? as usize;
        if reader.read::<u32>()? != 0 {
            return Err(EINVAL);
        }
        let ranges_ptr = usize::try_from(reader.read::<u64>()?).map_err(|_| EFAULT)?;

        let ranges = self.with_import(|i| {
            i.with_mapping(|ranges| -> Result<_> {
                let mut out = KVec::with_capacity(ranges.len(), GFP_KERNEL)?;
                out.extend_from_slice(ranges, GFP_KERNEL)?;
                Ok(out)
            })?
        })?;
        let entry = core::mem::size_of::<uapi::p2pdma_import_range>();
        let n = ranges.len().min(room);
        let mut out = UserSlice::new(UserPtr::from_addr(ranges_ptr), n * entry).writer();
        for r in ranges.iter().take(n) {
            out.write(&r.addr)?;
            out.write(&r.len)?;
        }
        writer.write(&u32::try_from(ranges.len()).map_err(|_| E2BIG)?)?;
        Ok(0)
    }

    /// `P2PDMA_IMPORT_DMA`: the edu writes the pattern into the buffer.
    fn dma(&self, arg: usize) -> Result<isize> {
        let size = core::mem::size_of::<uapi::p2pdma_import_dma>();
        let mut reader = UserSlice::new(UserPtr::from_addr(arg), size).reader();
        let offset = reader.read::<u64>()?;
        let seed = reader.read::<u64>()?;
        let len = reader.read::<u32>()? as usize;
        let flags = reader.read::<u32>()?;
        if len == 0 || len > EDU_MAX_LEN || len % 8 != 0 || offset % 8 != 0 {
            return Err(EINVAL);
        }
        if flags & !uapi::P2PDMA_IMPORT_DMA_WAIT != 0 {
            return Err(EINVAL);
        }

        self.with_import(|import| {
            let stopped = self.edu.engine.lock();
            if *stopped {
                return Err(ENODEV);
            }
            // Refuse a destination the engine cannot reach before staging anything.
            import.with_mapping(|ranges| dma_addr_at(ranges, offset, len))??;
            self.edu.wait_idle()?;
            self.edu.stage_pattern(seed, len)?;
            // The transfer starts while the mapping cannot be invalidated; an invalidation
            // after this waits for it (the stop hook).
            import.with_mapping(|ranges| -> Result {
                let addr = dma_addr_at(ranges, offset, len)?;
                self.edu.start(EDU_BUF, addr, len, EDU_CMD_TO_PCI)
            })??;
            self.edu.started.fetch_add(1, Relaxed);
            if flags & uapi::P2PDMA_IMPORT_DMA_WAIT != 0 {
                self.edu.wait_idle()?;
            }
            Ok(0)
        })
    }

    fn status(&self, arg: usize) -> Result<isize> {
        let size = core::mem::size_of::<uapi::p2pdma_import_status>();
        let status = self.with_import(|i| i.status())?;
        let mut writer = UserSlice::new(UserPtr::from_addr(arg), size).writer();
        writer.write(&u32::from(status.mapped))?;
        writer.write(&status.invalidations)?;
        writer.write(&self.edu.started.load(Relaxed))?;
        writer.write(&u32::from(self.edu.busy()))?;
        writer.write(&map_type_number(status.map_type))?;
        writer.write(&0u32)?;
        Ok(0)
    }
}

impl NodeFile for ImportFile {
    type Data = NodeData;

    const OWNER: &'static ThisModule = &THIS_MODULE;

    fn open(data: &NodeData) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            edu: data.edu.clone(),
            importer: data.importer.clone(),
            import <- new_mutex!(None),
        }? Error)
    }

    fn ioctl(&self, cmd: u32, arg: usize) -> Result<isize> {
        match cmd {
            ATTACH => self.attach(arg),
            MAP => self.map(arg),
            UNMAP => self.with_import(|i| i.unmap()).map(|()| 0),
            DMA => self.dma(arg),
            STATUS => self.status(arg),
            DETACH => self.import.lock().take().map(|_| 0).ok_or(ENOENT),
            _ => Err(ENOTTY),
        }
    }
}

/// What the driver keeps per device: the node goes first (no new files), then the importer
/// (every attachment stopped, unmapped and detached before `remove()`, by the library).
#[pin_data]
struct ImportSample<'bound> {
    #[pin]
    node: Node<ImportFile>,
    edu: Arc<Edu>,
    /// `None` if the `forget` parameter leaked it.
    importer: Option<Importer<'bound>>,
}

struct ImportDriver;

kernel::pci_device_table!(
    PCI_TABLE,
    MODULE_PCI_TABLE,
    <ImportDriver as pci::Driver>::IdInfo,
    [
        // QEMU's vendor ID 0x1234 has no name in pci_ids.h: match edu's class (0x00ff, "other"),
        // and let probe() refuse everything but edu (1234:11e8).
        (pci::DeviceId::from_class(0x00_ff00, 0xff_ffff), ()),
    ]
);

#[vtable]
impl pci::Driver for ImportDriver {
    type IdInfo = ();
    type Data<'bound> = ImportSample<'bound>;

    const ID_TABLE: pci::IdTable<Self::IdInfo> = &PCI_TABLE;

    fn probe<'bound>(
        pdev: &'bound pci::Device<Core<'_>>,
        _info: &'bound Self::IdInfo,
    ) -> impl PinInit<Self::Data<'bound>, Error> + 'bound {
        pin_init::pin_init_scope(move || {
            if (pdev.vendor_id().as_raw(), pdev.device_id()) != (EDU_VENDOR, EDU_DEVICE) {
                return Err(ENODEV);
            }
            pdev.enable_device_mem()?;
            let bound: &'bound pci::Device<Bound> = pdev;
            let bar = pdev
                .iomap_region_sized::<EDU_REGS>(0, c"rust_p2pdma_import")?
                .into_devres()?;
            let stage = Coherent::<u64>::zeroed_slice(bound.as_ref(), EDU_BUF_WORDS, GFP_KERNEL)?;
            let edu = Arc::pin_init(
                try_pin_init!(Edu {
                    bar,
                    stage: Devres::new(bound.as_ref(), stage)?,
                    engine <- new_mutex!(false),
                    started: Atomic::new(0),
                }? Error),
                GFP_KERNEL,
            )?;
            let stop_edu = edu.clone();
            let importer = Importer::new(pdev.as_ref(), DataDirection::FromDevice, move || {
                // Never return with a transfer in flight: the library unmaps next.
                stop_edu.wait_quiet()
            })?;
            let data = NodeData {
                edu: edu.clone(),
                importer: importer.handle(),
            };
            let importer = if *module_parameters::forget.value() != 0 {
                // Test only: the library must detach at unbind all the same.
                core::mem::forget(importer);
                None
            } else {
                Some(importer)
            };
            let name = CString::try_from_fmt(fmt!("p2pdma-import-{}", pdev.as_ref().name()))?;
            // Last: a probe that fails before leaves the device without bus mastering.
            pdev.set_master();
            dev_info!(pdev, "importing dma-bufs through /dev/{}\n", &*name);
            Ok(try_pin_init!(ImportSample {
                node <- Node::new(name, data),
                edu,
                importer,
            }? Error))
        })
    }

    /// The engine's reach, `dma_bits`: the PCI core sets it before probe, so the staging
    /// buffer and every mapping made for the device (but peer-to-peer bus addresses, which
    /// are not mapped: see [`reachable`]) fit in it. A width the platform cannot serve fails
    /// the probe (`EIO`): 28 bits, QEMU's default, needs `CONFIG_ZONE_DMA` or a guest with at
    /// most 256 MiB of memory.
    fn dma_mask(_info: &Self::IdInfo) -> Result<Option<DmaMask>> {
        dma_limit()?;
        Ok(Some(DmaMask::try_new(
            *module_parameters::dma_bits.value(),
        )?))
    }

    /// Runs after the library stopped, unmapped and detached every import, before the
    /// driver data, the staging buffer and the registers go: no new transfer, the one in
    /// flight finished (or cut off), and the engine can no longer reach memory.
    fn unbind<'bound>(pdev: &'bound pci::Device<Core<'_>>, this: Pin<&Self::Data<'bound>>) {
        *this.edu.engine.lock() = true;
        // Bounded here: with the device lock held, clearing bus mastering stops a transfer
        // that does not end.
        if this.edu.wait_idle().is_err() {
            dev_warn!(pdev, "edu engine still busy after 5 s: bus mastering off\n");
        }
        pdev.clear_master();
    }
}

kernel::module_pci_driver! {
    type: ImportDriver,
    name: "rust_p2pdma_import",
    authors: ["p2pdma-rs developers"],
    description: "Rust P2PDMA dma-buf importer sample (QEMU edu DMA engine)",
    license: "GPL v2",
    params: {
        forget: u32 {
            default: 0,
            description: "Test only: 1 leaks each device's Importer (mem::forget) at probe",
        },
        dma_bits: u32 {
            default: 28,
            description: "Width of the edu's DMA addresses (its QEMU dma_mask, default 28)",
        },
    },
}
