// SPDX-License-Identifier: GPL-2.0

//! Work that must be done when a device is unbound, even if the value that stands for it
//! was leaked.
//!
//! C header: [`include/linux/device/devres.h`](srctree/include/linux/device/devres.h)
//!
//! Revoking a device's dma-bufs and detaching its imports cannot be left to `Drop` alone:
//! `core::mem::forget()` is safe. Each piece of such work is a device-managed resource of
//! its own (a devres node, recognised by its release function), added when the value is
//! made, and it runs:
//!
//! - for a PCI device, from the PCI driver's remove callback, before the driver's
//!   [`unbind`](crate::pci::Driver::unbind) and `remove()` work and before its driver data
//!   is dropped ([`before_remove`], called by `pci::Adapter`);
//! - otherwise (other buses, a failed probe) when its node is released, after `remove()`
//!   and, devres releasing in reverse order, before anything registered before it (such as
//!   the P2PDMA providers an exporter was made from) is freed.
//!
//! Each piece runs once; the value that stands for it (an `Exporter`, an `Importer`) only
//! does it early when dropped. The node keeps a reference to the work until it is released,
//! so that a value of the binding may point into it for as long as the binding lasts: the
//! values are made from a device in its `Core` context, and such a value ends, with the
//! driver data, before the device's resources are released.

use crate::{
    bindings,
    device::{
        Bound,
        Core,
        Device, //
    },
    prelude::*,
    sync::{
        Arc,
        ArcBorrow, //
    },
};
use core::{
    ffi::c_void,
    ptr,
    sync::atomic::{
        AtomicBool,
        Ordering, //
    },
};

/// Work to do at unbind, once (see [`UnbindWork`]).
pub(crate) trait OnUnbind: Send + Sync {
    /// Does the work. Runs in process context, possibly with the device lock held; it must
    /// not take the device lock.
    fn unbind(&self);
}

/// The data of one devres node: a piece of work, and whether it ran.
struct Node {
    hook: Arc<dyn OnUnbind>,
    ran: AtomicBool,
}

// Devres data is aligned to `ARCH_DMA_MINALIGN`, at least that of `unsigned long long`.
const _: () = assert!(core::mem::align_of::<Node>() <= core::mem::align_of::<u64>());

impl Node {
    /// Runs the work unless it ran already.
    fn run(&self) {
        if !self.ran.swap(true, Ordering::AcqRel) {
            self.hook.unbind();
        }
    }
}

/// The devres release function of a node, also the key that finds it.
///
/// # Safety
///
/// Called by the devres core, once, with `res` the data of a node added by [`on_unbind`].
unsafe extern "C" fn release(_dev: *mut bindings::device, res: *mut c_void) {
    let node = res.cast::<Node>();
    // SAFETY: `res` holds an initialised `Node` (function safety requirements).
    unsafe { (*node).run() };
    // SAFETY: As above; dropped once, here; the devres core frees the memory.
    unsafe { ptr::drop_in_place(node) };
}

/// `dr_match_t` for [`release`] nodes: those whose work has not run yet.
///
/// # Safety
///
/// `res` must be the data of a [`release`] node.
unsafe extern "C" fn not_ran(
    _dev: *mut bindings::device,
    res: *mut c_void,
    _data: *mut c_void,
) -> c_int {
    // SAFETY: A `release` node holds an initialised `Node` (function safety requirements).
    c_int::from(!unsafe { &*res.cast::<Node>() }.ran.load(Ordering::Acquire))
}

/// `dr_match_t` for the [`release`] node of the work at `data`.
///
/// # Safety
///
/// `res` must be the data of a [`release`] node.
unsafe extern "C" fn is_hook(
    _dev: *mut bindings::device,
    res: *mut c_void,
    data: *mut c_void,
) -> c_int {
    // SAFETY: A `release` node holds an initialised `Node` (function safety requirements).
    let node = unsafe { &*res.cast::<Node>() };
    c_int::from(ptr::eq(Arc::as_ptr(&node.hook).cast::<c_void>(), data))
}

/// Runs `hook` when `dev` is unbound (see the module documentation for when exactly).
///
/// `dev` must be in its `Core` context (the callers take one), so the node is added while
/// the device is bound and cannot be released before the caller's `'bound` ends.
fn on_unbind(dev: &Device<Bound>, hook: Arc<dyn OnUnbind>) -> Result {
    // SAFETY: Allocates a node of `release`; nothing else is required.
    let new = unsafe {
        bindings::__devres_alloc_node(
            Some(release),
            core::mem::size_of::<Node>(),
            GFP_KERNEL.as_raw(),
            bindings::NUMA_NO_NODE,
            c"p2pdma_unbind".as_char_ptr(),
        )
    };
    if new.is_null() {
        return Err(ENOMEM);
    }
    let node = Node {
        hook,
        ran: AtomicBool::new(false),
    };
    // SAFETY: `new` is fresh devres memory, large and aligned enough (see the assertion
    // on `Node`), and is never moved.
    unsafe { new.cast::<Node>().write(node) };
    // SAFETY: `dev` is bound; `new` is an initialised node, now owned by the devres core.
    unsafe { bindings::devres_add(dev.as_raw(), new) };
    Ok(())
}

/// A value's share of work to run at unbind: shared state `T`, whose [`OnUnbind::unbind`]
/// runs once, when the device is unbound or when this is dropped, whichever comes first.
///
/// It holds no reference: leaking it (`core::mem::forget()`) leaks nothing, and the work
/// still runs at unbind.
///
/// # Invariants
///
/// `shared` is kept alive by a [`release`] node of `dev` (added by [`Self::new`]) until the
/// node is released: by drop, or with `dev`'s device-managed resources, after `'bound`.
pub(crate) struct UnbindWork<'bound, T: OnUnbind + 'static> {
    shared: ArcBorrow<'bound, T>,
    dev: &'bound Device<Bound>,
}

// SAFETY: `T: OnUnbind` is `Send` and `Sync`, and so is `Device<Bound>`; both are borrowed.
unsafe impl<T: OnUnbind + 'static> Send for UnbindWork<'_, T> {}
// SAFETY: See `Send`.
unsafe impl<T: OnUnbind + 'static> Sync for UnbindWork<'_, T> {}

impl<'bound, T: OnUnbind + 'static> UnbindWork<'bound, T> {
    /// Makes the shared state and registers its work for `dev`, in its `Core` context: a
    /// lifetime of a `Core` device ends with the driver data, before the device's
    /// resources are released.
    pub(crate) fn new<E>(dev: &'bound Device<Core<'_>>, init: impl PinInit<T, E>) -> Result<Self>
    where
        Error: From<E>,
    {
        let dev: &'bound Device<Bound> = dev;
        let shared = Arc::pin_init(init, GFP_KERNEL)?;
        on_unbind(dev, shared.clone())?;
        // INVARIANT: The node just added holds a reference until it is released.
        // SAFETY: That reference outlives `'bound` (see the invariant and `new`'s docs).
        let shared = unsafe { ArcBorrow::from_raw(Arc::as_ptr(&shared)) };
        Ok(Self { shared, dev })
    }

    /// Returns the shared state, for as long as `self` is borrowed.
    pub(crate) fn shared(&self) -> ArcBorrow<'_, T> {
        self.shared
    }
}

impl<T: OnUnbind + 'static> Drop for UnbindWork<'_, T> {
    fn drop(&mut self) {
        let key = ptr::from_ref::<T>(&self.shared).cast::<c_void>();
        // Takes the node off, runs the work unless it ran at unbind, drops and frees it.
        // SAFETY: `dev` is bound (`'bound`); `is_hook` is called for `release` nodes only.
        let _ = unsafe {
            bindings::devres_release(
                self.dev.as_raw(),
                Some(release),
                Some(is_hook),
                key.cast_mut(),
            )
        };
    }
}

/// Runs every piece of work of `dev` that has not run yet; the nodes stay until released.
///
/// Called with `dev`'s device lock held, by the PCI driver's remove callback, before the
/// driver's own unbind work.
pub(crate) fn before_remove(dev: &Device<Bound>) {
    loop {
        // SAFETY: `dev` is bound and its lock held: its resources are not released under
        // us (that happens later, in this thread). `not_ran` is called for `release` nodes.
        let res = unsafe {
            bindings::devres_find(dev.as_raw(), Some(release), Some(not_ran), ptr::null_mut())
        };
        if res.is_null() {
            return;
        }
        // SAFETY: A `release` node, alive until released (see above). `run` marks it, so
        // the loop ends; the work may wait for other threads, not under the devres lock.
        unsafe { &*res.cast::<Node>() }.run();
    }
}
