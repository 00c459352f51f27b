// SPDX-License-Identifier: GPL-2.0
/*
 * Peer-to-peer data: the NVMe controller behind the switch DMAs straight
 * into and out of p2pmem that p2pdma_rs publishes from the ivshmem-plain
 * BAR next to it (O_DIRECT I/O on the namespace with a p2pmem/allocate
 * mapping as the buffer; the block layer passes such pages only to queues
 * that do P2PDMA, and maps them with the PCI bus address).
 *
 * Each test checks the data in the guest and prints HOSTCHECK lines; after
 * the run the host finds the same bytes in the ivshmem backing file and the
 * NVMe image (harness/hostcheck.py). The host files are created empty for
 * each boot and the pattern seed is random, so old data cannot pass.
 *
 * The write test runs first: the read test's data stays in the ivshmem
 * memory for the host to check.
 *
 * The ivshmem on the root bus is no peer of the NVMe on q35 unless the CPU
 * passes the host-bridge check (AMD Zen, the EPYC boot): then the same read
 * goes through the host bridge (THRU_HOST_BRIDGE, dma_map), otherwise the
 * block layer refuses the pages (NOT_SUPPORTED) and nothing is written.
 */
#include "p2pdma_util.h"
#include <time.h>
#include "kselftest_harness.h"

#define LEN		(8UL << 20)
#define NVME_READ_AT	(16ULL << 20)	/* where the read test's data is on the NVMe */
#define NVME_WRITE_AT	(32ULL << 20)	/* where the write test puts its data */
#define NVME_ROOT_AT	(48ULL << 20)	/* the data of the root-bus test */
#define ROOT_LEN	0x100000UL

FIXTURE(io) {
	char ivshmem[16];	/* behind the switch, p2pmem from p2pdma_rs */
	char root[16];		/* on the root bus */
	char nvme[16];
	int blk;		/* the NVMe namespace, O_DIRECT */
	void *plain;		/* ordinary memory for the other side of checks */
	uint64_t seed;
};

FIXTURE_SETUP(io)
{
	char path[PATH_MAX], sw_a[32], sw_b[32], up[32];

	ASSERT_EQ(0, find_ivshmem(self->ivshmem, self->root));
	ASSERT_EQ(1, find_devs(0x1b36, 0x0010, (char (*)[16])self->nvme, 1));
	/* Both behind the same switch: their ports share the upstream port. */
	parent_of(self->ivshmem, up, sizeof(up));
	parent_of(up, sw_a, sizeof(sw_a));
	parent_of(self->nvme, up, sizeof(up));
	parent_of(up, sw_b, sizeof(sw_b));
	ASSERT_STRNE("", sw_a);
	ASSERT_STREQ(sw_a, sw_b);
	ASSERT_LE((long)LEN, read_long(self->ivshmem, "p2pmem/available"))
		TH_LOG("%s has no p2pmem: is p2pdma_rs bound?", self->ivshmem);

	ASSERT_EQ(0, nvme_namespace(self->nvme, path, sizeof(path)))
		TH_LOG("no namespace under %s", self->nvme);
	self->blk = open(path, O_RDWR | O_DIRECT);
	ASSERT_LE(0, self->blk) TH_LOG("open %s: %s", path, strerror(errno));
	ASSERT_EQ(0, posix_memalign(&self->plain, 4096, LEN));
	self->seed = random_seed();
}

FIXTURE_TEARDOWN(io)
{
	free(self->plain);
	close(self->blk);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* One O_DIRECT transfer of @len bytes at @off; the byte count or -errno. */
static ssize_t xfer(int fd, void *buf, size_t len, off_t off, int write, double *secs)
{
	double t = now();
	size_t done = 0;
	ssize_t n;

	while (done < len) {
		n = write ? pwrite(fd, (char *)buf + done, len - done, off + done)
			  : pread(fd, (char *)buf + done, len - done, off + done);
		if (n <= 0)
			return n < 0 ? -errno : (ssize_t)done;
		done += n;
	}
	if (write && fdatasync(fd))
		return -errno;
	*secs = now() - t;
	return done;
}

/* p2pmem → NVMe: the controller reads the data from the ivshmem BAR. */
TEST_F(io, nvme_writes_from_ivshmem_p2pmem)
{
	double secs = 0;
	long long at;
	void *p2p;
	int fd;

	p2p = p2pmem_map(self->ivshmem, LEN, &fd);
	ASSERT_NE(MAP_FAILED, p2p) TH_LOG("p2pmem mmap: %s", strerror(errno));
	at = bar_offset(self->ivshmem, 2, p2p, LEN);
	ASSERT_LE(0, at) TH_LOG("the mapping is not one range of the ivshmem BAR");
	pattern_fill(p2p, LEN, self->seed);

	ASSERT_EQ(LEN, xfer(self->blk, p2p, LEN, NVME_WRITE_AT, 1, &secs));
	TH_LOG("p2pmem -> NVMe: %lu MiB in %.1f ms, %.1f MiB/s",
	       LEN >> 20, secs * 1e3, (LEN >> 20) / secs);

	/* Read it back into ordinary memory. */
	memset(self->plain, 0, LEN);
	ASSERT_EQ(LEN, xfer(self->blk, self->plain, LEN, NVME_WRITE_AT, 0, &secs));
	EXPECT_EQ(-1, pattern_check(self->plain, LEN, self->seed));
	TH_LOG("HOSTCHECK nvme offset=%#llx len=%#lx seed=%#llx",
	       NVME_WRITE_AT, LEN, (unsigned long long)self->seed);

	ASSERT_EQ(0, munmap(p2p, LEN));
	close(fd);
}

/* NVMe → p2pmem: the controller writes into the ivshmem BAR. */
TEST_F(io, nvme_reads_into_ivshmem_p2pmem)
{
	double secs = 0;
	long long at;
	void *p2p;
	int fd;

	/* The data on the NVMe, written from ordinary memory. */
	pattern_fill(self->plain, LEN, self->seed);
	ASSERT_EQ(LEN, xfer(self->blk, self->plain, LEN, NVME_READ_AT, 1, &secs));

	p2p = p2pmem_map(self->ivshmem, LEN, &fd);
	ASSERT_NE(MAP_FAILED, p2p) TH_LOG("p2pmem mmap: %s", strerror(errno));
	at = bar_offset(self->ivshmem, 2, p2p, LEN);
	ASSERT_LE(0, at) TH_LOG("the mapping is not one range of the ivshmem BAR");
	memset(p2p, 0, LEN);
	ASSERT_EQ(0, pattern_check(p2p, LEN, self->seed));

	ASSERT_EQ(LEN, xfer(self->blk, p2p, LEN, NVME_READ_AT, 0, &secs));
	TH_LOG("NVMe -> p2pmem: %lu MiB in %.1f ms, %.1f MiB/s",
	       LEN >> 20, secs * 1e3, (LEN >> 20) / secs);
	EXPECT_EQ(-1, pattern_check(p2p, LEN, self->seed));
	TH_LOG("HOSTCHECK ivshmem-switch offset=%#llx len=%#lx seed=%#llx",
	       at, LEN, (unsigned long long)self->seed);
	TH_LOG("HOSTCHECK nvme offset=%#llx len=%#lx seed=%#llx",
	       NVME_READ_AT, LEN, (unsigned long long)self->seed);

	ASSERT_EQ(0, munmap(p2p, LEN));
	close(fd);
}

/* NVMe → p2pmem of the root-bus ivshmem: as the map type says. */
TEST_F(io, nvme_to_root_bus_p2pmem_follows_host_bridge)
{
	int thru = cpu_allows_host_bridge();
	double secs = 0;
	long long at;
	ssize_t n;
	void *p2p;
	int fd;

	pattern_fill(self->plain, ROOT_LEN, self->seed);
	ASSERT_EQ(ROOT_LEN, xfer(self->blk, self->plain, ROOT_LEN, NVME_ROOT_AT, 1, &secs));
	p2p = p2pmem_map(self->root, ROOT_LEN, &fd);
	ASSERT_NE(MAP_FAILED, p2p) TH_LOG("p2pmem mmap: %s", strerror(errno));
	at = bar_offset(self->root, 2, p2p, ROOT_LEN);
	ASSERT_LE(0, at);
	memset(p2p, 0, ROOT_LEN);

	n = xfer(self->blk, p2p, ROOT_LEN, NVME_ROOT_AT, 0, &secs);
	if (thru) {
		ASSERT_EQ(ROOT_LEN, n) TH_LOG("through the host bridge: %s", strerror(-n));
		EXPECT_EQ(-1, pattern_check(p2p, ROOT_LEN, self->seed));
		TH_LOG("HOSTCHECK ivshmem-root offset=%#llx len=%#lx seed=%#llx",
		       at, ROOT_LEN, (unsigned long long)self->seed);
	} else {
		const uint64_t *w = p2p;
		size_t i;

		EXPECT_EQ(-EINVAL, n) TH_LOG("NOT_SUPPORTED pair: %s", strerror(-n));
		for (i = 0; i < ROOT_LEN / 8 && !w[i]; i++)
			;
		EXPECT_EQ(ROOT_LEN / 8, i) TH_LOG("the refused read wrote at %#zx", i * 8);
	}
	ASSERT_EQ(0, munmap(p2p, ROOT_LEN));
	close(fd);
}

TEST_HARNESS_MAIN
