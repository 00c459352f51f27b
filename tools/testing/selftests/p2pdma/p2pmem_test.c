// SPDX-License-Identifier: GPL-2.0
/*
 * P2PDMA topology and p2pmem tests, for the QEMU topology of p2pdma-rs:
 * an NVMe with a CMB and an ivshmem-plain behind one PCIe switch, a second
 * ivshmem-plain and an edu on the root bus.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "kselftest_harness.h"

#define PCI_DEVS "/sys/bus/pci/devices"
#define DEBUGFS "/sys/kernel/debug"

static int read_str(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	return 0;
}

static long read_long(const char *dev, const char *attr)
{
	char path[PATH_MAX], buf[64];

	snprintf(path, sizeof(path), PCI_DEVS "/%s/%s", dev, attr);
	if (read_str(path, buf, sizeof(buf)))
		return -1;
	return strtol(buf, NULL, 0);
}

/* First PCI device with this vendor:device (and class, if not 0). */
static int find_dev(long vendor, long device, long class, char *bdf, size_t len)
{
	struct dirent *e;
	DIR *d = opendir(PCI_DEVS);

	if (!d)
		return -errno;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		if (read_long(e->d_name, "vendor") == vendor &&
		    read_long(e->d_name, "device") == device &&
		    (!class || read_long(e->d_name, "class") == class) &&
		    strlen(e->d_name) < len) {
			memcpy(bdf, e->d_name, strlen(e->d_name) + 1);
			closedir(d);
			return 0;
		}
	}
	closedir(d);
	return -ENODEV;
}

/* The upstream PCI device (bridge or port) of @bdf, from its sysfs path. */
static int upstream_of(const char *bdf, char *up, size_t len)
{
	char path[PATH_MAX], real[PATH_MAX], *slash;

	snprintf(path, sizeof(path), PCI_DEVS "/%s", bdf);
	if (!realpath(path, real))
		return -errno;
	slash = strrchr(real, '/');
	if (!slash)
		return -EINVAL;
	*slash = '\0';
	slash = strrchr(real, '/');
	if (!slash || strncmp(slash + 1, "pci", 3) == 0)
		return -ENOENT;	/* on a root bus */
	snprintf(up, len, "%s", slash + 1);
	return 0;
}

/* PCIe device/port type (PCI_EXP_FLAGS_TYPE) from config space, or -1. */
static int pcie_type(const char *bdf)
{
	unsigned char cfg[256];
	char path[PATH_MAX];
	int fd, pos, guard = 48;
	ssize_t n;

	snprintf(path, sizeof(path), PCI_DEVS "/%s/config", bdf);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return -1;
	n = read(fd, cfg, sizeof(cfg));
	close(fd);
	if (n < 64 || !(cfg[0x06] & 0x10))	/* PCI_STATUS_CAP_LIST */
		return -1;
	for (pos = cfg[0x34] & ~3; pos && pos < n - 4 && guard--; pos = cfg[pos + 1] & ~3)
		if (cfg[pos] == 0x10)		/* PCI_CAP_ID_EXP */
			return (cfg[pos + 2] >> 4) & 0xf;
	return -1;
}

#define PCI_EXP_TYPE_UPSTREAM	0x5
#define PCI_EXP_TYPE_DOWNSTREAM	0x6

FIXTURE(nvme) {
	char bdf[32];
};

FIXTURE_SETUP(nvme)
{
	/* QEMU NVMe: 1b36:0010, class 0x010802. */
	ASSERT_EQ(0, find_dev(0x1b36, 0x0010, 0x010802, self->bdf, sizeof(self->bdf)))
		TH_LOG("no NVMe controller: the QEMU topology is not the expected one");
}

FIXTURE_TEARDOWN(nvme)
{
}

TEST_F(nvme, behind_switch)
{
	char dn[32], up[32];

	ASSERT_EQ(0, upstream_of(self->bdf, dn, sizeof(dn)));
	EXPECT_EQ(PCI_EXP_TYPE_DOWNSTREAM, pcie_type(dn))
		TH_LOG("%s is no switch downstream port", dn);
	ASSERT_EQ(0, upstream_of(dn, up, sizeof(up)));
	EXPECT_EQ(PCI_EXP_TYPE_UPSTREAM, pcie_type(up)) TH_LOG("%s is no switch upstream port", up);
}

TEST_F(nvme, cmb_is_published_p2pmem)
{
	long size = read_long(self->bdf, "p2pmem/size");

	ASSERT_GE(size, 2L << 20) TH_LOG("%s has no p2pmem (CMB not registered)", self->bdf);
	EXPECT_EQ(0, size % (2L << 20));
	EXPECT_EQ(1, read_long(self->bdf, "p2pmem/published"));
	/* The NVMe driver may keep some of its CMB for queues. */
	EXPECT_GT(read_long(self->bdf, "p2pmem/available"), 0);
	EXPECT_LE(read_long(self->bdf, "p2pmem/available"), size);
}

TEST_F(nvme, p2pmem_alloc_gives_memory_back)
{
	const size_t len = 1 << 20;
	long avail = read_long(self->bdf, "p2pmem/available");
	char path[PATH_MAX];
	unsigned char *p;
	size_t i;
	int fd;

	snprintf(path, sizeof(path), PCI_DEVS "/%s/p2pmem/allocate", self->bdf);
	fd = open(path, O_RDWR);
	ASSERT_LE(0, fd);
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	ASSERT_NE(MAP_FAILED, p);
	EXPECT_EQ(avail - (long)len, read_long(self->bdf, "p2pmem/available"));
	for (i = 0; i < len; i++)
		p[i] = i * 7;
	for (i = 0; i < len; i++)
		if (p[i] != (unsigned char)(i * 7))
			break;
	EXPECT_EQ(len, i) TH_LOG("CMB readback mismatch at %zu", i);
	ASSERT_EQ(0, munmap(p, len));
	close(fd);
	EXPECT_EQ(avail, read_long(self->bdf, "p2pmem/available"));
}

TEST_F(nvme, p2pmem_private_mapping_refused)
{
	char path[PATH_MAX];
	void *p;
	int fd;

	snprintf(path, sizeof(path), PCI_DEVS "/%s/p2pmem/allocate", self->bdf);
	fd = open(path, O_RDWR);
	ASSERT_LE(0, fd);
	p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	EXPECT_EQ(MAP_FAILED, p);
	EXPECT_EQ(EINVAL, errno);
	close(fd);
}

TEST_HARNESS_MAIN
