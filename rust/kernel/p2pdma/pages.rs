// SPDX-License-Identifier: GPL-2.0

//! One range of a BAR both mapped into user space with `struct page`s and exported as
//! dma-bufs, revoked in three stages.
//!
//! C headers: [`include/linux/mm.h`](srctree/include/linux/mm.h),
//! [`include/linux/pci-p2pdma.h`](srctree/include/linux/pci-p2pdma.h),
//! [`include/linux/pseudo_fs.h`](srctree/include/linux/pseudo_fs.h)
//!
//! A [`PagesExporter`] gives a range of a memory BAR `struct page`s (a p2pmem pgmap) and
//! keeps all of them. User space maps them through the driver's node (`mmap`): page
//! mappings, so `get_user_pages()` with `FOLL_PCI_P2PDMA` works on them and `O_DIRECT` I/O
//! of a P2PDMA-capable block device goes straight to the BAR. The same range is exported
//! as dma-bufs to dynamic peer-to-peer importers, as [`Exporter`](super::Exporter) does.
//!
//! The pages have two kinds of users, and the revocation stops both, in three synchronous
//! stages:
//!
//! 1. **zap**: every user mapping of the range is removed, and faults on it get `SIGBUS`, so
//!    no new page reference (no new pin of `O_DIRECT` I/O) can appear;
//! 2. **wait**: until every page is back to the exporter's own reference, that is until the
//!    I/O that had pinned pages before the zap has completed (for a reset or an error, at
//!    most [`PAGES_RESET_WAIT`]: see there);
//! 3. **invalidate**: every importer is told to stop, its fences have signalled and it has
//!    unmapped (the revocation of [`Exporter`](super::Exporter)).
//!
//! Re-arming lets both back in: faults map pages again and importers map again. Unbinding
//! (remove, hot-unplug) runs the three stages for good and gives the pages back to the pool,
//! from device-managed work that runs even if the exporter was leaked.
//!
//! The user mappings of the range are found through an inode of its own (on a pseudo file
//! system, as VFIO's device inodes): the files of the driver's node use its address space,
//! so one `unmap_mapping_range()` reaches every mapping, in every process, however it was
//! split, `mremap`ed or inherited (the reverse map of the address space follows the page
//! table entries that `fork()` copies and `mremap()` moves, which do not fault).

use super::{
    dmabuf::{
        ExporterHandle,
        ExporterState, //
    },
    unbind::{
        OnUnbind,
        UnbindWork, //
    },
    BarIndex,
    BarInfo,
    BarRange,
    ExporterStatus,
    P2pdma,
    Revocation, //
};
use crate::{
    bindings,
    device::Core,
    dma_buf::DmaBuf,
    error::{
        from_err_ptr,
        to_result, //
    },
    fs::File,
    mm::virt::VmaNew,
    new_mutex,
    page::PAGE_SIZE,
    pci,
    prelude::*,
    sync::{
        aref::ARef,
        new_condvar,
        Arc,
        CondVar,
        Mutex,
        MutexGuard, //
    },
    time::{
        delay::fsleep,
        Delta,
        Instant,
        Monotonic, //
    },
    types::Opaque,
    ThisModule, //
};
use core::{
    ffi::c_void,
    ptr::{
        self,
        NonNull, //
    },
    sync::atomic::{
        AtomicBool,
        Ordering, //
    },
};

/// How long stage 2 of a revocation for a reset or an error waits for pinned pages.
///
/// Such a revocation runs under the device lock, on the way to a reset or inside the PCI
/// error recovery, and the I/O that pinned the pages may itself wait for it: when a bus
/// reset or an error below a switch also stops the block device that is reading into the
/// BAR, its requests are requeued (their pins kept) until its own `reset_done()` or
/// `resume()` runs, after ours. The wait therefore gives up after this long, says how
/// many pages are still pinned ([`RevocationStages::left_pinned`]), and goes on: that I/O
/// may then see the reset. For the same reason such a revocation never waits for a user's
/// stage 2: a user's revocation waits for pinned pages without holding anything a reset
/// or an error needs. A user's revocation (until a signal) and the unbind wait until every
/// page is back.
pub const PAGES_RESET_WAIT: Delta = Delta::from_secs(1);

// `PagesHandle::mmap` refuses private mappings by `VM_MAYSHARE`, which the bindings once
// gave the value of `VM_MAYEXEC` (patch 0015).
const _: () = assert!(bindings::VM_MAYSHARE != bindings::VM_MAYEXEC);

/// `statfs()` magic of the pseudo file system ("p2pd").
const MAGIC: usize = 0x7032_7064;

/// The pseudo file system of the inodes of [`PagesExporter`]s, mounted while one exists.
struct PseudoFs {
    ty: Opaque<bindings::file_system_type>,
    mnt: Opaque<*mut bindings::vfsmount>,
    count: Opaque<c_int>,
}

// SAFETY: The C code changes `ty` (its list of superblocks) under its own locks, and `mnt`
// and `count` only in `simple_pin_fs()` and `simple_release_fs()`, under theirs.
unsafe impl Sync for PseudoFs {}

static FS: PseudoFs = PseudoFs {
    ty: Opaque::new(bindings::file_system_type {
        name: crate::str::as_char_ptr_in_const_context(c"p2pdma"),
        init_fs_context: Some(init_fs_context),
        kill_sb: Some(bindings::kill_anon_super),
        // SAFETY: All zeroes is a valid `file_system_type` (null pointers, no flags).
        ..unsafe { core::mem::zeroed() }
    }),
    mnt: Opaque::new(ptr::null_mut()),
    count: Opaque::new(0),
};

/// `init_fs_context` of [`FS`].
///
/// # Safety
///
/// `fc` must be a new context of [`FS`], as the VFS passes it.
unsafe extern "C" fn init_fs_context(fc: *mut bindings::fs_context) -> c_int {
    // SAFETY: As required above.
    unsafe { bindings::p2pdma_init_pseudo(fc, MAGIC) }
}

/// An inode of [`FS`], whose address space holds the user mappings of one range.
///
/// # Invariants
///
/// `0` is an inode of [`FS`], of which we hold a reference and a pin of the mount.
struct Inode(NonNull<bindings::inode>);

// SAFETY: An inode reference may be used and put by any thread.
unsafe impl Send for Inode {}
// SAFETY: Only `i_mapping` is read through a shared reference, and `unmap_mapping_range()`
// may run on it from any thread.
unsafe impl Sync for Inode {}

impl Inode {
    fn new() -> Result<Self> {
        // SAFETY: `FS` is a valid file system type; `mnt` and `count` belong to it.
        to_result(unsafe { bindings::simple_pin_fs(FS.ty.get(), FS.mnt.get(), FS.count.get()) })?;
        // SAFETY: The pin taken above keeps the mount, set by `simple_pin_fs()`.
        let inode = from_err_ptr(unsafe { bindings::alloc_anon_inode((**FS.mnt.get()).mnt_sb) });
        match inode {
            // INVARIANT: A new inode of `FS`, whose mount we pinned.
            Ok(inode) => Ok(Self(NonNull::new(inode).ok_or(ENOMEM)?)),
            Err(e) => {
                // SAFETY: Gives back the pin taken above.
                unsafe { bindings::simple_release_fs(FS.mnt.get(), FS.count.get()) };
                Err(e)
            }
        }
    }

    fn mapping(&self) -> *mut bindings::address_space {
        // SAFETY: The inode is alive (type invariant); `i_mapping` never changes.
        unsafe { (*self.0.as_ptr()).i_mapping }
    }
}

impl Drop for Inode {
    fn drop(&mut self) {
        // SAFETY: Our reference and our pin (type invariants), given back once.
        unsafe {
            bindings::iput(self.0.as_ptr());
            bindings::simple_release_fs(FS.mnt.get(), FS.count.get());
        }
    }
}

/// The allocation that keeps the whole range out of the p2pmem pool.
///
/// # Invariants
///
/// `kaddr` is an allocation of `size` bytes from the p2pmem pool of the bound device `pdev`;
/// each of its pages has one reference of ours (no more, once nothing else uses it). It is
/// dropped while `pdev` is bound: by the unbind work of its [`PagesExporter`], after the user
/// mappings are gone for good and no page is pinned any more, or in probe, before anything
/// could map it.
struct Alloc {
    pdev: *mut bindings::pci_dev,
    kaddr: NonNull<c_void>,
    size: usize,
}

// SAFETY: The pages may be given back from any thread (see the invariants for when).
unsafe impl Send for Alloc {}

impl Alloc {
    /// Returns page `i` of `kaddr`, below `size / PAGE_SIZE`.
    fn page(kaddr: NonNull<c_void>, i: usize) -> *mut bindings::page {
        // SAFETY: p2pmem is in the kernel's direct map; page `i` is inside the allocation.
        unsafe { bindings::virt_to_page(kaddr.as_ptr().cast::<u8>().add(i * PAGE_SIZE).cast()) }
    }
}

impl Drop for Alloc {
    fn drop(&mut self) {
        for i in 0..self.size / PAGE_SIZE {
            let page = Self::page(self.kaddr, i);
            // Nothing maps the pages any more (type invariants): wait out a transient
            // reference (a `get_user_pages_fast()` that raced with the zap) and take ours
            // back to zero in one step, so that nobody can take one again.
            let start = Instant::<Monotonic>::now();
            // SAFETY: A page of the allocation.
            while unsafe { bindings::page_ref_freeze(page, 1) } == 0 {
                if start.elapsed() > Delta::from_secs(10) {
                    crate::pr_warn_once!("p2pdma: a page given back is still referenced\n");
                }
                fsleep(Delta::from_micros(20));
            }
        }
        // SAFETY: An allocation of `size` bytes from the pool of `pdev`, which is bound
        // (type invariants); the pages are free again, as the pool hands them out.
        unsafe { bindings::pci_free_p2pmem(self.pdev, self.kaddr.as_ptr(), self.size) };
    }
}

/// How long each stage of the last revocation of a [`PagesExporter`] took.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RevocationStages {
    /// Stage 1, zapping the user mappings, in nanoseconds.
    pub zap_ns: u64,
    /// Stage 2, waiting until every page is back, in nanoseconds.
    pub wait_ns: u64,
    /// Stage 3, invalidating the importers until they have unmapped, in nanoseconds.
    pub invalidate_ns: u64,
    /// Pages still referenced (pinned by I/O in flight) when stage 2 began.
    pub waited_pages: usize,
    /// Pages still pinned when stage 2 stopped waiting before every page was back: a
    /// revocation for a reset or an error after [`PAGES_RESET_WAIT`], a user's interrupted
    /// by a signal; 0 otherwise.
    pub left_pinned: usize,
}

/// The current state of a [`PagesExporter`], for reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PagesStatus {
    /// The dma-buf side.
    pub exporter: ExporterStatus,
    /// Offset of the range in its BAR.
    pub offset: u64,
    /// Its length in bytes.
    pub len: u64,
    /// Pages referenced by someone else now (mapped, or pinned by I/O).
    pub busy_pages: usize,
    /// The stages of the revocation that finished last.
    pub last: RevocationStages,
}

/// What the revocations go by.
///
/// # Invariants
///
/// `alloc` is `None` once the unbind work ran, and only then; from then on the gate of its
/// [`Pages`] stays closed.
struct Ctl {
    /// Why the range is revoked: a set of [`Revocation`] bits; none, it is armed.
    reasons: u32,
    /// The reasons whose revocation is under way (it waits without the lock): another
    /// revocation or re-arm for the same reason waits until it is done.
    busy: u32,
    /// The allocation, until the device is unbound.
    alloc: Option<Alloc>,
    last: RevocationStages,
}

/// Who waits in stage 2, which decides how long it waits.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Waiter {
    /// A user's revocation: until every page is back, a signal, or the unbind.
    User,
    /// A revocation for a reset or an error: at most [`PAGES_RESET_WAIT`], or until the
    /// unbind.
    Device,
    /// The unbind: until every page is back.
    Unbind,
}

/// The state a [`PagesExporter`] shares with its handles, its user mappings and its unbind
/// work.
///
/// # Invariants
///
/// - `kaddr` is the start of the allocation of `ctl.alloc` (`npages` pages). Its pages are
///   put into user page tables only by [`fault`], with `gate` locked and `true`, in mappings
///   set up by [`PagesHandle::mmap`]: of a file whose address space is `inode`'s and whose
///   open file holds a [`PagesHandle`] of this, with `vm_private_data` pointing here.
///   `fork()` and `mremap()` copy or move such entries without a fault, but only into
///   mappings of the same file, which are in the same address space.
/// - `gate` becomes `false` before the user mappings are zapped, and `true` only while no
///   revocation reason is set and the device is not `gone` (so the allocation is held),
///   with `ctl` locked. So once the gate is closed and the address space zapped, no page of
///   the range is mapped in user space.
/// - The `struct page`s of the range are looked at (their reference counts) only with `ctl`
///   locked and `ctl.alloc` held, or by the allocation's owner.
#[pin_data]
struct Pages {
    bar: BarIndex,
    /// Offset of the range in the BAR.
    offset: u64,
    kaddr: NonNull<c_void>,
    npages: usize,
    inode: Inode,
    /// Set at unbind (with `ctl` locked): the range is gone for good.
    gone: AtomicBool,
    /// Faults may map pages (held while they do).
    #[pin]
    gate: Mutex<bool>,
    /// Held briefly by revocations, re-arms, reports and the unbind work, never while they
    /// wait for pinned pages or importers (so that a reset's revocation never waits behind
    /// a user's), and never by a fault or `mmap()`, whose callers may hold page pins.
    #[pin]
    ctl: Mutex<Ctl>,
    /// Notified when a reason leaves `ctl.busy`.
    #[pin]
    idle: CondVar,
    exporter: ExporterHandle,
}

// SAFETY: `kaddr` is only read to find pages (see the invariants); the rest is thread-safe.
unsafe impl Send for Pages {}
// SAFETY: See `Send`.
unsafe impl Sync for Pages {}

impl Pages {
    fn page(&self, i: usize) -> *mut bindings::page {
        Alloc::page(self.kaddr, i)
    }

    /// Counts the pages that someone else references (mapped, pinned), while `ctl` (locked
    /// by the caller) holds the allocation.
    fn busy_pages(&self, ctl: &Ctl) -> usize {
        if ctl.alloc.is_none() {
            return 0;
        }
        (0..self.npages)
            // SAFETY: A page of the allocation, which `ctl` holds: its `struct page` lives
            // until the pgmap is torn down, after the unbind work gave the allocation back.
            .filter(|&i| unsafe { bindings::page_ref_count(self.page(i)) } > 1)
            .count()
    }

    /// Stage 1: no faults from now on, and no user mapping left.
    fn zap(&self) {
        *self.gate.lock() = false;
        // A fault that found the gate open has mapped its page by now (it held the lock);
        // its mapping is in the address space, so this removes it.
        // SAFETY: The address space of our inode, all of it.
        unsafe { bindings::unmap_mapping_range(self.inode.mapping(), 0, 0, 1) };
    }

    /// Stage 2: waits until no page is referenced but by us, as long as `who` may wait;
    /// returns how many were referenced at first and how many still are, and `ENODEV`
    /// (the unbind took over) or `ERESTARTSYS` (a signal) if it stopped for that.
    ///
    /// Looks at the pages with `ctl` locked, between sleeps without it.
    fn wait_idle(&self, who: Waiter) -> (usize, usize, Result) {
        let start = Instant::<Monotonic>::now();
        let mut delay = Delta::from_micros(10);
        let mut warned = false;
        let mut first = None;
        loop {
            let busy = {
                let ctl = self.ctl.lock();
                if who != Waiter::Unbind && self.gone.load(Ordering::Relaxed) {
                    return (first.unwrap_or(0), 0, Err(ENODEV));
                }
                self.busy_pages(&ctl)
            };
            let first = *first.get_or_insert(busy);
            if busy == 0 {
                return (first, 0, Ok(()));
            }
            let waited = start.elapsed();
            if who == Waiter::Device && waited > PAGES_RESET_WAIT {
                pr_warn!(
                    "p2pdma: reset or error: {} pages still pinned by I/O, going on\n",
                    busy
                );
                return (first, busy, Ok(()));
            }
            if who == Waiter::User && crate::current!().signal_pending() {
                return (first, busy, Err(ERESTARTSYS));
            }
            if !warned && waited > Delta::from_secs(10) {
                pr_warn!("p2pdma: revocation waits for {} pinned pages\n", busy);
                warned = true;
            }
            fsleep(delay);
            delay = Delta::from_micros((delay.as_micros_ceil() * 2).min(10_000));
        }
    }

    /// Waits until no other revocation or re-arm for `why` is under way (interruptibly for
    /// the user's), and returns `ctl` locked; `ENODEV` once the device is gone.
    fn begin(&self, why: Revocation) -> Result<MutexGuard<'_, Ctl>> {
        let mut ctl = self.ctl.lock();
        while ctl.busy & why as u32 != 0 {
            if why != Revocation::User {
                self.idle.wait(&mut ctl);
            } else if self.idle.wait_interruptible(&mut ctl) {
                return Err(ERESTARTSYS);
            }
        }
        if self.gone.load(Ordering::Relaxed) {
            return Err(ENODEV);
        }
        Ok(ctl)
    }

    /// The three stages, for `why`. Only stage 1 holds `ctl`: the waits of stages 2 and 3
    /// hold nothing a revocation for another reason needs.
    fn revoke(&self, why: Revocation) -> Result {
        let t0;
        {
            let mut ctl = self.begin(why)?;
            t0 = Instant::<Monotonic>::now();
            ctl.busy |= why as u32;
            ctl.reasons |= why as u32;
            self.zap();
        }
        let t1 = Instant::<Monotonic>::now();
        let who = if why == Revocation::User {
            Waiter::User
        } else {
            Waiter::Device
        };
        // Interrupted, stage 3 still runs: the importers then match the reason, which stays
        // set; a new revocation (the restarted system call) waits again.
        let (waited_pages, left_pinned, waited) = self.wait_idle(who);
        let t2 = Instant::<Monotonic>::now();
        let res = self.exporter.revoke_for(why);
        let mut ctl = self.ctl.lock();
        ctl.busy &= !(why as u32);
        self.idle.notify_all();
        ctl.last = RevocationStages {
            zap_ns: ns(t1 - t0),
            wait_ns: ns(t2 - t1),
            invalidate_ns: ns(t2.elapsed()),
            waited_pages,
            left_pinned,
        };
        waited.and(res)
    }
}

fn ns(d: Delta) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(0)
}

impl OnUnbind for Pages {
    fn unbind(&self) {
        {
            let _ctl = self.ctl.lock();
            // From now on no re-arm opens the gate, and revocations stop waiting.
            self.gone.store(true, Ordering::Relaxed);
            self.zap();
        }
        // Until every page is back: the unbind's wait never stops early.
        let _ = self.wait_idle(Waiter::Unbind);
        // Stage 3, for good.
        self.exporter.0.unbind();
        // INVARIANT (`Alloc`): the device is still bound, and nothing maps the pages any
        // more, nor ever will: the gate stays closed once `gone` is set. Whoever looks at
        // the pages does so with `ctl` locked and the allocation held.
        let alloc = self.ctl.lock().alloc.take();
        drop(alloc);
    }
}

/// The `vm_operations_struct` of the user mappings of a range.
static VM_OPS: bindings::vm_operations_struct = bindings::vm_operations_struct {
    fault: Some(fault),
    // SAFETY: All zeroes is a valid `vm_operations_struct`: no other callbacks.
    ..unsafe { core::mem::zeroed() }
};

/// Maps the page of a fault if the range is armed, else `SIGBUS`.
///
/// # Safety
///
/// `vmf` must be a fault of a mapping set up by [`PagesHandle::mmap`].
unsafe extern "C" fn fault(vmf: *mut bindings::vm_fault) -> bindings::vm_fault_t {
    // SAFETY: A valid fault (function safety requirements).
    let (vma, pgoff, flags) = unsafe {
        let f = &(*vmf).__bindgen_anon_1;
        (f.vma, f.pgoff, (*vmf).flags)
    };
    // SAFETY: `mmap` set `vm_private_data` to a `Pages` kept alive by the file of the
    // mapping (it holds a `PagesHandle`), which the mapping holds.
    let pages = unsafe { &*(*vma).vm_private_data.cast::<Pages>() };
    // SAFETY: As above.
    if !unsafe { (*vmf).cow_page }.is_null() {
        // A private mapping: `mmap` refuses them, this is only a second line.
        return bindings::vm_fault_reason_VM_FAULT_SIGBUS;
    }
    let open = pages.gate.lock();
    if !*open || pgoff >= pages.npages {
        return bindings::vm_fault_reason_VM_FAULT_SIGBUS;
    }
    let write = flags & bindings::fault_flag_FAULT_FLAG_WRITE != 0;
    // SAFETY: The gate is open, so the allocation is held and the page has our reference
    // (type invariants of `Pages`); the mapping is `VM_MIXEDMAP` (`mmap`).
    unsafe { bindings::vmf_insert_page_mkwrite(vmf, pages.page(pgoff), write) }
}

/// A range of a memory BAR with `struct page`s, mapped into user space and exported as
/// dma-bufs, revoked in three stages: user mappings zapped, pages pinned by I/O back,
/// importers invalidated and unmapped.
///
/// The range is added to the device's p2pmem pool (so it must be aligned as
/// [`P2pdma::add_p2pmem`] requires) and taken out of it whole, for good: nobody else gets
/// its pages. Its BAR is claimed for the driver, as [`Exporter::new`] does.
///
/// When the device is unbound (or removed, hot-unplug included), the range is revoked for
/// good, in the three stages, before the driver's [`unbind`](pci::Driver::unbind) runs, and
/// its pages go back to the pool; this is device-managed work registered by
/// [`PagesExporter::new`], so it happens even if the exporter is leaked. Dropping the
/// exporter only does it early. [`PagesExporter::handle`] gives the `'static` handle that
/// the driver's node and its files keep; it fails with `ENODEV` once the device is gone.
///
/// The user mappings are page mappings (`VM_MIXEDMAP`), so `get_user_pages()` with
/// `FOLL_PCI_P2PDMA` works on them and `O_DIRECT` I/O of a P2PDMA-capable block device
/// goes straight to the BAR. A fault during a revocation gets `SIGBUS` at once: it never
/// waits for the revocation, whose stage 2 may be waiting for pins the faulting thread holds
/// (I/O that pinned part of its buffer then fails or comes back short).
///
/// [`Exporter::new`]: super::Exporter::new
///
/// # Examples
///
/// ```
/// use kernel::{device::Core, p2pdma::{BarIndex, PagesExporter, Revocation}, pci};
///
/// // In probe: the first 8 MiB of BAR 2, for user mappings and dma-bufs.
/// fn setup<'a>(pdev: &'a pci::Device<Core<'_>>) -> Result<PagesExporter<'a>> {
///     let pages = PagesExporter::new(pdev, BarIndex::new(2)?, 0, 8 << 20)?;
///     let handle = pages.handle();
///     // A reset: user mappings zapped, pinned pages back, importers unmapped.
///     handle.revoke_for(Revocation::Reset)?;
///     handle.rearm(Revocation::Reset)?;
///     Ok(pages)
/// }
/// ```
pub struct PagesExporter<'bound> {
    work: UnbindWork<'bound, Pages>,
}

impl<'bound> PagesExporter<'bound> {
    /// Gives `size` bytes of memory BAR `bar`, from `offset`, `struct page`s and takes them
    /// for user mappings and dma-bufs; `pdev` in its [`Core`] context (probe).
    ///
    /// Fails as [`P2pdma::add_p2pmem`] does (`EINVAL` for a range that is not in a memory
    /// BAR or not aligned, `EBUSY` if it has pages already), with `EBUSY` if the BAR is
    /// claimed already, or if the device has other p2pmem with room left (the range is
    /// taken from the pool whole, which must then hand out exactly it), and `ENOMEM`.
    pub fn new(
        pdev: &'bound pci::Device<Core<'_>>,
        bar: BarIndex,
        offset: u64,
        size: u64,
    ) -> Result<Self> {
        let p2p = P2pdma::init(pdev)?;
        let start = p2p
            .provider(bar)?
            .phys_start()
            .checked_add(offset)
            .ok_or(EINVAL)?;
        let len = usize::try_from(size).map_err(|_| EINVAL)?;
        if len == 0 {
            return Err(EINVAL);
        }
        // What can fail without leaving anything behind comes first: the claim of the BAR
        // (`EBUSY` if claimed already) and the inode.
        let exporter = ExporterHandle(Arc::pin_init(
            new_mutex!(ExporterState::new(pdev, [bar])?),
            GFP_KERNEL,
        )?);
        let inode = Inode::new()?;
        p2p.add_p2pmem(pdev, bar, size, offset)?;
        // SAFETY: `pdev` has a p2pmem pool now.
        let kaddr = unsafe { bindings::pci_alloc_p2pmem(pdev.as_raw(), len) };
        let kaddr = NonNull::new(kaddr).ok_or(EBUSY)?;
        // The pool hands out the first room that fits: the range, unless the device has
        // other p2pmem with room (or somebody took pages of the range in between).
        // SAFETY: The pages of the fresh allocation.
        let fresh = unsafe { bindings::page_to_phys(Alloc::page(kaddr, 0)) } == start
            && (0..len / PAGE_SIZE)
                // SAFETY: As above.
                .all(|i| unsafe { bindings::page_ref_count(Alloc::page(kaddr, i)) } == 0);
        if !fresh {
            // SAFETY: Our allocation of `len` bytes, untouched.
            unsafe { bindings::pci_free_p2pmem(pdev.as_raw(), kaddr.as_ptr(), len) };
            return Err(EBUSY);
        }
        for i in 0..len / PAGE_SIZE {
            // SAFETY: A page of the fresh allocation, unused: it has no reference yet.
            unsafe { bindings::set_page_count(Alloc::page(kaddr, i), 1) };
        }
        // INVARIANT: A fresh allocation from the pool of `pdev`, bound during `'bound`;
        // each page has our reference. If anything below fails, it is dropped in probe.
        let alloc = Alloc {
            pdev: pdev.as_raw(),
            kaddr,
            size: len,
        };
        let work = UnbindWork::new(
            pdev.as_ref(),
            try_pin_init!(Pages {
                bar,
                offset,
                kaddr,
                npages: len / PAGE_SIZE,
                inode,
                gone: AtomicBool::new(false),
                gate <- new_mutex!(true),
                ctl <- new_mutex!(Ctl {
                    reasons: 0,
                    busy: 0,
                    alloc: Some(alloc),
                    last: RevocationStages::default(),
                }),
                idle <- new_condvar!(),
                exporter,
            }),
        )?;
        Ok(Self { work })
    }

    /// Returns a handle that can outlive the binding.
    pub fn handle(&self) -> PagesHandle {
        PagesHandle(self.work.shared().into())
    }
}

/// A `'static` handle of a [`PagesExporter`]: map, export, revoke, re-arm, report.
#[derive(Clone)]
pub struct PagesHandle(Arc<Pages>);

impl PagesHandle {
    /// Makes `file` use the range's address space, so that its user mappings are found
    /// and zapped by the revocations. Called by [`Node`](super::Node) when it opens a file
    /// of a node whose files map the range ([`NodeFile::pages`](super::NodeFile::pages)).
    pub(super) fn attach(&self, file: &File) {
        // SAFETY: The file is being opened, in its `open()` callback: nothing can map it
        // yet; this is what VFIO does for its device files (`vfio_device_open_file()`).
        // Our inode outlives the file, which holds `self`.
        unsafe { (*file.as_ptr()).f_mapping = self.0.inode.mapping() };
    }

    /// Sets up a user mapping of the range (`mmap()` of `file`, attached to it): the file
    /// offset is the offset in the range. Pages are mapped when touched, while the range is
    /// armed; touching it while it is revoked gives `SIGBUS`.
    ///
    /// Fails with `EINVAL` for a private mapping (a copy-on-write copy would not be the
    /// BAR), one that goes beyond the range, one of another file or an executable one, and
    /// with `ENODEV` once the device is gone.
    pub(super) fn mmap(&self, file: &File, vma: &VmaNew) -> Result {
        let pages = &*self.0;
        if pages.gone.load(Ordering::Relaxed) {
            return Err(ENODEV);
        }
        // The mapping must be of `file`, in our address space: see the invariants of
        // `Pages`. (`Node`, the only caller, passes the file it is mmapping.)
        // SAFETY: The file is open (we are called for it); the VMA is under setup.
        if unsafe {
            (*file.as_ptr()).f_mapping != pages.inode.mapping()
                || (*vma.as_ptr()).vm_file != file.as_ptr()
        } {
            return Err(EINVAL);
        }
        let (start, end, pgoff) = (vma.start(), vma.end(), {
            // SAFETY: A VMA under initial setup, ours to read.
            unsafe { (*vma.as_ptr()).vm_pgoff }
        });
        let npages = (end - start) / PAGE_SIZE;
        if vma.flags() & bindings::VM_MAYSHARE == 0
            || pgoff
                .checked_add(npages)
                .is_none_or(|last| last > pages.npages)
        {
            return Err(EINVAL);
        }
        vma.set_mixedmap();
        vma.set_dontexpand();
        // Device memory: no executable mappings.
        vma.try_clear_mayexec()?;
        vma.set_dontdump();
        // SAFETY: A VMA under initial setup (no fault can run yet): its operations and
        // private data are ours to set. `pages` outlives the mapping: the file it maps
        // holds a handle (see `fault`).
        unsafe {
            (*vma.as_ptr()).vm_ops = &VM_OPS;
            (*vma.as_ptr()).vm_private_data = ptr::from_ref(pages).cast_mut().cast();
        }
        Ok(())
    }

    /// Exports `ranges` of the BAR as one dma-buf, as [`ExporterHandle::export`] does; each
    /// range must be inside the range of the exporter (`EINVAL`).
    pub fn export(
        &self,
        module: &'static ThisModule,
        bar: BarIndex,
        ranges: &[BarRange],
        flags: u32,
    ) -> Result<ARef<DmaBuf>> {
        let (first, end) = (
            self.0.offset,
            self.0.offset + (self.0.npages * PAGE_SIZE) as u64,
        );
        if bar != self.0.bar
            || ranges
                .iter()
                .any(|r| r.offset < first || r.offset.checked_add(r.len).is_none_or(|e| e > end))
        {
            return Err(EINVAL);
        }
        self.0.exporter.export(module, bar, ranges, flags)
    }

    /// Revokes the range for `why`, in three synchronous stages: when this returns, every
    /// user mapping is gone and faults get `SIGBUS`; every page pinned by I/O has been given
    /// back (the I/O is done), except for a reset or an error after [`PAGES_RESET_WAIT`]
    /// (see [`RevocationStages::left_pinned`]); and every importer has been invalidated and
    /// has unmapped. New mappings, pins, attachments and maps fail until every reason is
    /// taken back.
    ///
    /// A revocation never waits for the stage 2 of one for another reason: a reset's
    /// revocation goes ahead while a user's still waits for pinned pages. (Stage 3, the
    /// importers', is the exporter's, one at a time.) Revocations and re-arms for the same
    /// reason run one at a time.
    ///
    /// Fails with `ENODEV` once the device is gone. For [`Revocation::User`], fails with
    /// `ERESTARTSYS` if a signal interrupts it: while it waits for another user's
    /// revocation or re-arm, having done nothing; or in stage 2, after which it still does
    /// stage 3: the range is then revoked (mappings zapped, importers unmapped), but I/O
    /// that pinned pages may still be running, and a new call waits for it.
    pub fn revoke_for(&self, why: Revocation) -> Result {
        self.0.revoke(why)
    }

    /// Takes back the revocation for `why`: once no reason is left, faults map pages and
    /// importers map again. Fails with `ENODEV` once the device is gone (and with
    /// `ERESTARTSYS` as [`Self::revoke_for`] does, while waiting for a user's revocation
    /// under way).
    pub fn rearm(&self, why: Revocation) -> Result {
        let pages = &*self.0;
        pages.begin(why)?.busy |= why as u32;
        // The importers first, without `ctl`: their re-arm waits for fences.
        let res = pages.exporter.rearm(why);
        let mut ctl = pages.ctl.lock();
        ctl.busy &= !(why as u32);
        pages.idle.notify_all();
        res?;
        ctl.reasons &= !(why as u32);
        if ctl.reasons == 0 && !pages.gone.load(Ordering::Relaxed) {
            // INVARIANT: No reason left and not gone, with `ctl` locked.
            *pages.gate.lock() = true;
        }
        Ok(())
    }

    /// Revokes for the user ([`Revocation::User`]): see [`Self::revoke_for`].
    pub fn revoke(&self) -> Result {
        self.revoke_for(Revocation::User)
    }

    /// Takes back the user's revocation: see [`Self::rearm`].
    pub fn unrevoke(&self) -> Result {
        self.rearm(Revocation::User)
    }

    /// Returns where the BAR is, as [`ExporterHandle::bar_info`] does.
    pub fn bar_info(&self, bar: BarIndex) -> Result<BarInfo> {
        self.0.exporter.bar_info(bar)
    }

    /// Returns the current state.
    pub fn status(&self) -> PagesStatus {
        let (busy_pages, last) = {
            let ctl = self.0.ctl.lock();
            (self.0.busy_pages(&ctl), ctl.last)
        };
        // Without `ctl`: the exporter's lock may be held by a revocation's stage 3.
        PagesStatus {
            exporter: self.0.exporter.status(),
            offset: self.0.offset,
            len: (self.0.npages * PAGE_SIZE) as u64,
            busy_pages,
            last,
        }
    }
}
