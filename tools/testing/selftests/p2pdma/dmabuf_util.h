/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Helpers of dmabuf_test and dmabuf_demo: the ioctls of the dma-buf exporter
 * and importer samples (<linux/p2pdma_dmabuf.h>) and the HOSTCHECK lines that
 * harness/hostcheck.py checks against the exporter's backing file.
 */
#ifndef DMABUF_UTIL_H
#define DMABUF_UTIL_H

#include "p2pdma_util.h"
#include <sys/ioctl.h>
#include <linux/p2pdma_dmabuf.h>

#define EXPORTER "rust_p2pdma_dmabuf"
#define IMPORTER "rust_p2pdma_import"
/*
 * harness/qemu.sh gives both edus a 64-bit dma_mask; the importer must be told
 * (its default is the edu's own, 28 bits). Every load says it: a Rust module
 * parameter can be set only once, so it cannot come from modprobe.d as well.
 */
#define IMPORTER_BITS "dma_bits=64"
/* The exporter's BAR: the shared memory of ivshmem-plain. */
#define BAR 2
#define PAGE 0x1000ULL
#define DMA_LEN P2PDMA_IMPORT_DMA_MAX

static inline int open_node(const char *kind, const char *bdf)
{
	char path[PATH_MAX];
	int i, fd = -1;

	snprintf(path, sizeof(path), "/dev/p2pdma-%s-%s", kind, bdf);
	/* devtmpfs creates the node right after the driver's probe. */
	for (i = 0; i < 100 && fd < 0; i++) {
		fd = open(path, O_RDWR | O_CLOEXEC);
		if (fd < 0)
			usleep(20000);
	}
	return fd;
}

/* Export @n ranges of BAR 2; returns the dma-buf fd or -errno. */
static inline int export_ranges(int exp, const struct p2pdma_dmabuf_range *r, unsigned int n)
{
	struct p2pdma_dmabuf_export e = {
		.bar = BAR, .open_flags = O_RDWR | O_CLOEXEC,
		.nr_ranges = n, .ranges = (uintptr_t)r,
	};
	int fd = ioctl(exp, P2PDMA_DMABUF_EXPORT, &e);

	return fd < 0 ? -errno : fd;
}

static inline int export_one(int exp, uint64_t offset, uint64_t len)
{
	struct p2pdma_dmabuf_range r = { offset, len };

	return export_ranges(exp, &r, 1);
}

static inline int state(int exp, struct p2pdma_dmabuf_state *st)
{
	memset(st, 0, sizeof(*st));
	st->bar = BAR;
	return ioctl(exp, P2PDMA_DMABUF_STATE, st) ? -errno : 0;
}

/* A new importer of @edu attached to @buf, or -errno. */
static inline int importer(const char *edu, int buf)
{
	int fd = open_node("import", edu);

	if (fd < 0)
		return -errno;
	if (ioctl(fd, P2PDMA_IMPORT_ATTACH, buf)) {
		int err = -errno;

		close(fd);
		return err;
	}
	return fd;
}

/*
 * Map; returns the number of ranges or -errno. With @type, also the map type
 * (from P2PDMA_IMPORT_STATUS, right after the map).
 */
static inline int imp_map(int imp, struct p2pdma_import_range *r, unsigned int room, __u32 *type)
{
	struct p2pdma_import_map m = { .nr_ranges = room, .ranges = (uintptr_t)r };
	struct p2pdma_import_status s;

	if (ioctl(imp, P2PDMA_IMPORT_MAP, &m))
		return -errno;
	if (type) {
		if (ioctl(imp, P2PDMA_IMPORT_STATUS, &s))
			return -errno;
		*type = s.map_type;
	}
	return m.nr_ranges;
}

static inline int imp_dma(int imp, uint64_t offset, uint32_t len, uint64_t seed, int wait)
{
	struct p2pdma_import_dma d = {
		.offset = offset, .seed = seed, .length = len,
		.flags = wait ? P2PDMA_IMPORT_DMA_WAIT : 0,
	};

	return ioctl(imp, P2PDMA_IMPORT_DMA, &d) ? -errno : 0;
}

static inline int imp_status(int imp, struct p2pdma_import_status *s)
{
	return ioctl(imp, P2PDMA_IMPORT_STATUS, s) ? -errno : 0;
}

/*
 * Print a host check of @len bytes at BAR offset @at of the ivshmem whose
 * backing file is shm/@file: the pattern of @seed, or zeros.
 */
static inline void hostcheck_in(const char *file, uint64_t at, uint64_t len, uint64_t seed,
				int zero)
{
	if (zero)
		printf("# HOSTCHECK %s offset=%#llx len=%#llx zero\n", file,
		       (unsigned long long)at, (unsigned long long)len);
	else
		printf("# HOSTCHECK %s offset=%#llx len=%#llx seed=%#llx\n", file,
		       (unsigned long long)at, (unsigned long long)len,
		       (unsigned long long)seed);
	fflush(stdout);
}

/* The same for the exporter sample's ivshmem. */
static inline void hostcheck(uint64_t at, uint64_t len, uint64_t seed, int zero)
{
	hostcheck_in("ivshmem-dmabuf", at, len, seed, zero);
}

#endif /* DMABUF_UTIL_H */
