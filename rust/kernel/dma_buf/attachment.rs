// SPDX-License-Identifier: GPL-2.0

//! Attachments of devices to dma-bufs.
//!
//! C header: [`include/linux/dma-buf.h`](srctree/include/linux/dma-buf.h)

use super::{
    DmaBuf,
    ResvGuard,
    ResvUsage, //
};
use crate::{
    bindings,
    device::{
        self,
        Bound, //
    },
    dma::DataDirection,
    error::from_err_ptr,
    prelude::*,
    scatterlist::SGTable,
    sync::aref::ARef,
    types::Opaque, //
};
use core::{
    marker::PhantomData,
    ptr::{
        self,
        NonNull, //
    },
    sync::atomic::{
        AtomicPtr,
        AtomicU32,
        Ordering, //
    },
};

/// An attachment of a device to a dma-buf, as an exporter's callbacks see it.
///
/// # Invariants
///
/// The object is a valid `dma_buf_attachment` of its buffer (being attached, in the
/// `attach` callback), whose device the importer keeps alive.
#[repr(transparent)]
pub struct Attachment(Opaque<bindings::dma_buf_attachment>);

impl Attachment {
    /// Returns the `Attachment` of a raw pointer.
    ///
    /// # Safety
    ///
    /// `ptr` must be a valid attachment that stays attached for `'a`.
    pub unsafe fn from_raw<'a>(ptr: *mut bindings::dma_buf_attachment) -> &'a Self {
        // SAFETY: A transparent `dma_buf_attachment`, valid for `'a` (safety requirement).
        unsafe { &*ptr.cast() }
    }

    /// Returns the raw attachment.
    pub fn as_raw(&self) -> *mut bindings::dma_buf_attachment {
        self.0.get()
    }

    /// Returns the buffer.
    pub fn dma_buf(&self) -> &DmaBuf {
        // SAFETY: An attachment holds its buffer (type invariant).
        unsafe { DmaBuf::from_raw((*self.as_raw()).dmabuf) }
    }

    /// Returns the attached device.
    pub fn device(&self) -> &device::Device {
        // SAFETY: The importer keeps its device alive while it is attached (type invariant).
        unsafe { device::Device::from_raw((*self.as_raw()).dev) }
    }

    /// Returns `true` if the importer can reach peer-to-peer memory (PCI BARs).
    pub fn peer2peer(&self) -> bool {
        // SAFETY: Valid (type invariant); set at attach and never changed.
        unsafe { (*self.as_raw()).peer2peer }
    }

    /// Returns `true` if the importer supports revocation: it is dynamic and stops using a
    /// mapping when the exporter invalidates it (`dma_buf_attach_revocable()`).
    #[inline(never)]
    pub fn is_revocable(&self) -> bool {
        // SAFETY: A valid attachment (type invariant).
        unsafe { bindings::dma_buf_attach_revocable(self.as_raw()) }
    }
}

/// A dynamic importer: what the device does when it must stop using a mapping.
#[vtable]
pub trait DynamicImporter: Send + Sync + Sized + 'static {
    /// Stops the device's DMA to the buffer: when this returns, the device no longer uses
    /// the mapping, which is then unmapped.
    ///
    /// Called with the buffer's reservation lock held, whenever a mapping is unmapped: in
    /// the exporter's `invalidate_mappings`, in [`DynamicAttachment::unmap`] and when the
    /// attachment is dropped. Meanwhile it holds up the exporter and every user of the
    /// reservation lock. The exporter may be in a reset of its device or of a whole bus:
    /// with the device locks (and config-space access locks) of every device in it held,
    /// this device's perhaps included, whose bus mastering may be off already. So it must
    /// finish without taking a device lock, without config-space access and without
    /// waiting for anything that needs them (a fence the device cannot signal any more
    /// included); it must not take a reservation lock or call into the attachment.
    fn stop(&self);
}

/// The importer data of a [`DynamicAttachment`] (`importer_priv`).
///
/// # Invariants
///
/// `sgt` is the attachment's current mapping or null; it changes only with the buffer's
/// reservation lock held.
struct Inner<T> {
    sgt: AtomicPtr<bindings::sg_table>,
    dir: bindings::dma_data_direction,
    invalidations: AtomicU32,
    importer: T,
}

impl<T: DynamicImporter> Inner<T> {
    /// Stops the device and unmaps the mapping, if any.
    ///
    /// # Safety
    ///
    /// The buffer's reservation lock must be held, and `attach` be the attachment whose
    /// importer data this is.
    unsafe fn unmap(&self, attach: *mut bindings::dma_buf_attachment) {
        let sgt = self.sgt.swap(ptr::null_mut(), Ordering::Relaxed);
        if !sgt.is_null() {
            self.importer.stop();
            // SAFETY: `sgt` is the current mapping (type invariant), unmapped once, with
            // the reservation lock held.
            unsafe { raw::unmap(attach, sgt, self.dir) };
        }
    }
}

/// A dynamic, peer-to-peer capable attachment of a bound device to a dma-buf, with at
/// most one mapping at a time; dropping it unmaps and detaches.
///
/// When the exporter invalidates the buffer, the attachment calls the importer's
/// [`stop`](DynamicImporter::stop) and unmaps, inside the callback; [`Self::map`] maps again
/// once the exporter allows it. The attachment borrows the device's binding (`'a`): it is
/// detached before the device is unbound.
///
/// # Invariants
///
/// `attach` is a dynamic attachment of `buf` to a device that is bound for `'a`, made with
/// the ops of `AttachOps<T>` and `inner` as importer data; it lives until drop.
pub struct DynamicAttachment<'a, T: DynamicImporter> {
    attach: NonNull<bindings::dma_buf_attachment>,
    inner: KBox<Inner<T>>,
    buf: ARef<DmaBuf>,
    _dev: PhantomData<&'a device::Device<Bound>>,
}

// SAFETY: The dma-buf calls may be made from any thread; `Inner` is thread-safe (`T` is
// `Send + Sync`).
unsafe impl<T: DynamicImporter> Send for DynamicAttachment<'_, T> {}
// SAFETY: Shared use maps and unmaps only under the reservation lock.
unsafe impl<T: DynamicImporter> Sync for DynamicAttachment<'_, T> {}

impl<'a, T: DynamicImporter> DynamicAttachment<'a, T> {
    /// Attaches `dev` to `buf` as a dynamic importer that can reach peer-to-peer memory,
    /// to map it in direction `dir`. Fails with the exporter's errno.
    ///
    /// # Context
    ///
    /// Sleeps. Attaching, and dropping the attachment, take the buffer's reservation lock:
    /// not with it held, nor from [`DynamicImporter::stop`].
    pub fn new(
        buf: ARef<DmaBuf>,
        dev: &'a device::Device<Bound>,
        dir: DataDirection,
        importer: T,
    ) -> Result<Self> {
        let inner = KBox::new(
            Inner {
                sgt: AtomicPtr::new(ptr::null_mut()),
                dir: dir.into(),
                invalidations: AtomicU32::new(0),
                importer,
            },
            GFP_KERNEL,
        )?;
        // SAFETY: The ops are `'static`, and `inner` lives until the attachment is detached
        // in drop.
        let attach = unsafe {
            raw::attach(
                &buf,
                dev,
                &AttachOps::<T>::OPS,
                ptr::from_ref(&*inner).cast_mut().cast(),
            )
        }?;
        // INVARIANT: Attached just now, with `inner`.
        Ok(Self {
            attach,
            inner,
            buf,
            _dev: PhantomData,
        })
    }

    /// Returns the buffer.
    pub fn dma_buf(&self) -> &DmaBuf {
        &self.buf
    }

    /// Returns the attached device.
    pub fn device(&self) -> &device::Device {
        // SAFETY: The attachment is valid and its device bound for `'a` (type invariant).
        unsafe { Attachment::from_raw(self.attach.as_ptr()) }.device()
    }

    /// Returns the importer.
    pub fn importer(&self) -> &T {
        &self.inner.importer
    }

    /// Maps the buffer for the device, if it is not mapped, waits for the exporter's kernel
    /// fences (a buffer being moved), and returns the mapping.
    ///
    /// `resv` is the buffer's reservation lock (`EINVAL` for another buffer's), borrowed
    /// mutably for as long as the mapping is: nothing can invalidate it meanwhile (the
    /// exporter needs the lock; this thread would need the guard to map another attachment,
    /// which may move the buffer, or to invalidate or unmap). A mapping's CPU entries are
    /// empty for peer-to-peer memory: walk its DMA entries.
    pub fn map<'g>(&'g self, resv: &'g mut ResvGuard<'_>) -> Result<&'g SGTable> {
        if !ptr::eq(resv.dma_buf(), &*self.buf) {
            return Err(EINVAL);
        }
        let mut sgt = self.inner.sgt.load(Ordering::Relaxed);
        if sgt.is_null() {
            // SAFETY: A valid dynamic attachment (type invariant), with the reservation
            // lock held (`resv`).
            sgt = unsafe { raw::map(self.attach.as_ptr(), self.inner.dir) }?;
            self.inner.sgt.store(sgt, Ordering::Relaxed);
            // A dynamic importer waits for the exporter's kernel fences before the device
            // uses the mapping, as RDMA's does.
            if let Err(e) = resv.wait(ResvUsage::Kernel, true) {
                // SAFETY: The reservation lock is held; `inner` is ours.
                unsafe { self.inner.unmap(self.attach.as_ptr()) };
                return Err(e);
            }
        }
        // SAFETY: `sgt` is the attachment's mapping; it is unmapped only with the
        // reservation lock held: by an invalidation, which another thread cannot start
        // while `resv` holds the lock and this one only through `resv` (to invalidate, or to
        // map another attachment, whose exporter may move the buffer), borrowed mutably for
        // `'g`; by `unmap`, which needs `resv` mutably too; or by drop, which needs `self`.
        Ok(unsafe { SGTable::from_raw(sgt) })
    }

    /// Stops the device (the importer's [`stop`](DynamicImporter::stop)) and unmaps the
    /// buffer, if it is mapped. `resv` is the buffer's reservation lock (`EINVAL` for
    /// another buffer's).
    pub fn unmap(&self, resv: &mut ResvGuard<'_>) -> Result {
        if !ptr::eq(resv.dma_buf(), &*self.buf) {
            return Err(EINVAL);
        }
        // SAFETY: The reservation lock is held (`resv`); `inner` is ours.
        unsafe { self.inner.unmap(self.attach.as_ptr()) };
        Ok(())
    }

    /// Returns `true` if the buffer is mapped now.
    pub fn is_mapped(&self) -> bool {
        !self.inner.sgt.load(Ordering::Relaxed).is_null()
    }

    /// Returns how many times the exporter invalidated a mapping.
    pub fn invalidations(&self) -> u32 {
        self.inner.invalidations.load(Ordering::Relaxed)
    }
}

impl<T: DynamicImporter> Drop for DynamicAttachment<'_, T> {
    fn drop(&mut self) {
        let mut resv = self.buf.lock();
        // Cannot fail: the guard is this buffer's.
        let _ = self.unmap(&mut resv);
        drop(resv);
        // SAFETY: The attachment is ours (type invariant) and detached once, here; `inner`
        // outlives it.
        unsafe { raw::detach(&self.buf, self.attach.as_ptr()) };
    }
}

/// The dma-buf calls of [`DynamicAttachment`], neither generic nor inlined, so that they stay
/// in the kernel crate (see the module docs of [`dma_buf`](super)).
mod raw {
    use super::*;

    /// `dma_buf_dynamic_attach()`.
    ///
    /// # Safety
    ///
    /// `ops` and `priv_` must stay valid until [`detach`].
    #[inline(never)]
    pub(super) unsafe fn attach(
        buf: &DmaBuf,
        dev: &device::Device<Bound>,
        ops: &'static bindings::dma_buf_attach_ops,
        priv_: *mut c_void,
    ) -> Result<NonNull<bindings::dma_buf_attachment>> {
        // SAFETY: `buf` is alive, `dev` bound; `ops` and `priv_` valid (safety
        // requirement).
        let attach = from_err_ptr(unsafe {
            bindings::dma_buf_dynamic_attach(buf.as_raw(), dev.as_raw(), ops, priv_)
        })?;
        // SAFETY: Not an error pointer, so not null.
        Ok(unsafe { NonNull::new_unchecked(attach) })
    }

    /// `dma_buf_map_attachment()`.
    ///
    /// # Safety
    ///
    /// `attach` must be a valid dynamic attachment, with its buffer's reservation lock held.
    #[inline(never)]
    pub(super) unsafe fn map(
        attach: *mut bindings::dma_buf_attachment,
        dir: bindings::dma_data_direction,
    ) -> Result<*mut bindings::sg_table> {
        // SAFETY: As the caller guarantees.
        from_err_ptr(unsafe { bindings::dma_buf_map_attachment(attach, dir) })
    }

    /// `dma_buf_unmap_attachment()`.
    ///
    /// # Safety
    ///
    /// `sgt` must be the current mapping of `attach` in direction `dir`, unmapped once, with
    /// the buffer's reservation lock held.
    #[inline(never)]
    pub(super) unsafe fn unmap(
        attach: *mut bindings::dma_buf_attachment,
        sgt: *mut bindings::sg_table,
        dir: bindings::dma_data_direction,
    ) {
        // SAFETY: As the caller guarantees.
        unsafe { bindings::dma_buf_unmap_attachment(attach, sgt, dir) };
    }

    /// `dma_buf_detach()`.
    ///
    /// # Safety
    ///
    /// `attach` must be an unmapped attachment to `buf`, detached once.
    #[inline(never)]
    pub(super) unsafe fn detach(buf: &DmaBuf, attach: *mut bindings::dma_buf_attachment) {
        // SAFETY: As the caller guarantees.
        unsafe { bindings::dma_buf_detach(buf.as_raw(), attach) };
    }
}

/// The `dma_buf_attach_ops` of a [`DynamicImporter`].
struct AttachOps<T>(PhantomData<T>);

impl<T: DynamicImporter> AttachOps<T> {
    const OPS: bindings::dma_buf_attach_ops = bindings::dma_buf_attach_ops {
        allow_peer2peer: true,
        invalidate_mappings: Some(invalidate::<T>),
    };
}

/// `dma_buf_attach_ops.invalidate_mappings`: stops the device and unmaps.
///
/// # Safety
///
/// Called by the dma-buf core with the reservation lock held, for an attachment of
/// [`DynamicAttachment<T>`].
unsafe extern "C" fn invalidate<T: DynamicImporter>(attach: *mut bindings::dma_buf_attachment) {
    // SAFETY: Our attachments carry their `Inner<T>`, alive until detach.
    let inner = unsafe { &*(*attach).importer_priv.cast::<Inner<T>>() };
    // SAFETY: The reservation lock is held (safety requirement).
    unsafe { inner.unmap(attach) };
    inner.invalidations.fetch_add(1, Ordering::Relaxed);
}
