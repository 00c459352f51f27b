// SPDX-License-Identifier: GPL-2.0

//! A dynamic peer-to-peer dma-buf importer for a bound device, on behalf of files.
//!
//! C header: [`include/linux/dma-buf.h`](srctree/include/linux/dma-buf.h)
//!
//! [`Importer`] is made in probe and belongs to that binding; its `'static`
//! [`ImporterHandle`] lets files attach dma-bufs ([`ImportRef`]), each a
//! [`DynamicAttachment`] that the importer detaches when the device is unbound, even if the
//! importer or an [`ImportRef`] was leaked.

use super::{
    dmabuf::map_type,
    unbind::{
        OnUnbind,
        UnbindWork, //
    },
    MapType, //
};
use crate::{
    device::{
        self,
        Bound,
        Core, //
    },
    dma::{
        DataDirection,
        DmaAddress, //
    },
    dma_buf::{
        DmaBuf,
        DynamicAttachment,
        DynamicImporter, //
    },
    io::ResourceSize,
    new_mutex,
    prelude::*,
    scatterlist::SGTable,
    sync::{
        aref::ARef,
        Arc,
        Mutex, //
    },
};
use core::ptr;

/// One DMA range of a mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DmaRange {
    /// The address the device uses.
    pub addr: DmaAddress,
    /// Its length in bytes.
    pub len: ResourceSize,
}

/// The state of an [`ImportRef`], read at one moment ([`ImportRef::status`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImportStatus {
    /// The buffer is mapped.
    pub mapped: bool,
    /// How the device reaches the buffer while it is mapped ([`ImportRef::map_type`]);
    /// `None` when it is not.
    pub map_type: Option<MapType>,
    /// How many times the exporter invalidated the mapping.
    pub invalidations: u32,
}

/// The importer's `stop` function.
struct Stop(Arc<dyn Fn() + Send + Sync>);

#[vtable]
impl DynamicImporter for Stop {
    fn stop(&self) {
        (self.0)()
    }
}

/// An attachment of an [`Importer`]; kept only in the importer's slots, which its unbind
/// work empties before the device is unbound (so `'static` never outlives the binding).
type Import = DynamicAttachment<'static, Stop>;

/// Returns the DMA ranges of a mapping.
fn dma_ranges(table: &SGTable) -> Result<KVec<DmaRange>> {
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

/// What an [`Importer`] shares with its handles.
///
/// # Invariants
///
/// While `gone` is false, `dev` is bound: the unbind work of [`Importer::new`] sets `gone`,
/// under the lock of this state, before the device's resources are released. Every
/// attachment in `slots` was made while `gone` was false.
struct ImporterState {
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
/// [`unbind`](crate::pci::Driver::unbind) runs; for other devices (and a failed probe) when the
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
    /// `stop` is the [`DynamicImporter::stop`] of every import: it must stop the device's DMA
    /// to the buffers before it returns, however long that takes; meanwhile it holds up the
    /// exporter's revocation (which may hold the exporter's device lock) and every user of
    /// the buffer's reservation lock. It must not take the importing device's lock: its
    /// unbind holds it while it detaches.
    pub fn new(
        dev: &'bound device::Device<Core<'_>>,
        dir: DataDirection,
        stop: impl Fn() + Send + Sync + 'static,
    ) -> Result<Self> {
        let stop: Arc<dyn Fn() + Send + Sync> = Arc::new(stop, GFP_KERNEL)?;
        // INVARIANT: `dev` is bound (probe); the unbind work sets `gone` before it is not.
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
        let buf = DmaBuf::get(fd)?;
        // SAFETY: `gone` is false under the lock, so `dev` is bound (type invariant of
        // `ImporterState`). The attachment that borrows it goes into a slot, which the
        // unbind work empties, under this lock, before the device is unbound; nothing takes
        // it out of the slot but a detach. So the binding outlives the attachment.
        let dev: &'static device::Device<Bound> = unsafe { &*ptr::from_ref(state.dev.as_bound()) };
        let import = Import::new(buf, dev, state.dir, Stop(state.stop.clone()))?;
        let slot = Arc::pin_init(new_mutex!(Some(import)), GFP_KERNEL)?;
        state
            .slots
            .push_within_capacity(slot.clone())
            .map_err(|_| ENOMEM)?;
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
    /// revoked buffer of [`ExporterHandle::export`](super::ExporterHandle::export)).
    pub fn map(&self) -> Result<KVec<DmaRange>> {
        self.with(|i| {
            let mut resv = i.dma_buf().lock();
            dma_ranges(i.map(&mut resv)?)
        })
    }

    /// Maps the buffer as [`Self::map`] does and calls `f` with its DMA ranges, while the
    /// mapping cannot be invalidated.
    ///
    /// `f` runs with the buffer's reservation lock held: DMA the device starts in `f` is
    /// seen by the exporter's revocation, which then waits for the importer's `stop`. `f`
    /// must not sleep for long or copy from or to user space, and must not take a
    /// reservation lock: so not attach, map, unmap or drop another [`ImportRef`] of the same
    /// buffer, nor revoke its export (each takes it). It cannot reach this import (borrowed
    /// mutably here).
    pub fn with_mapping<R>(&mut self, f: impl FnOnce(&[DmaRange]) -> R) -> Result<R> {
        self.with(|i| {
            let mut resv = i.dma_buf().lock();
            let ranges = dma_ranges(i.map(&mut resv)?)?;
            Ok(f(&ranges))
        })
    }

    /// Returns how the device reaches the buffer's memory, for a buffer
    /// of [`ExporterHandle::export`](super::ExporterHandle::export) that is not revoked;
    /// `None` for a revoked buffer and for buffers of other exporters, whose provider the
    /// importer cannot know. The answer does not change while the buffer stays armed: ask
    /// once, not on every mapping (it is a lookup in the provider's table).
    pub fn map_type(&self) -> Result<Option<MapType>> {
        self.with(|i| Ok(map_type(&i.dma_buf().lock(), i.device())))
    }

    /// Stops the device (the importer's `stop`) and unmaps the buffer, if it is mapped.
    pub fn unmap(&self) -> Result {
        self.with(|i| {
            let mut resv = i.dma_buf().lock();
            i.unmap(&mut resv)
        })
    }

    /// Returns whether the buffer is mapped, its map type and the count of invalidations,
    /// read together with the buffer's reservation lock held (so this waits for a
    /// revocation under way).
    pub fn status(&self) -> Result<ImportStatus> {
        self.with(|i| {
            let resv = i.dma_buf().lock();
            let mapped = i.is_mapped();
            Ok(ImportStatus {
                mapped,
                map_type: if mapped {
                    map_type(&resv, i.device())
                } else {
                    None
                },
                invalidations: i.invalidations(),
            })
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
