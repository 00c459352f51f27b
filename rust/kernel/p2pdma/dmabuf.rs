// SPDX-License-Identifier: GPL-2.0

//! dma-buf export of provider MMIO ranges, with synchronous revocation.
//!
//! C header: [`include/linux/dma-buf-mapping.h`](srctree/include/linux/dma-buf-mapping.h)
//!
//! A pageless provider has no page references that could keep it alive while a peer uses
//! it. What keeps a peer from using MMIO that is gone is the dma-buf invalidation protocol,
//! run synchronously by the exporter as VFIO does (`drivers/vfio/pci/vfio_pci_dmabuf.c`):
//! take the reservation lock, mark the buffer revoked, `dma_buf_invalidate_mappings()`,
//! wait for every fence (`DMA_RESV_USAGE_BOOKKEEP`), unlock, and wait until every importer
//! has unmapped. [`Exporter`] borrows the provider device's binding (`'bound`) and registers
//! that revocation as device-managed work: it runs in the PCI remove callback, before the
//! driver's own unbind work, even if the exporter was leaked, and always before the
//! providers are freed; the dma-bufs themselves may live on in user space, revoked for good.
//!
//! The buffers are [`DmaBuf`]s of a [`dma_buf::Exporter`]. Only dynamic importers that allow
//! peer-to-peer and implement `invalidate_mappings` may attach
//! ([`Attachment::is_revocable`]); [`ImportRef`](super::ImportRef) is such an importer.

use super::{
    unbind::{
        OnUnbind,
        UnbindWork, //
    },
    BarIndex,
    MapType,
    P2pdma, //
};
use crate::{
    bindings,
    device::{
        self,
        Core, //
    },
    dma::DataDirection,
    dma_buf::{
        self,
        Attachment,
        DmaBuf,
        ExportOps,
        ExportedTable,
        ResvGuard,
        ResvUsage, //
    },
    error::{
        from_err_ptr,
        to_result, //
    },
    fs::file::flags::{
        O_ACCMODE,
        O_CLOEXEC, //
    },
    new_condvar,
    new_mutex,
    page::PAGE_SIZE,
    pci,
    prelude::*,
    sync::{
        aref::ARef,
        atomic::{
            Acquire,
            Atomic,
            Relaxed,
            Release, //
        },
        Arc,
        ArcBorrow,
        CondVar,
        Mutex, //
    },
    ThisModule, //
};
use core::{
    ptr::{
        self,
        NonNull, //
    },
    sync::atomic::{
        AtomicBool,
        AtomicPtr,
        Ordering, //
    },
};

/// Most ranges one exported dma-buf may have.
pub const MAX_RANGES: usize = 256;

/// The file flags an export may ask for.
const OPEN_FLAGS: u32 = O_CLOEXEC | O_ACCMODE;

/// A range of a BAR, as user space names it: an offset into the BAR and a length.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BarRange {
    /// Offset into the BAR, a multiple of the page size.
    pub offset: u64,
    /// Length, non-zero and a multiple of the page size.
    pub len: u64,
}

/// Checks `ranges` of a BAR at `bar_start` of `bar_len` bytes as VFIO does and returns the
/// total size.
///
/// There must be 1 to [`MAX_RANGES`] ranges (else `EINVAL` or `E2BIG`); each must be
/// non-empty, page-aligned and inside the BAR (`EINVAL`); nothing may overflow
/// (`EOVERFLOW`), and the total must stay below 2^63 (the DMA layer's flag bit, `EINVAL`).
///
/// # Examples
///
/// ```
/// use kernel::p2pdma::{check_ranges, BarRange};
///
/// let r = |offset, len| BarRange { offset, len };
/// assert_eq!(check_ranges(0x10_0000, 0x4000, &[r(0, 0x1000), r(0x2000, 0x2000)]), Ok(0x3000));
/// assert_eq!(check_ranges(0x10_0000, 0x4000, &[]), Err(EINVAL));
/// assert_eq!(check_ranges(0x10_0000, 0x4000, &[r(0, 0)]), Err(EINVAL));
/// assert_eq!(check_ranges(0x10_0000, 0x4000, &[r(0x800, 0x1000)]), Err(EINVAL));
/// assert_eq!(check_ranges(0x10_0000, 0x4000, &[r(0x3000, 0x2000)]), Err(EINVAL));
/// assert_eq!(check_ranges(0x10_0000, 0x4000, &[r(!0xfff, 0x1000)]), Err(EOVERFLOW));
/// # Ok::<(), Error>(())
/// ```
pub fn check_ranges(bar_start: u64, bar_len: u64, ranges: &[BarRange]) -> Result<usize> {
    if ranges.is_empty() {
        return Err(EINVAL);
    }
    if ranges.len() > MAX_RANGES {
        return Err(E2BIG);
    }
    let bar_end = bar_start.checked_add(bar_len).ok_or(EOVERFLOW)?;
    let page = PAGE_SIZE as u64;
    let mut total: u64 = 0;
    for r in ranges {
        if r.len == 0 || r.offset % page != 0 || r.len % page != 0 {
            return Err(EINVAL);
        }
        let start = bar_start.checked_add(r.offset).ok_or(EOVERFLOW)?;
        let end = start.checked_add(r.len).ok_or(EOVERFLOW)?;
        if end > bar_end {
            return Err(EINVAL);
        }
        total = total.checked_add(r.len).ok_or(EINVAL)?;
    }
    if total >= 1 << 63 {
        return Err(EINVAL);
    }
    usize::try_from(total).map_err(|_| EINVAL)
}

/// State of one exported dma-buf, shared by its exporter and the dma-buf (its data).
///
/// # Invariants
///
/// - `provider` is dereferenced (by `dma_buf_phys_vec_to_sgt()`, `pci_p2pdma_map_type()`)
///   only with the buffer's reservation lock held and `revoked` false. `revoked` is written
///   only with the reservation lock held. Before the provider goes away, [`Exporter`] sets
///   `revoked` for good and waits until `maps` is zero.
/// - `maps` counts the mappings handed out and not yet unmapped; it changes only with the
///   reservation lock held (asserted: the dma-buf core holds it for the dynamic importers,
///   the only ones admitted). While `revoked` is true, the unmap that takes it to zero wakes
///   `unmapped` with `wait_lock` held. That no wake-up is lost rests on the reservation
///   lock: `revoked` is set under it, so an unmap either sees it or comes before, and the
///   revocation then sees its count.
/// - `buf` is the export's dma-buf, set before the export is put on the list of `owner`.
///   The buffer's release callback takes the export off that list with `owner` locked, so
///   while `owner` is locked and the export on the list (or taken off by the holder of the
///   lock), the `dma_buf` is not freed; its file may be (`DmaBuf::get_active()` then
///   fails).
#[pin_data]
struct Export {
    revoked: AtomicBool,
    provider: *mut bindings::p2pdma_provider,
    ranges: KVec<bindings::phys_vec>,
    size: usize,
    maps: Atomic<usize>,
    /// Held by a revocation that waits for `maps` to reach zero, and by the unmap that gets
    /// it there, to wake it.
    #[pin]
    wait_lock: Mutex<()>,
    #[pin]
    unmapped: CondVar,
    buf: AtomicPtr<bindings::dma_buf>,
    /// The exporter whose list holds the export until the buffer is released.
    owner: Arc<Mutex<ExporterState>>,
}

// SAFETY: The provider pointer is shared read-only C state (see the type invariants); all
// other fields are thread-safe.
unsafe impl Send for Export {}
// SAFETY: See `Send`.
unsafe impl Sync for Export {}

impl Export {
    /// Revokes (`revoke`) or re-arms the buffer, synchronously, in VFIO's order, with its
    /// owner locked (`_owner`): the export on its list, or taken off it under that lock.
    fn set_revoked(&self, _owner: &ExporterState, revoke: bool) {
        // SAFETY: The owner is locked and the export is (or was, under this lock) on its
        // list, so the buffer is not freed (type invariants).
        let Some(buf) = (unsafe { DmaBuf::get_active(self.buf.load(Ordering::Relaxed)) }) else {
            // Past its last reference: its release comes, and needs nothing from us.
            return;
        };
        if self.revoked.load(Ordering::Relaxed) != revoke {
            {
                let mut resv = buf.lock();
                if revoke {
                    self.revoked.store(true, Ordering::Relaxed);
                }
                // Cannot fail: one of ours.
                let _ = resv.invalidate_mappings(&EXPORT_OPS);
                // Uninterruptible: cannot fail.
                let _ = resv.wait(ResvUsage::Bookkeep, false);
            }
            if revoke {
                // Importers unmap with the reservation lock held: wait without it. Each
                // unmap from now on sees `revoked` (the reservation lock orders them), and
                // the last one wakes us under `wait_lock`, which we hold while we look.
                let mut guard = self.wait_lock.lock();
                while self.maps.load(Acquire) != 0 {
                    self.unmapped.wait(&mut guard);
                }
            } else {
                let _resv = buf.lock();
                self.revoked.store(false, Ordering::Relaxed);
            }
        }
        // The last reference of a dma-buf is put through a deferred `fput()`: dropping
        // `buf` here never runs the release callback (which locks the owner) under the
        // owner's lock.
        drop(buf);
    }
}

#[vtable]
impl dma_buf::Exporter for Export {
    type Ptr = Arc<Export>;

    const NAME: &'static CStr = c"p2pdma";

    /// Admits only dynamic, peer-to-peer, revocable importers, while not revoked.
    fn attach(this: ArcBorrow<'_, Export>, attach: &Attachment) -> Result {
        if !attach.peer2peer() {
            return Err(EOPNOTSUPP);
        }
        if this.revoked.load(Ordering::Relaxed) {
            return Err(ENODEV);
        }
        if !attach.is_revocable() {
            return Err(EOPNOTSUPP);
        }
        Ok(())
    }

    /// Maps the ranges for the attached device, unless revoked.
    fn map(
        this: ArcBorrow<'_, Export>,
        attach: &Attachment,
        dir: DataDirection,
    ) -> Result<ExportedTable> {
        assert_resv_held(attach);
        if this.revoked.load(Ordering::Relaxed) {
            return Err(ENODEV);
        }
        // SAFETY: The dma-buf core maps with the reservation lock held; not revoked, the
        // provider is alive (type invariants). The ranges were checked against its BAR.
        let sgt = from_err_ptr(unsafe {
            bindings::dma_buf_phys_vec_to_sgt(
                attach.as_raw(),
                this.provider,
                this.ranges.as_ptr().cast_mut(),
                this.ranges.len(),
                this.size,
                dir.into(),
            )
        })?;
        this.maps.add(1, Relaxed);
        // SAFETY: A table mapped for `attach`, freed in `unmap`; not an error, so not null.
        Ok(unsafe { ExportedTable::from_raw(NonNull::new_unchecked(sgt)) })
    }

    /// Frees a mapping of `map` and counts it.
    fn unmap(
        this: ArcBorrow<'_, Export>,
        attach: &Attachment,
        table: ExportedTable,
        dir: DataDirection,
    ) {
        // SAFETY: A table of `map` for `attach` and `dir`, freed once.
        unsafe {
            bindings::dma_buf_free_sgt(attach.as_raw(), table.into_raw().as_ptr(), dir.into())
        };
        assert_resv_held(attach);
        // Only a revocation waits for the last unmap, so only then is there a lock to take:
        // otherwise an unmap costs one atomic store. The count changes only under the
        // reservation lock (asserted above), so a load and a store cannot lose an update,
        // and a count that would go below zero is never seen by anyone.
        let was = this.maps.load(Relaxed);
        if was == 0 {
            // Unbalanced: the dma-buf core never does this. Keep the count, say it once.
            crate::pr_warn_once!("p2pdma: dma-buf unmapped more often than mapped\n");
            return;
        }
        this.maps.store(was - 1, Release);
        if was == 1 && this.revoked.load(Ordering::Relaxed) {
            let _guard = this.wait_lock.lock();
            this.unmapped.notify_all();
        }
    }

    /// Takes the export off its exporter's list: its buffer is about to be freed. As in
    /// VFIO (`memory_lock`), this waits for a revocation or re-arm under way, which holds
    /// the exporter's lock while every importer of every export stops. The release runs
    /// from the last `fput()`, deferred: in a kernel thread's case on the shared
    /// `delayed_fput` work, whose other files then wait as long (as with VFIO's).
    fn release(this: Arc<Export>) {
        let mut owner = this.owner.lock();
        owner.exports.retain(|e| !Arc::ptr_eq(e, &this));
    }
}

/// Lockdep: the reservation lock of the buffer `attach` is attached to is held.
fn assert_resv_held(attach: &Attachment) {
    // SAFETY: An attachment of a live buffer (the core calls us for it); the buffer's
    // reservation object lives as long as the buffer.
    unsafe { bindings::dma_resv_assert_held((*(*attach.as_raw()).dmabuf).resv) };
}

/// The callbacks of the buffers of [`ExporterHandle::export`].
static EXPORT_OPS: ExportOps<Export> = ExportOps::new();

/// Returns the map type for `dev` of the buffer locked by `resv`, if the buffer is one of
/// [`ExporterHandle::export`] and not revoked (the lock keeps it so).
// Not generic and not inlined: the C call stays in the kernel crate.
#[inline(never)]
pub(super) fn map_type(resv: &ResvGuard<'_>, dev: &device::Device) -> Option<MapType> {
    let export = resv.dma_buf().exporter_data(&EXPORT_OPS)?;
    if export.revoked.load(Ordering::Relaxed) {
        return None;
    }
    // SAFETY: Not revoked, with the reservation lock held: the provider is alive (type
    // invariants of `Export`); `dev` is a valid device.
    let raw = unsafe { bindings::pci_p2pdma_map_type(export.provider, dev.as_raw()) };
    Some(MapType::from_c(raw))
}

/// A memory BAR of the exporter's device.
#[derive(Clone, Copy)]
struct Bar {
    provider: *mut bindings::p2pdma_provider,
    info: BarInfo,
    /// The exporter claimed it for its driver, so it may export from it.
    claimed: bool,
}

/// The exporter's view of a device: its BARs and its exports.
pub(super) struct ExporterState {
    /// Each memory BAR.
    bars: [Option<Bar>; 6],
    exports: KVec<Arc<Export>>,
    /// Why the exports are revoked: a set of [`Revocation`] bits; none, they are armed.
    reasons: u32,
    /// The device is unbound: everything revoked for good, no new exports.
    gone: bool,
}

// SAFETY: The provider pointers are shared read-only C state, used under the mutex.
unsafe impl Send for ExporterState {}

impl ExporterState {
    /// The state of an exporter of the memory BARs `claim` of `pdev` (see [`Exporter::new`]).
    pub(super) fn new(
        pdev: &pci::Device<Core<'_>>,
        claim: impl IntoIterator<Item = BarIndex>,
    ) -> Result<Self> {
        let p2p = P2pdma::init(pdev)?;
        let mut bars: [Option<Bar>; 6] = [None; 6];
        for bar in BarIndex::all() {
            if let Ok(p) = p2p.provider(bar) {
                let info = BarInfo {
                    phys_start: p.phys_start(),
                    len: p.len(),
                    bus_offset: p.bus_offset(),
                };
                bars[bar.get() as usize] = Some(Bar {
                    provider: p.as_raw(),
                    info,
                    claimed: false,
                });
            }
        }
        for bar in claim {
            let slot = bars[bar.get() as usize].as_mut().ok_or(EINVAL)?;
            if !slot.claimed {
                request_region(pdev, bar)?;
                slot.claimed = true;
            }
        }
        Ok(ExporterState {
            bars,
            exports: KVec::new(),
            reasons: 0,
            gone: false,
        })
    }
}

/// Why an exporter's buffers are revoked. Each reason is taken back on its own; the buffers
/// are armed again once none is left.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Revocation {
    /// Its user asked for it (as VFIO does when memory decoding is turned off).
    User = 1,
    /// The device is being reset ([`pci::Driver::reset_prepare`]).
    Reset = 2,
    /// The PCI error recovery found an error below the device's link
    /// ([`pci::Driver::error_detected`]).
    Error = 4,
}

/// The current state of an exporter, for reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExporterStatus {
    /// Exports are revoked (by [`ExporterHandle::revoke_for`] or because the device is gone).
    pub revoked: bool,
    /// Why: a set of [`Revocation`] bits.
    pub reasons: u32,
    /// The provider device is unbound.
    pub gone: bool,
    /// dma-bufs exported and not yet released.
    pub exports: usize,
    /// Mappings importers hold now.
    pub mappings: usize,
}

/// A memory BAR an [`Exporter`] can export from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BarInfo {
    /// CPU physical address of the BAR.
    pub phys_start: u64,
    /// Its length in bytes.
    pub len: u64,
    /// PCI bus address minus CPU physical address: a `BUS_ADDR` peer sees the BAR at
    /// `phys_start + bus_offset`.
    pub bus_offset: u64,
}

/// Exports ranges of the memory BARs of a bound PCI device as dma-bufs.
///
/// When the device is unbound (or removed, hot-unplug included), every export is revoked
/// synchronously and for good: every importer has been told to stop and has unmapped before
/// the driver's [`unbind`](pci::Driver::unbind) runs, in the PCI remove callback (if probe
/// fails, when the device's resources are released, before the P2PDMA providers are
/// freed). This is device-managed work registered by [`Exporter::new`], so it happens even
/// if the exporter was leaked; dropping the exporter only does it early. Use [`Exporter::handle`]
/// for the `'static` handle a file or misc device needs: it fails with `ENODEV` once the
/// exports are revoked for good.
///
/// It exports only from BARs it claimed for the driver, as VFIO does: the regions are
/// requested in the driver's name, device-managed, so nobody else can claim them while the
/// driver is bound.
pub struct Exporter<'bound> {
    work: UnbindWork<'bound, Mutex<ExporterState>>,
}

impl<'bound> Exporter<'bound> {
    /// Creates an exporter of the memory BARs `claim` of `pdev`, in its [`Core`] context
    /// (probe), enabling P2PDMA on it if needed ([`P2pdma::init`]).
    ///
    /// Claims each BAR of `claim` for the driver (`pcim_request_region()`, released when the
    /// driver is unbound): fails with `EINVAL` if one is no memory BAR and `EBUSY` if it is
    /// claimed already (by the driver itself through [`pci::Device::iomap_region`], or by
    /// another). The other memory BARs are reported ([`ExporterHandle::bar_info`]) but not
    /// exported.
    pub fn new(
        pdev: &'bound pci::Device<Core<'_>>,
        claim: impl IntoIterator<Item = BarIndex>,
    ) -> Result<Self> {
        let state = ExporterState::new(pdev, claim)?;
        Ok(Self {
            work: UnbindWork::new(pdev.as_ref(), new_mutex!(state))?,
        })
    }

    /// Returns a handle that can outlive the binding.
    pub fn handle(&self) -> ExporterHandle {
        ExporterHandle(self.work.shared().into())
    }
}

impl OnUnbind for Mutex<ExporterState> {
    fn unbind(&self) {
        let mut state = self.lock();
        state.gone = true;
        state.bars = [None; 6];
        let exports = core::mem::take(&mut state.exports);
        for export in exports.iter() {
            // Off the list, under the lock: see `Export::set_revoked`.
            export.set_revoked(&state, true);
        }
    }
}

/// Claims memory BAR `bar` of `pdev` for its driver until the driver is unbound.
// Not generic and not inlined: the C call stays in the kernel crate.
#[inline(never)]
fn request_region(pdev: &pci::Device<Core<'_>>, bar: BarIndex) -> Result {
    // SAFETY: In the `Core` context `pdev` is bound, so `pdev->driver` is its driver, which
    // stays registered (with its name) until after the device is unbound, when the region
    // is released.
    let name = unsafe { (*(*pdev.as_raw()).driver).name };
    // `EBUSY` if the region is claimed already.
    // SAFETY: `pdev` is a valid device; `bar` is below 6 (`BarIndex`); `name` is valid for
    // as long as the region is requested (above).
    to_result(unsafe { bindings::pcim_request_region(pdev.as_raw(), bar.get() as i32, name) })
}

/// A `'static` handle of an [`Exporter`]: export, revoke, re-arm, report.
#[derive(Clone)]
pub struct ExporterHandle(pub(super) Arc<Mutex<ExporterState>>);

impl ExporterHandle {
    /// Exports `ranges` of memory BAR `bar` as one dma-buf, owned by `module`, whose file is
    /// opened with `flags`: an access mode (`O_RDONLY`, `O_WRONLY`, `O_RDWR`) and
    /// `O_CLOEXEC` (for the caller's file descriptor), nothing else (`EINVAL`).
    ///
    /// The ranges are checked with [`check_ranges`]. Fails with `EINVAL` for a BAR that is
    /// no memory BAR, `EPERM` for a memory BAR the exporter did not claim ([`Exporter::new`])
    /// and `ENODEV` once the device is gone. A buffer exported while the
    /// exporter is revoked starts revoked. The caller shares the buffer with user space
    /// by installing [`DmaBuf::into_file`] in a file descriptor it reserved before.
    pub fn export(
        &self,
        module: &'static ThisModule,
        bar: BarIndex,
        ranges: &[BarRange],
        flags: u32,
    ) -> Result<ARef<DmaBuf>> {
        let mut state = self.0.lock();
        if state.gone {
            return Err(ENODEV);
        }
        if flags & !OPEN_FLAGS != 0 {
            return Err(EINVAL);
        }
        let Bar {
            provider,
            info: bar,
            claimed,
        } = state.bars[bar.get() as usize].ok_or(EINVAL)?;
        if !claimed {
            return Err(EPERM);
        }
        let (start, size) = (
            bar.phys_start,
            check_ranges(bar.phys_start, bar.len, ranges)?,
        );
        let mut phys = KVec::with_capacity(ranges.len(), GFP_KERNEL)?;
        for r in ranges {
            // Cannot overflow: checked above.
            phys.push(
                bindings::phys_vec {
                    paddr: start + r.offset,
                    len: r.len as usize,
                },
                GFP_KERNEL,
            )?;
        }
        state.exports.reserve(1, GFP_KERNEL)?;
        let revoked = state.reasons != 0;
        let export = Arc::pin_init(
            try_pin_init!(Export {
                revoked: AtomicBool::new(revoked),
                provider,
                ranges: phys,
                size,
                maps: Atomic::new(0),
                wait_lock <- new_mutex!(()),
                unmapped <- new_condvar!(),
                buf: AtomicPtr::new(ptr::null_mut()),
                owner: self.0.clone(),
            }),
            GFP_KERNEL,
        )?;
        let buf = DmaBuf::export(&EXPORT_OPS, module, export.clone(), size, flags)?;
        // INVARIANT: Set before the export goes on the list, with the owner locked.
        export.buf.store(buf.as_raw(), Ordering::Relaxed);
        state
            .exports
            .push_within_capacity(export)
            .map_err(|_| ENOMEM)?;
        Ok(buf)
    }

    /// Revokes every export for the user ([`Revocation::User`]): see [`Self::revoke_for`].
    pub fn revoke(&self) -> Result {
        self.revoke_for(Revocation::User)
    }

    /// Takes back the user's revocation ([`Revocation::User`]): see [`Self::rearm`].
    pub fn unrevoke(&self) -> Result {
        self.rearm(Revocation::User)
    }

    /// Revokes every export, for `why`, synchronously: when this returns, every importer has
    /// seen `invalidate_mappings`, every fence has signalled and every mapping is unmapped
    /// (DMA the importers had started is done). New attachments and mappings fail with
    /// `ENODEV` until every reason is taken back. Fails with `ENODEV` once the device is
    /// gone.
    pub fn revoke_for(&self, why: Revocation) -> Result {
        self.update(|reasons| reasons | why as u32)
    }

    /// Takes back the revocation for `why`: once no reason is left, importers may map again.
    /// A reset's re-arm thus never undoes a user's revocation. Fails with `ENODEV` once the
    /// device is gone.
    pub fn rearm(&self, why: Revocation) -> Result {
        self.update(|reasons| reasons & !(why as u32))
    }

    fn update(&self, f: impl FnOnce(u32) -> u32) -> Result {
        let mut state = self.0.lock();
        if state.gone {
            return Err(ENODEV);
        }
        let was = state.reasons != 0;
        state.reasons = f(state.reasons);
        let now = state.reasons != 0;
        if was != now {
            for export in state.exports.iter() {
                export.set_revoked(&state, now);
            }
        }
        Ok(())
    }

    /// Returns where memory BAR `bar` is (`EINVAL` if it is none, `ENODEV` once the device
    /// is gone).
    pub fn bar_info(&self, bar: BarIndex) -> Result<BarInfo> {
        let state = self.0.lock();
        if state.gone {
            return Err(ENODEV);
        }
        Ok(state.bars[bar.get() as usize].ok_or(EINVAL)?.info)
    }

    /// Returns the current state.
    pub fn status(&self) -> ExporterStatus {
        let state = self.0.lock();
        let mut status = ExporterStatus {
            revoked: state.reasons != 0 || state.gone,
            reasons: state.reasons,
            gone: state.gone,
            exports: 0,
            mappings: 0,
        };
        for e in state.exports.iter() {
            status.exports += 1;
            status.mappings += e.maps.load(Relaxed);
        }
        status
    }
}
