// SPDX-License-Identifier: GPL-2.0

//! Rust P2PDMA dma-buf exporter sample: a VFIO-style driver that exports ranges of a PCI
//! BAR as dma-bufs and revokes them synchronously.
//!
//! It binds QEMU's ivshmem-plain by ID and any other device through `driver_override`, and
//! registers `/dev/p2pdma-dmabuf-<bdf>` with the ioctls of `<linux/p2pdma_dmabuf.h>`:
//!
//! - `P2PDMA_DMABUF_EXPORT`: export ranges of a memory BAR as one dma-buf (a new fd). The
//!   ranges are checked as VFIO checks them ([`kernel::p2pdma::check_ranges`]).
//! - `P2PDMA_DMABUF_REVOKE` / `P2PDMA_DMABUF_UNREVOKE`: what a reset or a memory disable
//!   does in VFIO: every importer is told to stop and has unmapped before the ioctl
//!   returns; afterwards maps fail until the exports are re-armed.
//! - `P2PDMA_DMABUF_STATE`: where a BAR is, and the exporter's state.
//!
//! It exports only from the BARs of its `bars` parameter (BAR 2 by default), which it claims
//! for itself at probe; exporting from another memory BAR fails with `EPERM`.
//!
//! A reset of the device (the `reset` attribute in sysfs, a bus or slot reset) revokes every
//! export before the device stops decoding, and re-arms them afterwards
//! ([`pci::Driver::reset_prepare`], [`pci::Driver::reset_done`]); so does an error that the
//! PCI error recovery (AER) reports, from [`pci::Driver::error_detected`] to
//! [`pci::Driver::resume`]. As in VFIO, the exports are re-armed only if the device decodes
//! memory afterwards, and a revocation that user space asked for stays in force across both.
//!
//! With the `pages` parameter (MiB, a multiple of 2), the start of BAR 2 gets `struct page`s
//! instead ([`kernel::p2pdma::PagesExporter`]) and the node is `/dev/p2pdma-pages-<bdf>`:
//! its files can also be mmapped (the pages themselves, so `O_DIRECT` I/O goes straight to
//! the BAR), `EXPORT` takes ranges inside that part, `P2PDMA_DMABUF_PAGES` reports it, and
//! every revocation works in three stages: user mappings zapped, pages pinned by I/O back,
//! importers unmapped.
//!
//! Unbinding, removing or hot-unplugging the device revokes everything for good before
//! `remove()` runs (device-managed work of [`kernel::p2pdma::Exporter`], done even if the
//! exporter is leaked, which the `forget` parameter does for the selftests); the dma-bufs
//! and files that user space still holds then fail with `ENODEV`.

use kernel::{
    bindings,
    device::Core,
    dma_buf::DmaBuf,
    fs::file::{
        flags::O_CLOEXEC,
        FileDescriptorReservation, //
    },
    io::Io,
    ioctl::{
        _IO,
        _IOR,
        _IOW,
        _IOWR, //
    },
    p2pdma::{
        BarIndex,
        BarInfo,
        BarRange,
        Exporter,
        ExporterHandle,
        ExporterStatus,
        Node,
        NodeFile,
        PagesExporter,
        PagesHandle,
        Revocation,
        MAX_RANGES, //
    },
    pci::{
        self,
        ChannelState,
        ErsResult, //
    },
    prelude::*,
    str::CString,
    sync::aref::ARef,
    uaccess::{
        UserPtr,
        UserSlice, //
    },
    uapi, //
};

const TYPE: u32 = uapi::P2PDMA_DMABUF_TYPE;
const EXPORT: u32 = _IOW::<uapi::p2pdma_dmabuf_export>(TYPE, 0x00);
const REVOKE: u32 = _IO(TYPE, 0x01);
const UNREVOKE: u32 = _IO(TYPE, 0x02);
const STATE: u32 = _IOWR::<uapi::p2pdma_dmabuf_state>(TYPE, 0x03);
const PAGES: u32 = _IOR::<uapi::p2pdma_dmabuf_pages>(TYPE, 0x04);

/// Size of `struct p2pdma_dmabuf_range`.
const RANGE_SIZE: usize = core::mem::size_of::<uapi::p2pdma_dmabuf_range>();

/// What a device exports: BAR ranges, or (`pages` parameter) one range with `struct page`s
/// that user space maps too.
#[derive(Clone)]
enum Handle {
    Bars(ExporterHandle),
    Pages(PagesHandle),
}

impl Handle {
    fn export(&self, bar: BarIndex, ranges: &[BarRange], flags: u32) -> Result<ARef<DmaBuf>> {
        match self {
            Self::Bars(h) => h.export(&THIS_MODULE, bar, ranges, flags),
            Self::Pages(h) => h.export(&THIS_MODULE, bar, ranges, flags),
        }
    }

    /// For the pages, the three stages: user mappings, pinned pages, importers.
    fn revoke_for(&self, why: Revocation) -> Result {
        match self {
            Self::Bars(h) => h.revoke_for(why),
            Self::Pages(h) => h.revoke_for(why),
        }
    }

    fn rearm(&self, why: Revocation) -> Result {
        match self {
            Self::Bars(h) => h.rearm(why),
            Self::Pages(h) => h.rearm(why),
        }
    }

    fn bar_info(&self, bar: BarIndex) -> Result<BarInfo> {
        match self {
            Self::Bars(h) => h.bar_info(bar),
            Self::Pages(h) => h.bar_info(bar),
        }
    }

    fn status(&self) -> ExporterStatus {
        match self {
            Self::Bars(h) => h.status(),
            Self::Pages(h) => h.status().exporter,
        }
    }
}

/// An open `/dev/p2pdma-dmabuf-<bdf>` or `/dev/p2pdma-pages-<bdf>`: the exporter of its
/// device, for as long as it lives.
struct ExportFile {
    exporter: Handle,
}

impl ExportFile {
    /// `P2PDMA_DMABUF_EXPORT`: reads `struct p2pdma_dmabuf_export` and its ranges.
    fn export(&self, arg: usize) -> Result<isize> {
        let size = core::mem::size_of::<uapi::p2pdma_dmabuf_export>();
        let mut args = UserSlice::new(UserPtr::from_addr(arg), size).reader();
        let bar = args.read::<u32>()?;
        let open_flags = args.read::<u32>()?;
        let flags = args.read::<u32>()?;
        let nr_ranges = args.read::<u32>()? as usize;
        let ranges_ptr = args.read::<u64>()?;

        if flags != 0 {
            return Err(EINVAL);
        }
        // Bounds the copy below; the ranges themselves (and their number being zero) are
        // checked by `ExporterHandle::export`.
        if nr_ranges > MAX_RANGES {
            return Err(E2BIG);
        }
        let bar = BarIndex::new(bar)?;
        let ranges_ptr = usize::try_from(ranges_ptr).map_err(|_| EFAULT)?;
        let mut reader =
            UserSlice::new(UserPtr::from_addr(ranges_ptr), nr_ranges * RANGE_SIZE).reader();
        let mut ranges = KVec::with_capacity(nr_ranges, GFP_KERNEL)?;
        for _ in 0..nr_ranges {
            let offset = reader.read::<u64>()?;
            let len = reader.read::<u64>()?;
            ranges.push(BarRange { offset, len }, GFP_KERNEL)?;
        }
        // The fd is reserved first, so that nothing can fail once the buffer exists.
        let fd = FileDescriptorReservation::get_unused_fd_flags(open_flags & O_CLOEXEC)?;
        let buf = self.exporter.export(bar, &ranges, open_flags)?;
        let nr = fd.reserved_fd();
        fd.fd_install(DmaBuf::into_file(buf));
        Ok(nr as isize)
    }

    /// `P2PDMA_DMABUF_STATE`: reads the BAR index, writes the whole struct back.
    fn state(&self, arg: usize) -> Result<isize> {
        let size = core::mem::size_of::<uapi::p2pdma_dmabuf_state>();
        let (mut reader, mut writer) =
            UserSlice::new(UserPtr::from_addr(arg), size).reader_writer();
        let bar = BarIndex::new(reader.read::<u32>()?)?;
        let info = self.exporter.bar_info(bar)?;
        let status = self.exporter.status();
        writer.write(&bar.get())?;
        writer.write(&u32::from(status.revoked))?;
        writer.write(&u32::try_from(status.exports).unwrap_or(u32::MAX))?;
        writer.write(&u32::try_from(status.mappings).unwrap_or(u32::MAX))?;
        writer.write(&info.phys_start)?;
        writer.write(&info.len)?;
        writer.write(&info.bus_offset)?;
        Ok(0)
    }

    /// `P2PDMA_DMABUF_PAGES`: the range with pages and its last revocation.
    fn pages(&self, arg: usize) -> Result<isize> {
        let Handle::Pages(pages) = &self.exporter else {
            return Err(ENOTTY);
        };
        let size = core::mem::size_of::<uapi::p2pdma_dmabuf_pages>();
        let mut writer = UserSlice::new(UserPtr::from_addr(arg), size).writer();
        let st = pages.status();
        let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        writer.write(&st.offset)?;
        writer.write(&st.len)?;
        writer.write(&count(st.busy_pages))?;
        writer.write(&count(st.last.waited_pages))?;
        writer.write(&st.last.zap_ns)?;
        writer.write(&st.last.wait_ns)?;
        writer.write(&st.last.invalidate_ns)?;
        Ok(0)
    }
}

impl NodeFile for ExportFile {
    type Data = Handle;

    const OWNER: &'static ThisModule = &THIS_MODULE;

    fn open(exporter: &Handle) -> impl PinInit<Self, Error> {
        Ok::<_, Error>(Self {
            exporter: exporter.clone(),
        })
    }

    fn ioctl(&self, cmd: u32, arg: usize) -> Result<isize> {
        match cmd {
            EXPORT => self.export(arg),
            REVOKE => self.exporter.revoke_for(Revocation::User).map(|()| 0),
            UNREVOKE => self.exporter.rearm(Revocation::User).map(|()| 0),
            STATE => self.state(arg),
            PAGES => self.pages(arg),
            _ => Err(ENOTTY),
        }
    }

    /// `mmap()` of the range with pages, in pages mode.
    fn pages(&self) -> Option<&PagesHandle> {
        match &self.exporter {
            Handle::Pages(pages) => Some(pages),
            Handle::Bars(_) => None,
        }
    }
}

/// What the driver keeps per device. Fields drop in order: first the node (no new files),
/// then the exporter (long revoked by then: see [`DmabufDriver::unbind`]).
#[pin_data]
struct DmabufSample<'bound> {
    #[pin]
    node: Node<ExportFile>,
    /// The exporter, by mode; `None` if the `forget` parameter leaked it.
    exporter: Option<Exporter<'bound>>,
    pages: Option<PagesExporter<'bound>>,
    handle: Handle,
}

struct DmabufDriver;

kernel::pci_device_table!(
    PCI_TABLE,
    MODULE_PCI_TABLE,
    <DmabufDriver as pci::Driver>::IdInfo,
    [
        // QEMU ivshmem-plain: BAR2 is the shared memory.
        (
            pci::DeviceId::from_id(pci::Vendor::REDHAT_QUMRANET, 0x1110),
            ()
        ),
    ]
);

#[vtable]
impl pci::Driver for DmabufDriver {
    type IdInfo = ();
    type Data<'bound> = DmabufSample<'bound>;

    const ID_TABLE: pci::IdTable<Self::IdInfo> = &PCI_TABLE;

    fn probe<'bound>(
        pdev: &'bound pci::Device<Core<'_>>,
        _info: &'bound Self::IdInfo,
    ) -> impl PinInit<Self::Data<'bound>, Error> + 'bound {
        pin_init::pin_init_scope(move || {
            pdev.enable_device_mem()?;
            let pages_mib = u64::from(*module_parameters::pages.value());
            let (mut exporter, mut pages, handle, kind) = if pages_mib != 0 {
                // The first `pages` MiB of BAR 2, with pages, mapped and exported.
                let pages = PagesExporter::new(pdev, BarIndex::new(2)?, 0, pages_mib << 20)?;
                let handle = Handle::Pages(pages.handle());
                (None, Some(pages), handle, "pages")
            } else {
                let bars = *module_parameters::bars.value();
                let claim = BarIndex::all().filter(|bar| bars & (1 << bar.get()) != 0);
                let exporter = Exporter::new(pdev, claim)?;
                let handle = Handle::Bars(exporter.handle());
                (Some(exporter), None, handle, "dmabuf")
            };
            if *module_parameters::forget.value() != 0 {
                // Test only: the library must revoke at unbind all the same.
                core::mem::forget(exporter.take());
                core::mem::forget(pages.take());
            }
            let name = CString::try_from_fmt(fmt!("p2pdma-{}-{}", kind, pdev.as_ref().name()))?;
            dev_info!(pdev, "exporting through /dev/{}\n", &*name);
            Ok(try_pin_init!(DmabufSample {
                node <- Node::new(name, handle.clone()),
                exporter,
                pages,
                handle,
            }? Error))
        })
    }

    /// Before a reset (sysfs `reset`, a bus or slot reset): revoke every export and wait
    /// for the importers' DMA (before the device stops decoding; in a bus reset from above,
    /// bridges on the way may have stopped forwarding already); a user's revocation stays.
    fn reset_prepare<'bound>(pdev: &'bound pci::Device<Core<'_>>, this: Pin<&Self::Data<'bound>>) {
        // `ENODEV` only in a reset from our own `unbind()`, which has revoked for good.
        let _ = this.handle.revoke_for(Revocation::Reset);
        dev_info!(pdev, "reset: exports revoked\n");
    }

    /// After the reset, with the config space restored: re-arm what the reset revoked.
    fn reset_done<'bound>(pdev: &'bound pci::Device<Core<'_>>, this: Pin<&Self::Data<'bound>>) {
        rearm(pdev, &this.handle, Revocation::Reset, "reset");
    }

    /// An error below the device's link: revoke every export, as for a reset, then vote.
    fn error_detected<'bound>(
        pdev: &'bound pci::Device<Core<'_>>,
        this: Pin<&Self::Data<'bound>>,
        state: ChannelState,
    ) -> ErsResult {
        let _ = this.handle.revoke_for(Revocation::Error);
        dev_info!(pdev, "error recovery: {:?}, exports revoked\n", state);
        match state {
            ChannelState::Normal => ErsResult::CanRecover,
            ChannelState::Frozen => ErsResult::NeedReset,
            ChannelState::PermanentFailure => ErsResult::Disconnect,
        }
    }

    /// The BAR works again after a non-fatal error; nothing to set up.
    fn mmio_enabled<'bound>(
        pdev: &'bound pci::Device<Core<'_>>,
        _this: Pin<&Self::Data<'bound>>,
    ) -> ErsResult {
        dev_info!(pdev, "error recovery: MMIO enabled\n");
        ErsResult::Recovered
    }

    /// After the recovery reset the link: put the config space back (BAR addresses and
    /// memory decoding included).
    fn slot_reset<'bound>(
        pdev: &'bound pci::Device<Core<'_>>,
        _this: Pin<&Self::Data<'bound>>,
    ) -> ErsResult {
        pdev.restore_state();
        dev_info!(pdev, "error recovery: slot reset, config space restored\n");
        ErsResult::Recovered
    }

    /// The recovery is over: re-arm what the error revoked.
    fn resume<'bound>(pdev: &'bound pci::Device<Core<'_>>, this: Pin<&Self::Data<'bound>>) {
        rearm(pdev, &this.handle, Revocation::Error, "error recovery");
    }

    /// Runs in `remove()`: by now the exports are revoked for good; says so for the
    /// selftests.
    fn unbind<'bound>(pdev: &'bound pci::Device<Core<'_>>, this: Pin<&Self::Data<'bound>>) {
        let status = this.handle.status();
        dev_info!(
            pdev,
            "remove: revoked for good {}, {} mappings\n",
            status.gone,
            status.mappings
        );
    }
}

/// Takes back the revocation for `why` if the device decodes memory (a user may have turned
/// it off through the config space); otherwise the exports stay revoked until the next reset.
fn rearm(pdev: &pci::Device<Core<'_>>, handle: &Handle, why: Revocation, what: &str) {
    let cmd = pdev.config_space().read16(bindings::PCI_COMMAND as usize);
    if u32::from(cmd) & bindings::PCI_COMMAND_MEMORY != 0 {
        let _ = handle.rearm(why);
        dev_info!(pdev, "{}: done, exports re-armed\n", what);
    } else {
        dev_info!(
            pdev,
            "{}: done, memory decoding off: exports stay revoked\n",
            what
        );
    }
}

kernel::module_pci_driver! {
    type: DmabufDriver,
    name: "rust_p2pdma_dmabuf",
    authors: ["p2pdma-rs developers"],
    description: "Rust P2PDMA dma-buf exporter sample (VFIO-style, synchronous revocation)",
    license: "GPL v2",
    params: {
        bars: u32 {
            default: 4,
            description: "BARs to claim and export, a bit each (default: BAR 2)",
        },
        pages: u32 {
            default: 0,
            description: "MiB at the start of BAR 2 to give struct pages, map and export (0: off)",
        },
        forget: u32 {
            default: 0,
            description: "Test only: 1 leaks each device's Exporter (mem::forget) at probe",
        },
    },
}
