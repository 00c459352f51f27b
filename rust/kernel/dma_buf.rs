// SPDX-License-Identifier: GPL-2.0

//! Buffers shared between drivers and devices (dma-buf).
//!
//! C headers: [`include/linux/dma-buf.h`](srctree/include/linux/dma-buf.h),
//! [`include/linux/dma-resv.h`](srctree/include/linux/dma-resv.h)
//!
//! A [`DmaBuf`] is a buffer that one driver, its exporter ([`Exporter`]), shares with
//! others, the importers, through a file. An importer attaches a device to the buffer and
//! maps it for that device. A dynamic importer ([`DynamicAttachment`], [`DynamicImporter`])
//! lets the exporter take a mapping back at any time (`invalidate_mappings`); both sides
//! then work under the buffer's reservation lock ([`ResvGuard`]).
//!
//! The dma-buf functions are in the `DMA_BUF` symbol namespace. Every call to them here is in
//! a function that is neither generic nor inlined, so it stays in the kernel crate: a module
//! that uses these types, or implements [`Exporter`] or [`DynamicImporter`], needs no
//! namespace import of its own (its own direct calls to dma-buf functions would).
//!
//! # Examples
//!
//! An exporter whose buffers cannot be mapped, and what its buffers tell:
//!
//! ```
//! use kernel::{
//!     dma::DataDirection,
//!     dma_buf::{Attachment, DmaBuf, ExportOps, ExportedTable, Exporter, ResvUsage},
//!     fs::file::flags::O_RDWR,
//!     sync::{Arc, ArcBorrow},
//!     ThisModule,
//! };
//!
//! struct Unmappable;
//!
//! #[vtable]
//! impl Exporter for Unmappable {
//!     type Ptr = Arc<Unmappable>;
//!     const NAME: &'static CStr = c"doctest";
//!
//!     fn map(_: ArcBorrow<'_, Self>, _: &Attachment, _: DataDirection) -> Result<ExportedTable> {
//!         Err(ENOMEM)
//!     }
//!
//!     fn unmap(_: ArcBorrow<'_, Self>, _: &Attachment, t: ExportedTable, _: DataDirection) {
//!         let _ = t.into_raw();
//!     }
//! }
//!
//! static OPS: ExportOps<Unmappable> = ExportOps::new();
//! static OTHER: ExportOps<Unmappable> = ExportOps::new();
//! // SAFETY: A null module is the kernel itself, where doctests are built.
//! static KERNEL: ThisModule = unsafe { ThisModule::from_ptr(core::ptr::null_mut()) };
//!
//! let buf = DmaBuf::export(&OPS, &KERNEL, Arc::new(Unmappable, GFP_KERNEL)?, 4096, O_RDWR)?;
//! assert_eq!(buf.size(), 4096);
//! assert!(buf.exporter_data(&OPS).is_some());
//! // Another table, even of the same exporter type, is not this buffer's.
//! assert!(buf.exporter_data(&OTHER).is_none());
//!
//! let mut resv = buf.lock();
//! // Only the exporter may invalidate; with no importer there is nothing to wait for.
//! assert_eq!(resv.invalidate_mappings(&OTHER), Err(EPERM));
//! resv.invalidate_mappings(&OPS)?;
//! resv.wait(ResvUsage::Bookkeep, false)?;
//! drop(resv);
//!
//! // A file descriptor that is not open.
//! assert_eq!(DmaBuf::get(-1).err(), Some(EBADF));
//! # Ok::<(), Error>(())
//! ```

use crate::{
    bindings,
    dma::DataDirection,
    error::{
        from_err_ptr,
        VTABLE_DEFAULT_ERROR, //
    },
    fs::File,
    prelude::*,
    sync::aref::{
        ARef,
        AlwaysRefCounted, //
    },
    task::MAX_SCHEDULE_TIMEOUT,
    types::{
        ForeignOwnable,
        NotThreadSafe,
        Opaque, //
    },
    ThisModule, //
};
use core::{
    marker::PhantomData,
    ptr::{
        self,
        NonNull, //
    },
};

mod attachment;

pub use attachment::{
    Attachment,
    DynamicAttachment,
    DynamicImporter, //
};

/// A dma-buf (`struct dma_buf`).
///
/// # Invariants
///
/// The object is a live dma-buf. It is reference-counted through its file: every
/// `ARef<DmaBuf>` owns one reference of `file`.
#[repr(transparent)]
pub struct DmaBuf(Opaque<bindings::dma_buf>);

// SAFETY: dma-bufs are shared between threads by design; every method here may be called
// from any thread.
unsafe impl Send for DmaBuf {}
// SAFETY: See `Send`.
unsafe impl Sync for DmaBuf {}

// SAFETY: `get_file()` and `dma_buf_put()` take and give back a reference of the buffer's
// file, which keeps the buffer alive (type invariant).
unsafe impl AlwaysRefCounted for DmaBuf {
    #[inline]
    fn inc_ref(&self) {
        // SAFETY: A shared reference means the buffer, and so its file, is alive.
        unsafe { bindings::get_file((*self.as_raw()).file) };
    }

    // Not inlined: `dma_buf_put()` is in the `DMA_BUF` namespace (see the module docs).
    #[inline(never)]
    unsafe fn dec_ref(obj: NonNull<Self>) {
        // SAFETY: The caller gives us a reference; `DmaBuf` is a transparent `dma_buf`.
        unsafe { bindings::dma_buf_put(obj.cast().as_ptr()) };
    }
}

impl DmaBuf {
    /// Returns the `DmaBuf` of a raw dma-buf pointer.
    ///
    /// # Safety
    ///
    /// `ptr` must point to a dma-buf that stays alive for `'a`.
    pub unsafe fn from_raw<'a>(ptr: *mut bindings::dma_buf) -> &'a Self {
        // SAFETY: `DmaBuf` is a transparent `dma_buf`, alive for `'a` (safety requirement).
        unsafe { &*ptr.cast() }
    }

    /// Returns the raw dma-buf pointer.
    pub fn as_raw(&self) -> *mut bindings::dma_buf {
        self.0.get()
    }

    /// Takes a reference of the dma-buf that file descriptor `fd` of the calling process
    /// refers to: `EBADF` if `fd` is not open, `EINVAL` if it is not a dma-buf.
    #[inline(never)]
    pub fn get(fd: i32) -> Result<ARef<Self>> {
        // SAFETY: `dma_buf_get()` checks `fd`.
        let ptr = from_err_ptr(unsafe { bindings::dma_buf_get(fd) })?;
        // SAFETY: `dma_buf_get()` returned a live dma-buf with a reference that is now ours.
        Ok(unsafe { ARef::from_raw(NonNull::new_unchecked(ptr.cast())) })
    }

    /// Takes a reference of the dma-buf at `ptr`, unless its last reference is gone.
    ///
    /// # Safety
    ///
    /// `ptr` must point to a dma-buf whose memory stays valid while the returned reference
    /// lives: its release has not finished and cannot before the reference is dropped (for
    /// example, the exporter's release callback takes the pointer off a list under a lock
    /// that the caller holds meanwhile).
    pub unsafe fn get_active(ptr: *mut bindings::dma_buf) -> Option<ARef<Self>> {
        // SAFETY: The memory is valid (safety requirement); `get_file_active()` fails once
        // the file's last reference is gone.
        let file = unsafe { bindings::get_file_active(&raw mut (*ptr).file) };
        if file.is_null() {
            return None;
        }
        // Once its file is freed, a dma-buf may live on for a moment (until its dentry
        // goes), and the field may then name a recycled file of somebody else: a file of
        // this buffer has it as its private data.
        // SAFETY: `file` is a live file whose reference we hold.
        if unsafe { (*file).private_data } != ptr.cast() {
            // SAFETY: The reference `get_file_active()` took, given back.
            unsafe { bindings::fput(file) };
            return None;
        }
        // SAFETY: `file` holds a reference of the buffer's own file, so the buffer is alive
        // and the reference is now ours.
        Some(unsafe { ARef::from_raw(NonNull::new_unchecked(ptr.cast())) })
    }

    /// Returns the size of the buffer in bytes.
    pub fn size(&self) -> usize {
        // SAFETY: The buffer is alive (type invariant); its size never changes.
        unsafe { (*self.as_raw()).size }
    }

    /// Turns a reference of the buffer into one of its file, for example to install it as
    /// a file descriptor ([`fd_install`]).
    ///
    /// [`fd_install`]: crate::fs::file::FileDescriptorReservation::fd_install
    pub fn into_file(this: ARef<Self>) -> ARef<File> {
        let this = core::mem::ManuallyDrop::new(this);
        // SAFETY: The buffer is alive and owns its file, whose refcount is the buffer's
        // (type invariant). A dma-buf file has no `FMODE_ATOMIC_POS`, so another thread may
        // be in `fdget_pos()` without `f_pos_lock` (an `lseek()`), as `File` otherwise rules
        // out; what that rule protects is the file position, and nothing races on it here:
        // `dma_buf_llseek()` never stores one, the dma-buf file operations never call into
        // Rust, and `File` has no method that reads or writes the position.
        let file = unsafe { File::from_raw_file((*this.as_raw()).file) };
        // SAFETY: The reference of `this`, not dropped, is now the file's.
        unsafe { ARef::from_raw(NonNull::from(file)) }
    }

    /// Takes the buffer's reservation lock (`dma_resv_lock()`, without an acquire
    /// context).
    ///
    /// # Context
    ///
    /// Sleeps. The caller must not hold the reservation lock of any dma-buf: without an
    /// acquire context, a second one may deadlock.
    #[inline(never)]
    pub fn lock(&self) -> ResvGuard<'_> {
        // SAFETY: The buffer is alive (type invariant), with its reservation object.
        let resv = unsafe { (*self.as_raw()).resv };
        // SAFETY: `resv` is initialised; without an acquire context the lock cannot fail.
        unsafe { bindings::dma_resv_lock(resv, ptr::null_mut()) };
        // INVARIANT: Locked just now.
        ResvGuard {
            buf: self,
            _not_send: NotThreadSafe,
        }
    }

    /// Returns the data an [`Exporter`] gave the buffer, if the buffer was exported with
    /// `ops`.
    pub fn exporter_data<T: Exporter>(
        &self,
        ops: &'static ExportOps<T>,
    ) -> Option<<T::Ptr as ForeignOwnable>::Borrowed<'_>> {
        // SAFETY: The buffer is alive (type invariant); `ops` and `priv` never change.
        let (buf_ops, data) = unsafe { ((*self.as_raw()).ops, (*self.as_raw()).priv_) };
        // SAFETY: Only `export()` puts the ops of an `ExportOps<T>` in a buffer, which it
        // exports with a `T::Ptr` as `priv`; the table is in an `Opaque`, never promoted or
        // merged with another, so its address is its own. `priv` is given back only in the
        // release callback, after the last reference.
        ptr::eq(buf_ops, ops.ops.get()).then(|| unsafe { T::Ptr::borrow(data) })
    }

    /// Exports a new dma-buf of `size` bytes whose callbacks are `T`'s, with `data` as the
    /// exporter's data, owned by `module` (which cannot be unloaded while the buffer
    /// lives). The buffer's file is opened with `flags` (`O_ACCMODE` and `O_CLOEXEC`).
    ///
    /// On failure `data` is dropped.
    pub fn export<T: Exporter>(
        ops: &'static ExportOps<T>,
        module: &'static ThisModule,
        data: T::Ptr,
        size: usize,
        flags: u32,
    ) -> Result<ARef<Self>> {
        let info = bindings::dma_buf_export_info {
            exp_name: T::NAME.as_char_ptr(),
            owner: module.as_ptr(),
            ops: ops.ops.get(),
            size,
            flags: flags as c_int,
            resv: ptr::null_mut(),
            priv_: data.into_foreign(),
        };
        // SAFETY: `info` is complete and its ops, of an `ExportOps<T>`, have every
        // mandatory callback for a `priv` of `T::Ptr`.
        unsafe { Self::export_raw(&info) }.inspect_err(|_| {
            // SAFETY: Not exported: `priv` comes back to us, once.
            drop(unsafe { T::Ptr::from_foreign(info.priv_) });
        })
    }

    /// `dma_buf_export()`, kept in the kernel crate (see the module docs).
    ///
    /// # Safety
    ///
    /// `info` must be complete, with ops that match its `priv`.
    #[inline(never)]
    unsafe fn export_raw(info: &bindings::dma_buf_export_info) -> Result<ARef<Self>> {
        // SAFETY: As the caller guarantees.
        let ptr = from_err_ptr(unsafe { bindings::dma_buf_export(info) })?;
        // SAFETY: A new buffer; its only reference is now ours.
        Ok(unsafe { ARef::from_raw(NonNull::new_unchecked(ptr.cast())) })
    }
}

/// What a [`ResvGuard`] waits for: the fences of one usage and of every usage before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum ResvUsage {
    /// Kernel work on the buffer, such as a move by its exporter.
    Kernel = bindings::dma_resv_usage_DMA_RESV_USAGE_KERNEL,
    /// Implicit writes.
    Write = bindings::dma_resv_usage_DMA_RESV_USAGE_WRITE,
    /// Implicit reads.
    Read = bindings::dma_resv_usage_DMA_RESV_USAGE_READ,
    /// Everything, including fences that only keep memory in place.
    Bookkeep = bindings::dma_resv_usage_DMA_RESV_USAGE_BOOKKEEP,
}

/// The reservation lock of a [`DmaBuf`], held; dropping the guard unlocks it.
///
/// # Invariants
///
/// The guard holds the reservation lock of `buf`.
pub struct ResvGuard<'a> {
    buf: &'a DmaBuf,
    _not_send: NotThreadSafe,
}

impl ResvGuard<'_> {
    /// Returns the locked buffer.
    pub fn dma_buf(&self) -> &DmaBuf {
        self.buf
    }

    /// Tells every dynamic importer to stop using, and unmap, its mapping
    /// (`dma_buf_invalidate_mappings()`); each does so before this returns or signals a
    /// fence of the buffer when it has.
    ///
    /// Only the exporter may: `ops` must be the table the buffer was exported with
    /// (`EPERM` otherwise). The guard is borrowed mutably, so no mapping that
    /// [`DynamicAttachment::map`] lent under it is still in use.
    pub fn invalidate_mappings<T: Exporter>(&mut self, ops: &'static ExportOps<T>) -> Result {
        if self.buf.exporter_data(ops).is_none() {
            return Err(EPERM);
        }
        self.invalidate_raw();
        Ok(())
    }

    /// `dma_buf_invalidate_mappings()`, kept in the kernel crate (see the module docs).
    #[inline(never)]
    fn invalidate_raw(&mut self) {
        // SAFETY: The reservation lock is held (type invariant), as the function requires.
        unsafe { bindings::dma_buf_invalidate_mappings(self.buf.as_raw()) };
    }

    /// Waits, without a timeout, for the buffer's fences of `usage`; `interruptible` lets a
    /// signal end the wait (`ERESTARTSYS`).
    #[inline(never)]
    pub fn wait(&self, usage: ResvUsage, interruptible: bool) -> Result {
        // SAFETY: The buffer is alive and its reservation lock held (type invariant).
        let ret = unsafe {
            bindings::dma_resv_wait_timeout(
                (*self.buf.as_raw()).resv,
                usage as bindings::dma_resv_usage,
                interruptible,
                MAX_SCHEDULE_TIMEOUT as c_ulong,
            )
        };
        if ret < 0 {
            return Err(Error::from_errno(ret as c_int));
        }
        Ok(())
    }
}

impl Drop for ResvGuard<'_> {
    #[inline(never)]
    fn drop(&mut self) {
        // SAFETY: The reservation lock is held (type invariant).
        unsafe { bindings::dma_resv_unlock((*self.buf.as_raw()).resv) };
    }
}

/// A scatter-gather table an [`Exporter`] made for an attachment: handed to the importer by
/// [`Exporter::map`] and back to [`Exporter::unmap`], which must free it.
///
/// It is neither `Send` nor `Sync` (a raw pointer): an exporter cannot keep one in its
/// shared data and hand it out again for another attachment.
///
/// # Invariants
///
/// The pointer is a valid `sg_table` with its DMA addresses for the attached device.
#[must_use = "an exported table must be freed by `Exporter::unmap`"]
pub struct ExportedTable(NonNull<bindings::sg_table>);

impl ExportedTable {
    /// Wraps a table.
    ///
    /// # Safety
    ///
    /// `ptr` must be a valid `sg_table`, mapped for the attachment it is returned for, that
    /// the exporter frees when it comes back to [`Exporter::unmap`].
    pub unsafe fn from_raw(ptr: NonNull<bindings::sg_table>) -> Self {
        // INVARIANT: See the safety requirements.
        Self(ptr)
    }

    /// Returns the raw table, for the exporter to free it.
    pub fn into_raw(self) -> NonNull<bindings::sg_table> {
        self.0
    }
}

/// The callbacks of a dma-buf exporter (`struct dma_buf_ops`).
///
/// # Context
///
/// The dma-buf core calls `attach` without the buffer's reservation lock, and `map` and
/// `unmap` with it held: they must not lock the buffer ([`DmaBuf::lock`]), attach to it or
/// drop an attachment of it, nor take a lock that is held elsewhere around
/// [`DmaBuf::lock`].
#[vtable]
pub trait Exporter: Sized + 'static {
    /// The exporter's data of a buffer (`dma_buf->priv`), dropped by [`Exporter::release`].
    type Ptr: ForeignOwnable + Send + Sync;

    /// The exporter's name, shown in `/sys/kernel/debug/dma_buf/bufinfo`.
    const NAME: &'static CStr;

    /// Admits a new attachment, or refuses it with an errno. Without it, every importer may
    /// attach.
    fn attach(_data: <Self::Ptr as ForeignOwnable>::Borrowed<'_>, _attach: &Attachment) -> Result {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// Maps the buffer for the attached device, in direction `dir`.
    fn map(
        data: <Self::Ptr as ForeignOwnable>::Borrowed<'_>,
        attach: &Attachment,
        dir: DataDirection,
    ) -> Result<ExportedTable>;

    /// Unmaps and frees a table of [`Exporter::map`].
    fn unmap(
        data: <Self::Ptr as ForeignOwnable>::Borrowed<'_>,
        attach: &Attachment,
        table: ExportedTable,
        dir: DataDirection,
    );

    /// The buffer's last reference is gone: its data comes back to be dropped.
    fn release(data: Self::Ptr) {
        drop(data);
    }
}

/// The operations table of an [`Exporter`], as a `static` of the exporter: its address
/// tells the buffers of that exporter ([`DmaBuf::exporter_data`]).
///
/// ```ignore
/// static OPS: ExportOps<MyExporter> = ExportOps::new();
/// ```
///
/// The table is [`Opaque`], so a `&'static ExportOps<T>` is always a `static` (or leaked)
/// object of its own: never a promoted constant that the compiler could merge with another
/// exporter's identical table.
pub struct ExportOps<T: Exporter> {
    ops: Opaque<bindings::dma_buf_ops>,
    _t: PhantomData<fn(T)>,
}

// SAFETY: The table is written only by `new()`; the dma-buf core only reads it.
unsafe impl<T: Exporter> Sync for ExportOps<T> {}

impl<T: Exporter> ExportOps<T> {
    /// Builds the table of `T`'s callbacks.
    pub const fn new() -> Self {
        Self {
            ops: Opaque::new(bindings::dma_buf_ops {
                attach: if T::HAS_ATTACH {
                    Some(export_attach::<T>)
                } else {
                    None
                },
                map_dma_buf: Some(export_map::<T>),
                unmap_dma_buf: Some(export_unmap::<T>),
                release: Some(export_release::<T>),
                ..pin_init::zeroed()
            }),
            _t: PhantomData,
        }
    }
}

impl<T: Exporter> Default for ExportOps<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// Converts a C DMA direction.
fn direction(dir: bindings::dma_data_direction) -> DataDirection {
    match dir {
        bindings::dma_data_direction_DMA_BIDIRECTIONAL => DataDirection::Bidirectional,
        bindings::dma_data_direction_DMA_TO_DEVICE => DataDirection::ToDevice,
        bindings::dma_data_direction_DMA_FROM_DEVICE => DataDirection::FromDevice,
        _ => DataDirection::None,
    }
}

/// Returns the exporter data of a buffer of `T`.
///
/// # Safety
///
/// `dmabuf` must be a live buffer exported with an [`ExportOps<T>`], before its release.
unsafe fn data_of<'a, T: Exporter>(
    dmabuf: *mut bindings::dma_buf,
) -> <T::Ptr as ForeignOwnable>::Borrowed<'a> {
    // SAFETY: `priv` is the `T::Ptr` of `DmaBuf::export`, given back only on release.
    unsafe { T::Ptr::borrow((*dmabuf).priv_) }
}

/// `dma_buf_ops.attach`.
///
/// # Safety
///
/// Called by the dma-buf core for a buffer of `T` and a valid attachment to it.
unsafe extern "C" fn export_attach<T: Exporter>(
    dmabuf: *mut bindings::dma_buf,
    attach: *mut bindings::dma_buf_attachment,
) -> c_int {
    // SAFETY: A live buffer of `T` and a valid attachment (safety requirement).
    let (data, attach) = unsafe { (data_of::<T>(dmabuf), Attachment::from_raw(attach)) };
    match T::attach(data, attach) {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// `dma_buf_ops.map_dma_buf`.
///
/// # Safety
///
/// Called by the dma-buf core, with the reservation lock held, for a valid attachment to a
/// buffer of `T`.
unsafe extern "C" fn export_map<T: Exporter>(
    attach: *mut bindings::dma_buf_attachment,
    dir: bindings::dma_data_direction,
) -> *mut bindings::sg_table {
    // SAFETY: A valid attachment to a live buffer of `T` (safety requirement).
    let (data, attach) = unsafe { (data_of::<T>((*attach).dmabuf), Attachment::from_raw(attach)) };
    match T::map(data, attach, direction(dir)) {
        Ok(table) => table.into_raw().as_ptr(),
        Err(e) => e.to_ptr(),
    }
}

/// `dma_buf_ops.unmap_dma_buf`.
///
/// # Safety
///
/// As for [`export_map`]; `sgt` comes from it for `attach` and `dir`.
unsafe extern "C" fn export_unmap<T: Exporter>(
    attach: *mut bindings::dma_buf_attachment,
    sgt: *mut bindings::sg_table,
    dir: bindings::dma_data_direction,
) {
    // SAFETY: A valid attachment to a live buffer of `T` (safety requirement).
    let (data, attach) = unsafe { (data_of::<T>((*attach).dmabuf), Attachment::from_raw(attach)) };
    // SAFETY: `sgt` is a table of `T::map` for this attachment (safety requirement).
    let table = unsafe { ExportedTable::from_raw(NonNull::new_unchecked(sgt)) };
    T::unmap(data, attach, table, direction(dir));
}

/// `dma_buf_ops.release`.
///
/// # Safety
///
/// Called by the dma-buf core once, for a buffer of `T` whose last reference is gone.
unsafe extern "C" fn export_release<T: Exporter>(dmabuf: *mut bindings::dma_buf) {
    // SAFETY: `priv` is the `T::Ptr` of `DmaBuf::export`, given back here, once.
    T::release(unsafe { T::Ptr::from_foreign((*dmabuf).priv_) });
}
