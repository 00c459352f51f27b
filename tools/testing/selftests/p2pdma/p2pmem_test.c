// SPDX-License-Identifier: GPL-2.0
/*
 * P2PDMA topology and p2pmem tests, for the QEMU topology of p2pdma-rs:
 * an NVMe with a CMB and an ivshmem-plain behind one PCIe switch, a second
 * ivshmem-plain and an edu on the root bus.
 */
#include "p2pdma_util.h"
#include "kselftest_harness.h"

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
	char bdf[16];
};

FIXTURE_SETUP(nvme)
{
	/* QEMU NVMe: 1b36:0010. */
	ASSERT_EQ(1, find_devs(0x1b36, 0x0010, (char (*)[16])self->bdf, 1))
		TH_LOG("no NVMe controller: the QEMU topology is not the expected one");
}

FIXTURE_TEARDOWN(nvme)
{
}

TEST_F(nvme, behind_switch)
{
	char dn[32], up[32];

	parent_of(self->bdf, dn, sizeof(dn));
	EXPECT_EQ(PCI_EXP_TYPE_DOWNSTREAM, pcie_type(dn))
		TH_LOG("%s is no switch downstream port", dn);
	parent_of(dn, up, sizeof(up));
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
	unsigned char *p;
	size_t i;
	int fd;

	p = p2pmem_map(self->bdf, len, &fd);
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
