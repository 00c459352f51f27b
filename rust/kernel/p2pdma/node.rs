// SPDX-License-Identifier: GPL-2.0

//! Misc device nodes whose files reach driver data.
//!
//! C header: [`include/linux/miscdevice.h`](srctree/include/linux/miscdevice.h)
//!
//! The 7.2 [`MiscDeviceRegistration`] carries no data, so `open()` cannot find the device a
//! node belongs to. [`Node`] keeps the data next to the registration and hands it to
//! [`NodeFile::open`]. A dma-buf exporter or importer driver keeps a `Node` per device in
//! its driver data, with an [`ExporterHandle`](super::ExporterHandle) or
//! [`ImporterHandle`](super::ImporterHandle) as data: the files opened from it keep what
//! they copied from the data and may outlive the node (deregistration does not close open
//! files), so that must be `'static` state that fails cleanly once the device is gone.

use super::PagesHandle;
use crate::{
    container_of,
    fs::File,
    miscdevice::{
        MiscDevice,
        MiscDeviceOptions,
        MiscDeviceRegistration, //
    },
    mm::virt::VmaNew,
    prelude::*,
    str::CString, //
};
use core::marker::PhantomData;

/// The files of a [`Node`]: what `open()` and `ioctl()` do.
pub trait NodeFile: Sized + Send + Sync + 'static {
    /// The data every file of the node is opened with.
    type Data: Send + Sync + 'static;

    /// The module that contains this implementation (`&THIS_MODULE`): it cannot be unloaded
    /// while a file of the node is open ([`MiscDevice::OWNER`]).
    const OWNER: &'static ThisModule;

    /// Opens a file of the node whose data is `data`.
    fn open(data: &Self::Data) -> impl PinInit<Self, Error>;

    /// Handles `ioctl(cmd, arg)` on an open file.
    fn ioctl(&self, cmd: u32, arg: usize) -> Result<isize>;

    /// The range of a [`PagesExporter`](super::PagesExporter) that the file maps with
    /// `mmap()`, if any; it must not change while the file is open. Without one, `mmap()`
    /// fails with `ENODEV`.
    fn pages(&self) -> Option<&PagesHandle> {
        None
    }
}

/// A registered misc device node `/dev/<name>` whose files are `T`, opened with `T::Data`.
///
/// Dropping it removes the node; files opened before stay open.
///
/// # Invariants
///
/// `reg` is the `reg` field of a `Node<T>` (the only place a `MiscDeviceRegistration<Glue<T>>`
/// is made), registered only after `data` and `name` are initialised, and deregistered (it is
/// the first field, so it is dropped first) before they are dropped.
#[pin_data]
pub struct Node<T: NodeFile> {
    #[pin]
    reg: MiscDeviceRegistration<Glue<T>>,
    data: T::Data,
    name: CString,
}

impl<T: NodeFile> Node<T> {
    /// Registers a node named `name` (at most 63 bytes) whose files are opened with `data`.
    pub fn new(name: CString, data: T::Data) -> impl PinInit<Self, Error> {
        // `name` lives in the node's heap buffer until the node is dropped; the registration,
        // which keeps a pointer to it, is dropped first.
        let name_ptr: *const CStr = &*name;
        // SAFETY: See above: the name outlives the registration, which is all that uses it.
        let name_ref: &'static CStr = unsafe { &*name_ptr };
        let opts = MiscDeviceOptions { name: name_ref };
        // INVARIANT: `name` and `data` are initialised before `reg`.
        try_pin_init!(Self {
            name,
            data,
            reg <- MiscDeviceRegistration::register(opts),
        })
    }

    /// Returns the node's data.
    pub fn data(&self) -> &T::Data {
        &self.data
    }

    /// Returns the node's name (`/dev/<name>`).
    pub fn name(&self) -> &CStr {
        &self.name
    }
}

/// The [`MiscDevice`] of a [`Node<T>`].
struct Glue<T>(PhantomData<T>);

#[vtable]
impl<T: NodeFile> MiscDevice for Glue<T> {
    type Ptr = Pin<KBox<T>>;

    const OWNER: &'static ThisModule = T::OWNER;

    fn open(file: &File, misc: &MiscDeviceRegistration<Self>) -> Result<Pin<KBox<T>>> {
        // SAFETY: Every `MiscDeviceRegistration<Glue<T>>` is the `reg` field of a live
        // `Node<T>` (type invariant); `misc_open()` keeps it registered during this call.
        let node = unsafe { &*container_of!(core::ptr::from_ref(misc).cast_mut(), Node<T>, reg) };
        let this = KBox::pin_init(T::open(&node.data), GFP_KERNEL)?;
        if let Some(pages) = this.pages() {
            pages.attach(file);
        }
        Ok(this)
    }

    fn mmap(this: Pin<&T>, file: &File, vma: &VmaNew) -> Result {
        this.get_ref().pages().ok_or(ENODEV)?.mmap(file, vma)
    }

    fn ioctl(this: Pin<&T>, _file: &File, cmd: u32, arg: usize) -> Result<isize> {
        this.get_ref().ioctl(cmd, arg)
    }
}
