/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * p2pdma-rs dma-buf sample drivers: export ranges of a PCI BAR as dma-bufs
 * (rust_p2pdma_dmabuf, /dev/p2pdma-dmabuf-<bdf>) and import them into a
 * device that DMAs into them (rust_p2pdma_import, /dev/p2pdma-import-<bdf>).
 *
 * Pages mode (rust_p2pdma_dmabuf pages=<MiB>): the first <MiB> of BAR 2 get
 * struct pages, and the node is /dev/p2pdma-pages-<bdf>. Besides the ioctls
 * below (EXPORT then takes only ranges inside that range, EINVAL otherwise),
 * its files can be mmap()ed: MAP_SHARED only (EINVAL), the file offset being
 * the offset in the range, which the mapping must not pass (EINVAL). The pages
 * are real pages: O_DIRECT I/O of a P2PDMA-capable block device (NVMe) goes
 * straight into the BAR. REVOKE (and a reset, an unbind, a hot-unplug) works
 * in three stages and returns when all are done: (1) the mappings are zapped,
 * and touching them raises SIGBUS (I/O on them fails with EFAULT); (2) every
 * page pinned by I/O in flight is back, so that I/O is complete; (3) every
 * importer is invalidated and has unmapped. After UNREVOKE the same mappings
 * work again. Once the device is gone, mmap() fails with ENODEV. A signal
 * interrupts REVOKE and UNREVOKE (EINTR, or restarted) while they wait for
 * another REVOKE or UNREVOKE, before they do anything, and REVOKE while it
 * waits for stage (2): the range is revoked then, stages (1) and (3) done, and
 * a new REVOKE waits again. A reset or an AER error never waits for the stage
 * (2) of a REVOKE; its own gives up after one second (the I/O still pinning
 * pages may be waiting for the reset).
 */
#ifndef _UAPI_LINUX_P2PDMA_DMABUF_H
#define _UAPI_LINUX_P2PDMA_DMABUF_H

#include <linux/ioctl.h>
#include <linux/types.h>

#define P2PDMA_DMABUF_MAX_RANGES	256

/* A range of a BAR: offset and length, both non-zero multiples of the page size. */
struct p2pdma_dmabuf_range {
	__u64 offset;
	__u64 length;
};

/*
 * P2PDMA_DMABUF_EXPORT: export @nr_ranges ranges of memory BAR @bar as one
 * dma-buf; returns its new file descriptor.
 * @open_flags: O_CLOEXEC and an access mode (O_RDONLY, O_WRONLY, O_RDWR).
 * @flags: must be 0.
 * @ranges: user pointer to @nr_ranges struct p2pdma_dmabuf_range.
 * Errors: EINVAL (bad BAR, flags or range), EPERM (a memory BAR the driver
 * has not claimed: see its bars parameter), E2BIG (more than
 * P2PDMA_DMABUF_MAX_RANGES), EOVERFLOW (a range wraps), EFAULT, ENODEV (the
 * device is gone).
 */
struct p2pdma_dmabuf_export {
	__u32 bar;
	__u32 open_flags;
	__u32 flags;
	__u32 nr_ranges;
	__u64 ranges;
};

/*
 * P2PDMA_DMABUF_STATE: where memory BAR @bar is, and the exporter's state.
 * Errors: EINVAL (no memory BAR @bar, reserved fields not 0), ENODEV.
 */
struct p2pdma_dmabuf_state {
	__u32 bar;		/* in */
	__u32 revoked;		/* out: 1 when exports are revoked */
	__u32 exports;		/* out: dma-bufs exported and not released */
	__u32 mappings;		/* out: mappings importers hold */
	__u64 bar_start;	/* out: CPU physical address of the BAR */
	__u64 bar_len;		/* out */
	__u64 bus_offset;	/* out: PCI bus address - CPU physical address */
};

/*
 * P2PDMA_DMABUF_PAGES (pages mode only, else ENOTTY): the range and the last
 * revocation, each stage in nanoseconds.
 */
struct p2pdma_dmabuf_pages {
	__u64 offset;		/* of the range in BAR 2 */
	__u64 length;
	__u32 busy_pages;	/* pages mapped or pinned now */
	__u32 waited_pages;	/* pages pinned when stage 2 began */
	__u64 zap_ns;		/* stage 1 */
	__u64 wait_ns;		/* stage 2 */
	__u64 invalidate_ns;	/* stage 3 */
};

#define P2PDMA_DMABUF_TYPE	0xbb
#define P2PDMA_DMABUF_EXPORT	_IOW(P2PDMA_DMABUF_TYPE, 0x00, struct p2pdma_dmabuf_export)
/* Revoke every export synchronously (as a reset or memory disable would). */
#define P2PDMA_DMABUF_REVOKE	_IO(P2PDMA_DMABUF_TYPE, 0x01)
/* Let importers map again. */
#define P2PDMA_DMABUF_UNREVOKE	_IO(P2PDMA_DMABUF_TYPE, 0x02)
#define P2PDMA_DMABUF_STATE	_IOWR(P2PDMA_DMABUF_TYPE, 0x03, struct p2pdma_dmabuf_state)
#define P2PDMA_DMABUF_PAGES	_IOR(P2PDMA_DMABUF_TYPE, 0x04, struct p2pdma_dmabuf_pages)

/* Map types (enum pci_p2pdma_map_type, from the importing device). */
#define P2PDMA_MAP_UNKNOWN		0
#define P2PDMA_MAP_NOT_SUPPORTED	1
#define P2PDMA_MAP_BUS_ADDR		2
#define P2PDMA_MAP_THRU_HOST_BRIDGE	3

/* A DMA range of a mapping. */
struct p2pdma_import_range {
	__u64 addr;
	__u64 length;
};

/*
 * P2PDMA_IMPORT_MAP: map the attached dma-buf (if not mapped) and report it.
 * @nr_ranges: in: room in @ranges; out: number of DMA ranges (even if more
 * than the room).
 * @reserved: in: 0.
 * @ranges: user pointer to struct p2pdma_import_range[@nr_ranges].
 * Errors: ENOENT (nothing attached), ENODEV (revoked, or a device gone),
 * EINVAL (the devices cannot reach each other: NOT_SUPPORTED; or @reserved
 * not 0).
 */
struct p2pdma_import_map {
	__u32 nr_ranges;
	__u32 reserved;
	__u64 ranges;
};

/*
 * P2PDMA_IMPORT_DMA: make the device write @length bytes of the pattern of
 * @seed (splitmix64 words) into the buffer at @offset, while it is mapped.
 * @offset and @length: multiples of 8, @length at most
 * P2PDMA_IMPORT_DMA_MAX (the edu buffer less one word), within one DMA range.
 * @flags: P2PDMA_IMPORT_DMA_WAIT waits until the write is done.
 * Errors: as for P2PDMA_IMPORT_MAP, and EINVAL for a bad range or flag.
 */
struct p2pdma_import_dma {
	__u64 offset;
	__u64 seed;
	__u32 length;
	__u32 flags;
};

#define P2PDMA_IMPORT_DMA_WAIT	0x1
#define P2PDMA_IMPORT_DMA_MAX	4088

/*
 * P2PDMA_IMPORT_STATUS: the attachment's state, read at one moment (so it
 * waits for a revocation under way). ENOENT if none.
 */
struct p2pdma_import_status {
	__u32 mapped;		/* 1 when mapped now */
	__u32 invalidations;	/* times the exporter invalidated the mapping */
	__u32 dma_started;	/* device writes started (this device) */
	__u32 dma_busy;		/* 1 while the device is writing */
	/*
	 * P2PDMA_MAP_* of the buffer's provider for this device, while mapped
	 * (not revoked); P2PDMA_MAP_UNKNOWN otherwise and for buffers of other
	 * exporters (such as vfio-pci's).
	 */
	__u32 map_type;
	__u32 reserved;		/* 0 */
};

/* Attach the dma-buf of file descriptor (the ioctl argument) to this file. */
#define P2PDMA_IMPORT_ATTACH	_IO(P2PDMA_DMABUF_TYPE, 0x10)
/* 0x11: the MAP of before, which reported the map type. */
#define P2PDMA_IMPORT_MAP	_IOWR(P2PDMA_DMABUF_TYPE, 0x16, struct p2pdma_import_map)
#define P2PDMA_IMPORT_UNMAP	_IO(P2PDMA_DMABUF_TYPE, 0x12)
#define P2PDMA_IMPORT_DMA	_IOW(P2PDMA_DMABUF_TYPE, 0x13, struct p2pdma_import_dma)
#define P2PDMA_IMPORT_STATUS	_IOR(P2PDMA_DMABUF_TYPE, 0x14, struct p2pdma_import_status)
/* Detach. */
#define P2PDMA_IMPORT_DETACH	_IO(P2PDMA_DMABUF_TYPE, 0x15)

#endif /* _UAPI_LINUX_P2PDMA_DMABUF_H */
