/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Helpers of vfio_test and dmabuf_bench: vfio-pci's dma-buf export of BAR
 * ranges (drivers/vfio/pci/vfio_pci_dmabuf.c) through the legacy group and
 * container interface, the only one of the no-IOMMU mode; the guest has no
 * IOMMU (harness/qemu.sh boots with vfio.enable_unsafe_noiommu_mode=1).
 *
 * The device is the ivshmem-plain that harness/init gives to vfio-pci (its
 * driver_override). VFIO revokes its dma-bufs, synchronously, when memory
 * decoding is turned off in the config space, around VFIO_DEVICE_RESET, on
 * low-power entry, and for good when the device file is closed.
 */
#ifndef VFIO_UTIL_H
#define VFIO_UTIL_H

#include "dmabuf_util.h"
#include <linux/pci_regs.h>
#include <linux/vfio.h>

#define VFIO_DRV "vfio-pci"

/* A device opened through VFIO. */
struct vfio {
	char bdf[16];
	int container, group, dev;
	uint64_t cfg;		/* offset of the config region in the device file */
	uint16_t cmd;		/* PCI_COMMAND as found at open, MEMORY set */
};

/* The ivshmem-plain bound to vfio-pci: 0 and its BDF in @bdf, or -ENODEV. */
static inline int find_vfio_dev(char *bdf)
{
	char devs[8][16], drv[32];
	int i, n = find_devs(0x1af4, 0x1110, devs, 8);

	for (i = 0; i < n; i++) {
		driver_of(devs[i], drv, sizeof(drv));
		if (!strcmp(drv, VFIO_DRV)) {
			snprintf(bdf, 16, "%.15s", devs[i]);
			return 0;
		}
	}
	return -ENODEV;
}

static inline void vfio_init(struct vfio *v)
{
	v->container = -1;
	v->group = -1;
	v->dev = -1;
}

static inline void vfio_close(struct vfio *v)
{
	if (v->dev >= 0)
		close(v->dev);
	if (v->group >= 0)
		close(v->group);
	if (v->container >= 0)
		close(v->container);
	vfio_init(v);
}

/* Step @what of vfio_open() failed: close what is open, return -errno. */
static inline int vfio_fail(struct vfio *v)
{
	int err = errno ? -errno : -EIO;

	vfio_close(v);
	return err;
}

/*
 * Opens the device file of @bdf (which resets the device); 0 or -errno, with
 * @what naming the step that failed.
 */
static inline int vfio_open(struct vfio *v, const char *bdf, const char **what)
{
	struct vfio_group_status gs = { .argsz = sizeof(gs) };
	struct vfio_region_info ri = {
		.argsz = sizeof(ri), .index = VFIO_PCI_CONFIG_REGION_INDEX,
	};
	char path[PATH_MAX], link[PATH_MAX];
	ssize_t n;

	vfio_init(v);
	snprintf(v->bdf, sizeof(v->bdf), "%.15s", bdf);
	errno = 0;
	*what = "open /dev/vfio/vfio";
	v->container = open("/dev/vfio/vfio", O_RDWR | O_CLOEXEC);
	if (v->container < 0)
		return vfio_fail(v);
	*what = "API version";
	if (ioctl(v->container, VFIO_GET_API_VERSION) != VFIO_API_VERSION)
		return vfio_fail(v);
	*what = "no-IOMMU extension";
	if (ioctl(v->container, VFIO_CHECK_EXTENSION, VFIO_NOIOMMU_IOMMU) != 1)
		return vfio_fail(v);
	*what = "iommu_group link";
	snprintf(path, sizeof(path), PCI_DEVS "/%s/iommu_group", bdf);
	n = readlink(path, link, sizeof(link) - 1);
	if (n <= 0)
		return vfio_fail(v);
	link[n] = '\0';
	*what = "open the group";
	snprintf(path, sizeof(path), "/dev/vfio/noiommu-%s", strrchr(link, '/') + 1);
	v->group = open(path, O_RDWR | O_CLOEXEC);
	if (v->group < 0)
		return vfio_fail(v);
	*what = "viable group";
	if (ioctl(v->group, VFIO_GROUP_GET_STATUS, &gs) || !(gs.flags & VFIO_GROUP_FLAGS_VIABLE))
		return vfio_fail(v);
	*what = "set the container and the no-IOMMU type";
	if (ioctl(v->group, VFIO_GROUP_SET_CONTAINER, &v->container) ||
	    ioctl(v->container, VFIO_SET_IOMMU, VFIO_NOIOMMU_IOMMU))
		return vfio_fail(v);
	*what = "get the device";
	v->dev = ioctl(v->group, VFIO_GROUP_GET_DEVICE_FD, bdf);
	if (v->dev < 0)
		return vfio_fail(v);
	*what = "config region";
	if (ioctl(v->dev, VFIO_DEVICE_GET_REGION_INFO, &ri))
		return vfio_fail(v);
	v->cfg = ri.offset;
	*what = "PCI_COMMAND with memory decoding on";
	if (pread(v->dev, &v->cmd, 2, v->cfg + PCI_COMMAND) != 2 ||
	    !(v->cmd & PCI_COMMAND_MEMORY))
		return vfio_fail(v);
	return 0;
}

/* Export @n ranges of BAR @bar as a dma-buf; its fd or -errno. */
static inline int vfio_export(struct vfio *v, int bar, const struct p2pdma_dmabuf_range *r,
			      unsigned int n)
{
	size_t sz = sizeof(struct vfio_device_feature) +
		    sizeof(struct vfio_device_feature_dma_buf) +
		    n * sizeof(struct vfio_region_dma_range);
	struct vfio_device_feature *f = calloc(1, sz);
	struct vfio_device_feature_dma_buf *d;
	unsigned int i;
	int fd;

	if (!f)
		return -ENOMEM;
	d = (void *)f->data;
	f->argsz = sz;
	f->flags = VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_DMA_BUF;
	d->region_index = VFIO_PCI_BAR0_REGION_INDEX + bar;
	d->open_flags = O_RDWR | O_CLOEXEC;
	d->nr_ranges = n;
	for (i = 0; i < n; i++) {
		d->dma_ranges[i].offset = r[i].offset;
		d->dma_ranges[i].length = r[i].length;
	}
	fd = ioctl(v->dev, VFIO_DEVICE_FEATURE, f);
	if (fd < 0)
		fd = -errno;
	free(f);
	return fd;
}

static inline int vfio_export_one(struct vfio *v, uint64_t offset, uint64_t len)
{
	struct p2pdma_dmabuf_range r = { offset, len };

	return vfio_export(v, BAR, &r, 1);
}

/* PCI_COMMAND through VFIO's config region: 0 or -errno. */
static inline int vfio_set_cmd(struct vfio *v, uint16_t cmd)
{
	return pwrite(v->dev, &cmd, 2, v->cfg + PCI_COMMAND) == 2 ? 0 : -errno;
}

/* Memory decoding off (VFIO revokes first) or back on (VFIO re-arms). */
static inline int vfio_memory(struct vfio *v, int on)
{
	return vfio_set_cmd(v, on ? v->cmd : v->cmd & ~PCI_COMMAND_MEMORY);
}

/* VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY (revokes) or _EXIT (re-arms). */
static inline int vfio_low_power(struct vfio *v, int enter)
{
	struct vfio_device_feature f = {
		.argsz = sizeof(f),
		.flags = VFIO_DEVICE_FEATURE_SET | (enter ? VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY :
							   VFIO_DEVICE_FEATURE_LOW_POWER_EXIT),
	};

	return ioctl(v->dev, VFIO_DEVICE_FEATURE, &f) ? -errno : 0;
}

/* VFIO_DEVICE_RESET: revoke, reset the device, re-arm. */
static inline int vfio_reset(struct vfio *v)
{
	return ioctl(v->dev, VFIO_DEVICE_RESET) ? -errno : 0;
}

#endif /* VFIO_UTIL_H */
