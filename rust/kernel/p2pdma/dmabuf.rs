// SPDX-License-Identifier: GPL-2.0

//! dma-buf export of provider MMIO ranges, with synchronous revocation, and a dynamic
//! peer-to-peer importer.
//!
//! C headers: [`include/linux/dma-buf.h`](srctree/include/linux/dma-buf.h),
//! [`include/linux/dma-buf-mapping.h`](srctree/include/linux/dma-buf-mapping.h)
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
//! Only dynamic importers that allow peer-to-peer and implement `invalidate_mappings` may
//! attach (`dma_buf_attach_revocable()`); [`ImportRef`] is such an importer.

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
        Bound,
        Core, //
    },
    dma::{
        DataDirection,
        DmaAddress, //
    },
    error::from_err_ptr,
    io::ResourceSize,
    new_condvar,
    new_mutex,
    page::PAGE_SIZE,
    pci,
    prelude::*,
    scatterlist::SGTable,
    sync::{
        aref::ARef,
        Arc,
        CondVar,
        Mutex, //
    },
    task::MAX_SCHEDULE_TIMEOUT,
    ThisModule, //
};
use core::{
    marker::PhantomData,
    ptr,
    sync::atomic::{
        AtomicBool,
        AtomicPtr,
        AtomicU32,
        Ordering, //
    },
};

/// Most ranges one exported dma-buf may have.
pub const MAX_RANGES: usize = 256;

/// The file flags an export may ask for.
const OPEN_FLAGS: u32 = bindings::O_CLOEXEC | bindings::O_ACCMODE;

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

/// The reservation lock of a dma-buf, held (`dma_resv_lock()` without an acquire context).
///
/// # Invariants
///
/// `resv` is the locked reservation object of a dma-buf that stays alive for `'a`.
pub(crate) struct ResvGuard<'a> {
    resv: *mut bindings::dma_resv,
    _buf: PhantomData<&'a bindings::dma_buf>,
}

impl ResvGuard<'_> {
    /// Locks the reservation object of `dmabuf`.
    ///
    /// # Safety
    ///
    /// `dmabuf` must point to a dma-buf that stays alive while the guard exists, and the
    /// caller must not hold its reservation lock.
    unsafe fn lock(dmabuf: *mut bindings::dma_buf) -> Self {
        // SAFETY: `dmabuf` is alive (safety requirement).
        let resv = unsafe { (*dmabuf).resv };
        // SAFETY: `resv` is the buffer's initialised reservation object; without an acquire
        // context the lock cannot fail.
        unsafe { bindings::dma_resv_lock(resv, ptr::null_mut()) };
        // INVARIANT: locked just now; the buffer outlives the guard.
        Self {
            resv,
            _buf: PhantomData,
        }
    }

    /// Waits, uninterruptibly, for every fence of the buffer (`DMA_RESV_USAGE_BOOKKEEP`).
    fn wait_all_fences(&self) {
        // SAFETY: `resv` is locked by this guard (type invariant).
        unsafe {
            bindings::dma_resv_wait_timeout(
                self.resv,
                bindings::dma_resv_usage_DMA_RESV_USAGE_BOOKKEEP,
                false,
                MAX_SCHEDULE_TIMEOUT as c_ulong,
            )
        };
    }
}

impl Drop for ResvGuard<'_> {
    fn drop(&mut self) {
        // SAFETY: `resv` is locked by this guard (type invariant).
        unsafe { bindings::dma_resv_unlock(self.resv) };
    }
}

/// The dma-buf of an export, or null once it is released.
struct BufPtr(*mut bindings::dma_buf);

// SAFETY: The pointer is only used under the mutex that holds it, by any thread.
unsafe impl Send for BufPtr {}

/// State of one exported dma-buf, shared by its exporter and the dma-buf (its `priv`).
///
/// # Invariants
///
/// - `provider` is dereferenced (by `dma_buf_phys_vec_to_sgt()`) only in the map callback,
///   with the reservation lock held and `revoked` false. `revoked` is written only with the
///   reservation lock held. Before the provider goes away, [`Exporter`] sets `revoked` for
///   good and waits until `maps` is zero.
/// - `maps` counts the mappings handed out and not yet unmapped.
#[pin_data]
struct Export {
    revoked: AtomicBool,
    provider: *mut bindings::p2pdma_provider,
    ranges: KVec<bindings::phys_vec>,
    size: usize,
    #[pin]
    maps: Mutex<usize>,
    #[pin]
    unmapped: CondVar,
    /// Set after export, cleared by the release callback; the exporter holds this lock
    /// while it works on the buffer, so the dma-buf cannot be freed under it.
    #[pin]
    dmabuf: Mutex<BufPtr>,
}

// SAFETY: The provider pointer is shared read-only C state (see the type invariants); all
// other fields are thread-safe.
unsafe impl Send for Export {}
// SAFETY: See `Send`.
unsafe impl Sync for Export {}

impl Export {
    /// Revokes (`revoke`) or re-arms the buffer, synchronously, in VFIO's order.
    fn set_revoked(&self, revoke: bool) {
        let slot = self.dmabuf.lock();
        let dmabuf = slot.0;
        if dmabuf.is_null() {
            return;
        }
        // SAFETY: `dmabuf` is alive: its release callback clears `slot` first and cannot
        // while we hold the lock. `get_file_active()` fails for a file being released.
        let file = unsafe { bindings::get_file_active(&raw mut (*dmabuf).file) };
        if file.is_null() {
            return;
        }
        if self.revoked.load(Ordering::Relaxed) != revoke {
            {
                // SAFETY: `dmabuf` is alive (the file reference) and we do not hold its lock.
                let resv = unsafe { ResvGuard::lock(dmabuf) };
                if revoke {
                    self.revoked.store(true, Ordering::Relaxed);
                }
                // SAFETY: The reservation lock is held, as the function requires.
                unsafe { bindings::dma_buf_invalidate_mappings(dmabuf) };
                resv.wait_all_fences();
            }
            if revoke {
                // Importers unmap with the reservation lock held: wait without it.
                let mut maps = self.maps.lock();
                while *maps != 0 {
                    self.unmapped.wait(&mut maps);
                }
            } else {
                // SAFETY: As above.
                let _resv = unsafe { ResvGuard::lock(dmabuf) };
                self.revoked.store(false, Ordering::Relaxed);
            }
        }
        // SAFETY: Gives back the reference `get_file_active()` took; the last `fput()` is
        // deferred, so the release callback never runs here, under `slot`.
        unsafe { bindings::fput(file) };
    }
}

/// The exporter's view of a device: its BARs and its exports.
struct ExporterState {
    /// Each memory BAR: its provider and what [`ExporterHandle::bar_info`] reports.
    bars: [Option<(*mut bindings::p2pdma_provider, BarInfo)>; 6],
    exports: KVec<Arc<Export>>,
    revoked: bool,
    /// The device is unbound: everything revoked for good, no new exports.
    gone: bool,
}

// SAFETY: The provider pointers are shared read-only C state, used under the mutex.
unsafe impl Send for ExporterState {}

/// The current state of an exporter, for reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExporterStatus {
    /// Exports are revoked (by [`ExporterHandle::revoke`] or because the device is gone).
    pub revoked: bool,
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
pub struct Exporter<'bound> {
    work: UnbindWork<'bound, Mutex<ExporterState>>,
}

impl<'bound> Exporter<'bound> {
    /// Creates an exporter for the memory BARs of `pdev`, in its [`Core`] context (probe),
    /// enabling P2PDMA on it if needed ([`P2pdma::init`]).
    pub fn new(pdev: &'bound pci::Device<Core<'_>>) -> Result<Self> {
        let p2p = P2pdma::init(pdev)?;
        let mut bars = [None; 6];
        for bar in BarIndex::all() {
            if let Ok(p) = p2p.provider(bar) {
                let info = BarInfo {
                    phys_start: p.phys_start(),
                    len: p.len(),
                    bus_offset: p.bus_offset(),
                };
                bars[bar.get() as usize] = Some((p.as_raw(), info));
            }
        }
        let state = ExporterState {
            bars,
            exports: KVec::new(),
            revoked: false,
            gone: false,
        };
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
        state.revoked = true;
        state.bars = [None; 6];
        for export in state.exports.drain_all() {
            export.set_revoked(true);
        }
    }
}

/// A `'static` handle of an [`Exporter`]: export, revoke, re-arm, report.
#[derive(Clone)]
pub struct ExporterHandle(Arc<Mutex<ExporterState>>);

impl ExporterHandle {
    /// Exports `ranges` of memory BAR `bar` as one dma-buf and returns a new file
    /// descriptor for it, opened with `flags`: `O_CLOEXEC` and an access mode (`O_RDONLY`,
    /// `O_WRONLY`, `O_RDWR`), nothing else (`EINVAL`).
    ///
    /// The ranges are checked with [`check_ranges`]. Fails with `EINVAL` for a BAR that is
    /// no memory BAR and `ENODEV` once the device is gone. A buffer exported while the
    /// exporter is revoked starts revoked.
    pub fn export(
        &self,
        module: &'static ThisModule,
        bar: BarIndex,
        ranges: &[BarRange],
        flags: u32,
    ) -> Result<i32> {
        let mut state = self.0.lock();
        if state.gone {
            return Err(ENODEV);
        }
        if flags & !OPEN_FLAGS != 0 {
            return Err(EINVAL);
        }
        let (provider, bar) = state.bars[bar.get() as usize].ok_or(EINVAL)?;
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
        state.exports.retain(|e| !e.dmabuf.lock().0.is_null());
        state.exports.reserve(1, GFP_KERNEL)?;
        let revoked = state.revoked;
        let export = Arc::pin_init(
            try_pin_init!(Export {
                revoked: AtomicBool::new(revoked),
                provider,
                ranges: phys,
                size,
                maps <- new_mutex!(0),
                unmapped <- new_condvar!(),
                dmabuf <- new_mutex!(BufPtr(ptr::null_mut())),
            }),
            GFP_KERNEL,
        )?;
        let info = bindings::dma_buf_export_info {
            exp_name: c"p2pdma".as_char_ptr(),
            owner: module.as_ptr(),
            ops: &EXPORT_OPS,
            size,
            flags: flags as i32,
            resv: ptr::null_mut(),
            priv_: Arc::into_raw(export.clone()).cast_mut().cast(),
        };
        // SAFETY: `info` is complete; the ops have every mandatory callback.
        let dmabuf = match from_err_ptr(unsafe { bindings::dma_buf_export(&info) }) {
            Ok(d) => d,
            Err(e) => {
                // SAFETY: Not exported: the reference given as `priv` comes back.
                drop(unsafe { Arc::from_raw(info.priv_.cast::<Export>()) });
                return Err(e);
            }
        };
        export.dmabuf.lock().0 = dmabuf;
        // SAFETY: `dmabuf` was just exported and we hold its only reference.
        let fd = unsafe { bindings::dma_buf_fd(dmabuf, flags as i32) };
        if fd < 0 {
            // SAFETY: The reference is still ours; its release drops `priv`.
            unsafe { bindings::dma_buf_put(dmabuf) };
            return Err(Error::from_errno(fd));
        }
        // Cannot fail: reserved above.
        let _ = state.exports.push(export, GFP_KERNEL);
        Ok(fd)
    }

    /// Revokes every export synchronously: when this returns, every importer has seen
    /// `invalidate_mappings`, every fence has signalled and every mapping is unmapped.
    /// New attachments and mappings fail with `ENODEV` until [`Self::unrevoke`].
    pub fn revoke(&self) -> Result {
        self.set_revoked(true)
    }

    /// Re-arms every export: importers may map again. Fails with `ENODEV` once the device
    /// is gone.
    pub fn unrevoke(&self) -> Result {
        self.set_revoked(false)
    }

    fn set_revoked(&self, revoke: bool) -> Result {
        let mut state = self.0.lock();
        if state.gone {
            return Err(ENODEV);
        }
        state.revoked = revoke;
        for export in state.exports.iter() {
            export.set_revoked(revoke);
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
        Ok(state.bars[bar.get() as usize].ok_or(EINVAL)?.1)
    }

    /// Returns the current state.
    pub fn status(&self) -> ExporterStatus {
        let state = self.0.lock();
        let mut status = ExporterStatus {
            revoked: state.revoked,
            gone: state.gone,
            exports: 0,
            mappings: 0,
        };
        for e in state.exports.iter() {
            if !e.dmabuf.lock().0.is_null() {
                status.exports += 1;
                status.mappings += *e.maps.lock();
            }
        }
        status
    }
}

/// Returns the export a dma-buf of ours belongs to.
///
/// # Safety
///
/// `dmabuf` must be a live dma-buf exported by [`ExporterHandle::export`].
unsafe fn export_of<'a>(dmabuf: *mut bindings::dma_buf) -> &'a Export {
    // SAFETY: `priv` holds a reference to the export until the release callback.
    unsafe { &*(*dmabuf).priv_.cast::<Export>() }
}

/// `dma_buf_ops.attach`: admits only dynamic, peer-to-peer, revocable importers.
///
/// # Safety
///
/// `dmabuf` must be a live dma-buf of [`ExporterHandle::export`] and `attach` a valid
/// attachment to it.
unsafe extern "C" fn export_attach(
    dmabuf: *mut bindings::dma_buf,
    attach: *mut bindings::dma_buf_attachment,
) -> c_int {
    // SAFETY: The dma-buf core calls this for a live buffer of ours and a valid attachment.
    let (export, p2p) = unsafe { (export_of(dmabuf), (*attach).peer2peer) };
    if !p2p {
        return -(bindings::EOPNOTSUPP as c_int);
    }
    if export.revoked.load(Ordering::Relaxed) {
        return ENODEV.to_errno();
    }
    // SAFETY: `attach` is valid.
    if !unsafe { bindings::dma_buf_attach_revocable(attach) } {
        return -(bindings::EOPNOTSUPP as c_int);
    }
    0
}

/// `dma_buf_ops.map_dma_buf`: maps the ranges for the attached device, unless revoked.
///
/// # Safety
///
/// `attach` must be a valid attachment to a live dma-buf of [`ExporterHandle::export`],
/// and the buffer's reservation lock must be held.
unsafe extern "C" fn export_map(
    attach: *mut bindings::dma_buf_attachment,
    dir: bindings::dma_data_direction,
) -> *mut bindings::sg_table {
    // SAFETY: Called with the reservation lock held, for a valid attachment to a live
    // buffer of ours.
    let export = unsafe { export_of((*attach).dmabuf) };
    if export.revoked.load(Ordering::Relaxed) {
        return ENODEV.to_ptr();
    }
    // SAFETY: Not revoked, with the reservation lock held: the provider is alive (type
    // invariant of `Export`); the ranges were checked against its BAR.
    let sgt = unsafe {
        bindings::dma_buf_phys_vec_to_sgt(
            attach,
            export.provider,
            export.ranges.as_ptr().cast_mut(),
            export.ranges.len(),
            export.size,
            dir,
        )
    };
    if from_err_ptr(sgt).is_ok() {
        *export.maps.lock() += 1;
    }
    sgt
}

/// `dma_buf_ops.unmap_dma_buf`: frees a mapping of [`export_map`] and counts it.
///
/// # Safety
///
/// As for [`export_map`]; `sgt` must come from [`export_map`] for `attach` and `dir`.
unsafe extern "C" fn export_unmap(
    attach: *mut bindings::dma_buf_attachment,
    sgt: *mut bindings::sg_table,
    dir: bindings::dma_data_direction,
) {
    // SAFETY: Called with the reservation lock held, for a mapping `export_map` made.
    let export = unsafe {
        bindings::dma_buf_free_sgt(attach, sgt, dir);
        export_of((*attach).dmabuf)
    };
    let mut maps = export.maps.lock();
    *maps -= 1;
    if *maps == 0 {
        export.unmapped.notify_all();
    }
}

/// `dma_buf_ops.release`: drops the buffer's reference of its export.
///
/// # Safety
///
/// `dmabuf` must be a dma-buf of [`ExporterHandle::export`] whose last reference is gone;
/// called once.
unsafe extern "C" fn export_release(dmabuf: *mut bindings::dma_buf) {
    // SAFETY: The last reference of the buffer is gone; `priv` gives its export
    // reference back here, once.
    let export = unsafe { Arc::from_raw((*dmabuf).priv_.cast::<Export>()) };
    export.dmabuf.lock().0 = ptr::null_mut();
}

static EXPORT_OPS: bindings::dma_buf_ops = bindings::dma_buf_ops {
    attach: Some(export_attach),
    map_dma_buf: Some(export_map),
    unmap_dma_buf: Some(export_unmap),
    release: Some(export_release),
    // SAFETY: All other callbacks are optional; zero is `None`.
    ..unsafe { core::mem::MaybeUninit::zeroed().assume_init() }
};

/// Importer state the attachment points to (`importer_priv`).
///
/// # Invariants
///
/// `sgt` is the current mapping of the attachment or null; it changes only with the
/// reservation lock held.
struct ImportState {
    sgt: AtomicPtr<bindings::sg_table>,
    dir: bindings::dma_data_direction,
    invalidations: AtomicU32,
    stop: Option<Arc<dyn Fn() + Send + Sync>>,
}

/// A dynamic, peer-to-peer attachment of a dma-buf to a bound device, and its mapping.
///
/// When the exporter invalidates the buffer, the attachment calls the `stop` function it
/// was given (to stop the device's DMA) and unmaps, inside the callback; [`Import::map`]
/// maps again once the exporter allows it.
///
/// # Invariants
///
/// `dmabuf` holds a reference of the buffer and `attach` is its attachment to `dev`, with
/// `state` as importer data; both live until drop.
pub(super) struct Import {
    dmabuf: *mut bindings::dma_buf,
    attach: *mut bindings::dma_buf_attachment,
    state: KBox<ImportState>,
    _dev: ARef<device::Device>,
}

// SAFETY: The dma-buf calls may be made from any thread; `state` is thread-safe.
unsafe impl Send for Import {}
// SAFETY: Shared use only maps and unmaps under the reservation lock.
unsafe impl Sync for Import {}

/// One DMA range of a mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DmaRange {
    /// The address the device uses.
    pub addr: DmaAddress,
    /// Its length in bytes.
    pub len: ResourceSize,
}

impl Import {
    /// Attaches the dma-buf of file descriptor `fd` (of the calling process) to `dev`.
    ///
    /// `stop` runs whenever a mapping is unmapped, with the reservation lock held, just
    /// before the unmap: in the invalidation callback, in [`Self::unmap`] and in drop. It
    /// must stop (or wait for) the device's DMA to the buffer before it returns, however
    /// long that takes; meanwhile it holds up the exporter's revocation (which may hold
    /// the exporter's device lock) and every user of the reservation lock. Fails with
    /// `EBADF` or `EINVAL` for a bad fd, and with the exporter's errno (for
    /// example `ENODEV` for a revoked buffer).
    pub(super) fn new(
        fd: i32,
        dev: &device::Device<Bound>,
        dir: DataDirection,
        stop: Option<Arc<dyn Fn() + Send + Sync>>,
    ) -> Result<Self> {
        let state = KBox::new(
            ImportState {
                sgt: AtomicPtr::new(ptr::null_mut()),
                dir: dir.into(),
                invalidations: AtomicU32::new(0),
                stop,
            },
            GFP_KERNEL,
        )?;
        // SAFETY: `dma_buf_get()` checks the fd.
        let dmabuf = from_err_ptr(unsafe { bindings::dma_buf_get(fd) })?;
        // SAFETY: `dmabuf` holds a reference, `dev` is bound, and `state` lives until the
        // attachment is detached in drop.
        let attach = from_err_ptr(unsafe {
            bindings::dma_buf_dynamic_attach(
                dmabuf,
                dev.as_raw(),
                &IMPORT_OPS,
                ptr::from_ref(&*state).cast_mut().cast(),
            )
        });
        let attach = match attach {
            Ok(a) => a,
            Err(e) => {
                // SAFETY: Gives back the reference `dma_buf_get()` took.
                unsafe { bindings::dma_buf_put(dmabuf) };
                return Err(e);
            }
        };
        Ok(Self {
            dmabuf,
            attach,
            state,
            _dev: dev.into(),
        })
    }

    /// Maps the buffer for the device, if it is not mapped, and returns its DMA ranges.
    ///
    /// The ranges may be invalidated as soon as this returns; a device must only be started
    /// on them inside [`Self::with_mapping`].
    pub(super) fn map(&self) -> Result<KVec<DmaRange>> {
        // SAFETY: `dmabuf` lives until drop (type invariant); we do not hold its lock.
        let _resv = unsafe { ResvGuard::lock(self.dmabuf) };
        // SAFETY: `_resv` holds the reservation lock.
        unsafe { self.map_locked() }
    }

    /// Maps the buffer for the device, if it is not mapped, and calls `f` with its DMA
    /// ranges and the map type, while the mapping cannot be invalidated.
    ///
    /// `f` runs with the buffer's reservation lock held: DMA the device starts in `f` is
    /// seen by the exporter's revocation, which then waits for the `stop` function of
    /// [`Import::new`]. The map type is known for buffers of [`ExporterHandle::export`]
    /// (`None` for other exporters).
    pub(super) fn with_mapping<R>(
        &self,
        f: impl FnOnce(&[DmaRange], Option<MapType>) -> R,
    ) -> Result<R> {
        // SAFETY: `dmabuf` lives until drop (type invariant); we do not hold its lock.
        let _resv = unsafe { ResvGuard::lock(self.dmabuf) };
        // SAFETY: `_resv` holds the reservation lock.
        let ranges = unsafe { self.map_locked() }?;
        // SAFETY: `_resv` holds the reservation lock and the buffer is mapped.
        let map_type = unsafe { self.map_type_locked() };
        Ok(f(&ranges, map_type))
    }

    /// Returns the map type of a mapped buffer of [`ExporterHandle::export`].
    ///
    /// # Safety
    ///
    /// The caller holds the buffer's reservation lock, and the buffer is mapped.
    // Not generic and not inlined: the C calls stay in the kernel crate (see `map_locked`).
    #[inline(never)]
    unsafe fn map_type_locked(&self) -> Option<MapType> {
        // SAFETY: `dmabuf` is alive (type invariant); `ops` and `priv` never change.
        if !ptr::eq(unsafe { (*self.dmabuf).ops }, &EXPORT_OPS) {
            return None;
        }
        // SAFETY: One of ours, alive.
        let export = unsafe { export_of(self.dmabuf) };
        // SAFETY: Mapped, with the reservation lock held: not revoked, so the provider is
        // alive (invariants of `Export`); `_dev` is a valid device.
        let raw = unsafe { bindings::pci_p2pdma_map_type(export.provider, self._dev.as_raw()) };
        Some(MapType::from_c(raw))
    }

    /// Maps the buffer if needed and returns its ranges.
    ///
    /// # Safety
    ///
    /// The caller holds the buffer's reservation lock.
    // dma-buf symbols live in the `DMA_BUF` namespace, which modules do not import: this
    // function is not generic and not inlined, so the calls stay in the kernel crate.
    #[inline(never)]
    unsafe fn map_locked(&self) -> Result<KVec<DmaRange>> {
        let mut sgt = self.state.sgt.load(Ordering::Relaxed);
        if sgt.is_null() {
            // SAFETY: A valid dynamic attachment, with the reservation lock held.
            sgt = from_err_ptr(unsafe {
                bindings::dma_buf_map_attachment(self.attach, self.state.dir)
            })?;
            self.state.sgt.store(sgt, Ordering::Relaxed);
            // A dynamic importer must wait for the exporter's kernel fences (a buffer being
            // moved) before the device uses the mapping, as RDMA's does.
            // SAFETY: `dmabuf` is alive (type invariant) and its reservation lock held.
            let ret = unsafe {
                bindings::dma_resv_wait_timeout(
                    (*self.dmabuf).resv,
                    bindings::dma_resv_usage_DMA_RESV_USAGE_KERNEL,
                    true,
                    MAX_SCHEDULE_TIMEOUT as c_ulong,
                )
            };
            if ret < 0 {
                // SAFETY: The reservation lock is held; `attach` is valid.
                unsafe { unmap_locked(self.attach, &self.state) };
                return Err(Error::from_errno(ret as i32));
            }
        }
        // SAFETY: `sgt` is the attachment's mapping; it is neither freed nor changed while
        // the caller holds the reservation lock.
        let table = unsafe { SGTable::from_raw(sgt) };
        let mut out = KVec::new();
        // The iterator walks `nents`: MMIO mappings have no CPU entries (`orig_nents` is 0).
        for sg in table.iter() {
            out.push(
                DmaRange {
                    addr: sg.dma_address(),
                    len: sg.dma_len(),
                },
                GFP_KERNEL,
            )?;
        }
        Ok(out)
    }

    /// Unmaps the buffer if it is mapped.
    pub(super) fn unmap(&self) {
        // SAFETY: As in `map`.
        let _resv = unsafe { ResvGuard::lock(self.dmabuf) };
        // SAFETY: The reservation lock is held; `attach` is valid.
        unsafe { unmap_locked(self.attach, &self.state) };
    }

    /// Returns `true` if the buffer is mapped now.
    pub(super) fn is_mapped(&self) -> bool {
        !self.state.sgt.load(Ordering::Relaxed).is_null()
    }

    /// Returns how many times the exporter invalidated the mapping.
    pub(super) fn invalidations(&self) -> u32 {
        self.state.invalidations.load(Ordering::Relaxed)
    }
}

impl Drop for Import {
    fn drop(&mut self) {
        self.unmap();
        // SAFETY: The attachment and the buffer reference are ours (type invariant) and are
        // given back once, here; `state` outlives the attachment.
        unsafe {
            bindings::dma_buf_detach(self.dmabuf, self.attach);
            bindings::dma_buf_put(self.dmabuf);
        }
    }
}

/// Stops the device (the importer's `stop`) and unmaps the attachment's mapping, if any.
///
/// # Safety
///
/// The reservation lock of the buffer must be held and `attach` valid with `state` as its
/// importer data.
unsafe fn unmap_locked(attach: *mut bindings::dma_buf_attachment, state: &ImportState) {
    let sgt = state.sgt.swap(ptr::null_mut(), Ordering::Relaxed);
    if !sgt.is_null() {
        // The device must be done with the mapping before it goes.
        if let Some(stop) = &state.stop {
            stop();
        }
        // SAFETY: `sgt` is the current mapping (invariant of `ImportState`), unmapped once.
        unsafe { bindings::dma_buf_unmap_attachment(attach, sgt, state.dir) };
    }
}

/// `dma_buf_attach_ops.invalidate_mappings`: stops the device and unmaps.
///
/// # Safety
///
/// `attach` must be an attachment made by [`Import::new`], and the buffer's reservation
/// lock must be held.
unsafe extern "C" fn import_invalidate(attach: *mut bindings::dma_buf_attachment) {
    // SAFETY: Our attachments carry their `ImportState`, alive until detach.
    let state = unsafe { &*(*attach).importer_priv.cast::<ImportState>() };
    // SAFETY: The dma-buf core calls this with the reservation lock held; `stop` runs
    // there, before the unmap.
    unsafe { unmap_locked(attach, state) };
    state.invalidations.fetch_add(1, Ordering::Relaxed);
}

static IMPORT_OPS: bindings::dma_buf_attach_ops = bindings::dma_buf_attach_ops {
    allow_peer2peer: true,
    invalidate_mappings: Some(import_invalidate),
};

/// What an [`Importer`] shares with its handles.
struct ImporterState {
    /// The importing device; bound while `gone` is false.
    dev: ARef<device::Device>,
    dir: DataDirection,
    stop: Arc<dyn Fn() + Send + Sync>,
    gone: bool,
    slots: KVec<Arc<Slot>>,
}

/// The attachment of one [`ImportRef`]; `None` once detached.
type Slot = Mutex<Option<Import>>;

/// Imports dma-bufs for a bound device, on behalf of files and other `'static` users.
///
/// When the device is unbound, every import is stopped, unmapped and detached while the
/// device is still bound: for a PCI device in its remove callback, before the driver's
/// [`unbind`](pci::Driver::unbind) runs; for other devices (and a failed probe) when the
/// device's resources are released. This is device-managed work registered
/// by [`Importer::new`], so it happens even if the importer was leaked; dropping it only
/// does it early. The [`ImporterHandle`]s and [`ImportRef`]s then fail with `ENODEV`.
pub struct Importer<'bound> {
    work: UnbindWork<'bound, Mutex<ImporterState>>,
}

impl<'bound> Importer<'bound> {
    /// Creates an importer for `dev`, mapping in direction `dir`, in its [`Core`] context
    /// (probe): it belongs to the binding it is made in, whose unbind detaches its imports.
    ///
    /// `stop` is called in every invalidation, as for [`ImportRef::with_mapping`]: it must
    /// stop the device's DMA to the buffers before it returns, however long that takes;
    /// meanwhile it holds up the exporter's revocation (which may hold the exporter's
    /// device lock) and every user of the buffer's reservation lock. It must not take the
    /// importing device's lock: its unbind holds it while it detaches.
    pub fn new(
        dev: &'bound device::Device<Core<'_>>,
        dir: DataDirection,
        stop: impl Fn() + Send + Sync + 'static,
    ) -> Result<Self> {
        let stop: Arc<dyn Fn() + Send + Sync> = Arc::new(stop, GFP_KERNEL)?;
        let state = ImporterState {
            dev: ARef::from(&**dev),
            dir,
            stop,
            gone: false,
            slots: KVec::new(),
        };
        Ok(Self {
            work: UnbindWork::new(dev, new_mutex!(state))?,
        })
    }

    /// Returns a handle that can outlive the binding.
    pub fn handle(&self) -> ImporterHandle {
        ImporterHandle(self.work.shared().into())
    }
}

impl OnUnbind for Mutex<ImporterState> {
    fn unbind(&self) {
        let mut state = self.lock();
        state.gone = true;
        for slot in state.slots.drain_all() {
            // Detaches while the device is still bound.
            drop(slot.lock().take());
        }
    }
}

/// A `'static` handle of an [`Importer`].
#[derive(Clone)]
pub struct ImporterHandle(Arc<Mutex<ImporterState>>);

impl ImporterHandle {
    /// Attaches the dma-buf of file descriptor `fd` (of the calling process), as
    /// an [`ImportRef`]. Fails with `EBADF` or `EINVAL` for a bad fd, `ENODEV` once the
    /// device is gone, and with the exporter's errno (`ENODEV` for a revoked buffer).
    pub fn import(&self, fd: i32) -> Result<ImportRef> {
        let mut state = self.0.lock();
        if state.gone {
            return Err(ENODEV);
        }
        state.slots.reserve(1, GFP_KERNEL)?;
        // SAFETY: `gone` is false under the lock, so `dev` is bound: the unbind work of
        // `Importer::new` sets it, under this lock, before the device's resources go.
        let dev = unsafe { state.dev.as_bound() };
        let import = Import::new(fd, dev, state.dir, Some(state.stop.clone()))?;
        let slot = Arc::pin_init(new_mutex!(Some(import)), GFP_KERNEL)?;
        // Cannot fail: reserved above.
        let _ = state.slots.push(slot.clone(), GFP_KERNEL);
        Ok(ImportRef {
            slot,
            importer: self.clone(),
        })
    }
}

/// A dynamic, peer-to-peer attachment of a dma-buf to the device of an [`ImporterHandle`],
/// and its mapping; dropping it stops the device (the importer's `stop`), unmaps and detaches.
///
/// When the exporter invalidates the buffer, the attachment calls `stop` and unmaps, inside
/// the invalidation; [`ImportRef::map`] maps again once the exporter allows it. Every method
/// fails with `ENODEV` once the [`Importer`] is gone (its device unbound).
///
/// # Context
///
/// The methods sleep and take, in this order, the import's own lock and the buffer's
/// reservation lock (a `ww_mutex`, taken without an acquire context). Call them with no
/// reservation lock held and no lock that the importer's `stop` function takes: `stop` runs
/// with the reservation lock held, in the exporter's revocation (which may hold the
/// exporter's locks and, at unbind, its device lock). `stop` itself must not call into the
/// import or importer, nor take a reservation lock.
pub struct ImportRef {
    slot: Arc<Slot>,
    importer: ImporterHandle,
}

impl ImportRef {
    fn with<R>(&self, f: impl FnOnce(&Import) -> Result<R>) -> Result<R> {
        // The slot's lock keeps the importer's unbind work from detaching (and so the device
        // from being unbound) while `f` uses the attachment.
        match &*self.slot.lock() {
            Some(import) => f(import),
            None => Err(ENODEV),
        }
    }

    /// Maps the buffer for the device, if it is not mapped, waits for the exporter's kernel
    /// fences (a buffer being moved), and returns its DMA ranges.
    ///
    /// The ranges may be invalidated as soon as this returns: start the device on them only
    /// inside [`Self::with_mapping`]. Fails with the exporter's errno (`ENODEV` for a
    /// revoked buffer of [`ExporterHandle::export`]).
    pub fn map(&self) -> Result<KVec<DmaRange>> {
        self.with(Import::map)
    }

    /// Maps the buffer as [`Self::map`] does and calls `f` with its DMA ranges and the map
    /// type, while the mapping cannot be invalidated.
    ///
    /// `f` runs with the buffer's reservation lock held: DMA the device starts in `f` is
    /// seen by the exporter's revocation, which then waits for the importer's `stop`. `f`
    /// must not sleep for long, copy from or to user space, or take a reservation lock; it
    /// cannot reach this import (borrowed mutably here). The map type is known for buffers
    /// of [`ExporterHandle::export`] (`None` for other exporters).
    pub fn with_mapping<R>(
        &mut self,
        f: impl FnOnce(&[DmaRange], Option<MapType>) -> R,
    ) -> Result<R> {
        self.with(|i| i.with_mapping(f))
    }

    /// Stops the device (the importer's `stop`) and unmaps the buffer, if it is mapped.
    pub fn unmap(&self) -> Result {
        self.with(|i| {
            i.unmap();
            Ok(())
        })
    }

    /// Returns `true` if the buffer is mapped now.
    pub fn is_mapped(&self) -> Result<bool> {
        self.with(|i| Ok(i.is_mapped()))
    }

    /// Returns how many times the exporter invalidated the mapping.
    pub fn invalidations(&self) -> Result<u32> {
        self.with(|i| Ok(i.invalidations()))
    }
}

impl Drop for ImportRef {
    fn drop(&mut self) {
        let mut state = self.importer.0.lock();
        state.slots.retain(|s| !ptr::eq(&**s, &*self.slot));
        // Detaches under the importer's lock, so never after the device is unbound.
        drop(self.slot.lock().take());
    }
}
