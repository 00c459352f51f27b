// SPDX-License-Identifier: GPL-2.0
/*
 * The p2pdma_rs provider driver (drivers/pci/p2pdma_rs) across its life:
 * unbind and PCI remove while user space holds p2pmem, O_DIRECT I/O in
 * flight during unbind, allocation after unbind, rebind and rescan, module
 * parameters choosing the BAR range (good and bad ones), and binding a
 * device it has no ID for through driver_override and new_id (QEMU's
 * pci-testdev with a 32 MiB BAR 2).
 *
 * Every test leaves the driver loaded with its defaults and bound to both
 * ivshmem-plain devices.
 */
#include "p2pdma_util.h"
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include "kselftest_harness.h"

#define MIB 0x100000UL
#define LEAK "rust_p2pdma_leak"
#define LEAK_DRV "/sys/bus/pci/drivers/" LEAK

FIXTURE(drv) {
	char sw[16];		/* ivshmem behind the switch */
	char root[16];		/* ivshmem on the root bus */
	char testdev[16];	/* pci-testdev, bound only on request */
	char nvme[16];
	uint64_t seed;
};

static int bound(const char *bdf)
{
	char drv[64];

	driver_of(bdf, drv, sizeof(drv));
	return !strcmp(drv, "p2pdma_rs");
}

static int exists(const char *fmt, const char *bdf)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), fmt, bdf);
	return access(path, F_OK) == 0;
}

/*
 * Loads the module afresh with @params; 0 once it is loaded. Under TCG and
 * KASAN one reload takes 0.5 to 4 s, so tests that reload get their own
 * timeouts.
 */
static int reload(const char *params)
{
	if (access(PCI_DRV, F_OK) == 0 && system("rmmod p2pdma_rs"))
		return -1;
	return load_module("p2pdma_rs", params);
}

FIXTURE_SETUP(drv)
{
	ASSERT_EQ(0, find_ivshmem(self->sw, self->root));
	ASSERT_EQ(1, find_devs(0x1b36, 0x0005, (char (*)[16])self->testdev, 1))
		TH_LOG("no pci-testdev in the topology");
	ASSERT_EQ(1, find_devs(0x1b36, 0x0010, (char (*)[16])self->nvme, 1));
	ASSERT_TRUE(bound(self->sw) && bound(self->root))
		TH_LOG("p2pdma_rs is not bound to both ivshmem-plain");
	ASSERT_FALSE(bound(self->testdev));
	self->seed = random_seed();
}

/* Sets (or with "\n" clears) the driver_override of @bdf. */
static int set_override(const char *bdf, const char *drv)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), PCI_DEVS "/%s/driver_override", bdf);
	return write_str(path, drv);
}

FIXTURE_TEARDOWN(drv)
{
	char drv[64];

	set_override(self->testdev, "\n");
	set_override(self->root, "\n");
	driver_of(self->testdev, drv, sizeof(drv));
	if (!strcmp(drv, LEAK))
		write_str(LEAK_DRV "/unbind", self->testdev);
	driver_of(self->root, drv, sizeof(drv));
	if (!strcmp(drv, LEAK))
		write_str(LEAK_DRV "/unbind", self->root);
	if (!drv[0] || !strcmp(drv, LEAK))
		write_str(PCI_DRV "/bind", self->root);
	write_str(PCI_DRV "/remove_id", "1b36 0005");
	if (bound(self->testdev))
		write_str(PCI_DRV "/unbind", self->testdev);
	if (!exists(PCI_DEVS "/%s", self->sw))
		write_str("/sys/bus/pci/rescan", "1");
	if (!bound(self->sw) || !bound(self->root) ||
	    read_long(self->sw, "p2pmem/size") != 16L * MIB)
		reload("");
}

/* Touches @p in a child process: the signal that killed it, or 0. */
static int touch(char *p, int write)
{
	pid_t pid = fork();
	int status;

	if (pid == 0) {
		if (write)
			__atomic_store_n(p, 1, __ATOMIC_RELAXED);
		else
			__atomic_load_n(p, __ATOMIC_RELAXED);
		_exit(0);
	}
	if (pid < 0 || waitpid(pid, &status, 0) != pid)
		return -1;
	return WIFSIGNALED(status) ? WTERMSIG(status) : 0;
}

/* The pool is whole again and hands out working memory. */
static void pool_works(struct __test_metadata *_metadata, const char *bdf, long size,
		       uint64_t seed)
{
	void *p;
	int fd;

	ASSERT_EQ(size, read_long(bdf, "p2pmem/size"));
	EXPECT_EQ(size, read_long(bdf, "p2pmem/available"));
	EXPECT_EQ(1, read_long(bdf, "p2pmem/published"));
	p = p2pmem_map(bdf, MIB, &fd);
	ASSERT_NE(MAP_FAILED, p) TH_LOG("p2pmem mmap: %s", strerror(errno));
	pattern_fill(p, MIB, seed);
	EXPECT_EQ(-1, pattern_check(p, MIB, seed));
	EXPECT_EQ(0, munmap(p, MIB));
	close(fd);
	EXPECT_EQ(size, read_long(bdf, "p2pmem/available"));
}

/*
 * Unbind takes the user mapping away (upstream removes the allocate file,
 * which zaps its mappings) and completes: touching the memory afterwards is
 * SIGBUS, not a use after free. No new allocation is possible until rebind.
 */
TEST_F(drv, unbind_with_user_mapping_then_alloc_fails_and_rebind_works)
{
	char path[PATH_MAX];
	void *p;
	int fd;

	p = p2pmem_map(self->sw, MIB, &fd);
	ASSERT_NE(MAP_FAILED, p);
	pattern_fill(p, MIB, self->seed);
	ASSERT_EQ(-1, pattern_check(p, MIB, self->seed));
	EXPECT_EQ(15L * MIB, read_long(self->sw, "p2pmem/available"));

	ASSERT_EQ(0, write_str(PCI_DRV "/unbind", self->sw));
	EXPECT_FALSE(bound(self->sw));
	EXPECT_EQ(SIGBUS, touch(p, 0));
	EXPECT_EQ(SIGBUS, touch(p, 1));

	/* Allocation after unbind: the file is gone, and an open one refuses. */
	snprintf(path, sizeof(path), PCI_DEVS "/%s/p2pmem/allocate", self->sw);
	EXPECT_EQ(-1, open(path, O_RDWR));
	EXPECT_EQ(ENOENT, errno);
	EXPECT_EQ(MAP_FAILED, mmap(NULL, MIB, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
	EXPECT_EQ(ENODEV, errno);
	EXPECT_FALSE(exists(DEBUGFS "/p2pdma_rs-%s", self->sw));
	EXPECT_EQ(0, munmap(p, MIB));
	close(fd);

	ASSERT_EQ(0, write_str(PCI_DRV "/bind", self->sw));
	ASSERT_TRUE(bound(self->sw));
	pool_works(_metadata, self->sw, 16L * MIB, ~self->seed);
}

/*
 * Unbind while the NVMe is doing O_DIRECT reads into the p2pmem: the pages
 * pinned by I/O in flight keep the pgmap alive (unbind waits for them), and
 * the reads after it fail with EFAULT.
 */
TEST_F(drv, unbind_during_odirect_io)
{
	char path[PATH_MAX];
	int pipefd[2], status, blk;
	pid_t pid;
	char c;

	ASSERT_EQ(0, nvme_namespace(self->nvme, path, sizeof(path)));
	ASSERT_EQ(0, pipe(pipefd));

	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		const size_t len = 4 * MIB;
		long reads = 0;
		void *p;
		int fd;

		blk = open(path, O_RDONLY | O_DIRECT);
		p = p2pmem_map(self->sw, len, &fd);
		if (blk < 0 || p == MAP_FAILED)
			_exit(100);
		for (;;) {
			if (pread(blk, p, len, 0) != (ssize_t)len)
				break;
			if (reads++ == 0 && write(pipefd[1], "r", 1) != 1)
				_exit(101);
		}
		/* Exit with the errno of the first failed read, after one good one. */
		_exit(reads ? errno : 102);
	}
	close(pipefd[1]);
	ASSERT_EQ(1, read(pipefd[0], &c, 1)) TH_LOG("no O_DIRECT read into p2pmem worked");
	ASSERT_EQ(0, write_str(PCI_DRV "/unbind", self->sw));
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	close(pipefd[0]);
	ASSERT_TRUE(WIFEXITED(status));
	EXPECT_EQ(EFAULT, WEXITSTATUS(status));

	ASSERT_EQ(0, write_str(PCI_DRV "/bind", self->sw));
	pool_works(_metadata, self->sw, 16L * MIB, self->seed);
}

/* PCI remove with a user mapping, then rescan: the device comes back bound. */
TEST_F(drv, remove_with_user_mapping_then_rescan)
{
	char path[PATH_MAX];
	void *p;
	int fd;

	p = p2pmem_map(self->sw, MIB, &fd);
	ASSERT_NE(MAP_FAILED, p);
	pattern_fill(p, MIB, self->seed);

	snprintf(path, sizeof(path), PCI_DEVS "/%s/remove", self->sw);
	ASSERT_EQ(0, write_str(path, "1"));
	EXPECT_FALSE(exists(PCI_DEVS "/%s", self->sw));
	EXPECT_EQ(SIGBUS, touch(p, 0));
	EXPECT_EQ(0, munmap(p, MIB));
	close(fd);

	ASSERT_EQ(0, write_str("/sys/bus/pci/rescan", "1"));
	ASSERT_TRUE(bound(self->sw)) TH_LOG("%s is not back after rescan", self->sw);
	pool_works(_metadata, self->sw, 16L * MIB, self->seed);
}

/* A device without a matching ID is refused; driver_override binds it. */
TEST_F(drv, driver_override_binds_other_device)
{
	char path[PATH_MAX];
	long long at;
	void *p;
	int fd;

	EXPECT_EQ(-ENODEV, write_str(PCI_DRV "/bind", self->testdev));
	snprintf(path, sizeof(path), PCI_DEVS "/%s/driver_override", self->testdev);
	ASSERT_EQ(0, write_str(path, "p2pdma_rs"));
	ASSERT_EQ(0, write_str(PCI_DRV "/bind", self->testdev));
	ASSERT_TRUE(bound(self->testdev));
	EXPECT_EQ(32L * MIB, read_long(self->testdev, "p2pmem/size"));
	EXPECT_EQ(1, read_long(self->testdev, "p2pmem/published"));
	/* pci-testdev's BAR has no memory behind it: check the place, not data. */
	p = p2pmem_map(self->testdev, 2 * MIB, &fd);
	ASSERT_NE(MAP_FAILED, p);
	at = bar_offset(self->testdev, 2, p, 2 * MIB);
	EXPECT_LE(0, at) TH_LOG("the mapping is not inside the pci-testdev BAR");
	EXPECT_EQ(0, munmap(p, 2 * MIB));
	close(fd);
	EXPECT_EQ(0, write_str(PCI_DRV "/unbind", self->testdev));
	EXPECT_FALSE(exists(PCI_DEVS "/%s/p2pmem", self->testdev));
}

/* Live DMA mappings of @bdf that the DMA API debug layer knows of, or -1. */
static int dma_debug_entries(const char *bdf)
{
	FILE *f = fopen(DEBUGFS "/dma-api/dump", "r");
	char line[512], name[32];
	int n = 0;

	if (!f)
		return -1;
	snprintf(name, sizeof(name), " %s ", bdf);
	while (fgets(line, sizeof(line), f))
		n += !!strstr(line, name);
	fclose(f);
	return n;
}

/*
 * A client driver leaks (mem::forget) a pageless mapping of a peer's BAR:
 * the mapping is a device-managed resource of the client, so unbinding the
 * client still unmaps it (the DMA API debug layer's list loses it; it would
 * also report a driver released with mappings outstanding). The test driver
 * rust_p2pdma_leak, bound through driver_override, takes the root-bus
 * ivshmem as provider and pci-testdev, also on the root bus, as client:
 * through the host bridge (EPYC boot) there is a mapping to leak; elsewhere
 * the pair is NOT_SUPPORTED and the test skips. The module stays loaded.
 */
TEST_F(drv, leaked_mmio_mapping_unmapped_at_client_unbind)
{
	if (!cpu_allows_host_bridge())
		SKIP(return, "root-bus pairs are NOT_SUPPORTED here: nothing to map (EPYC boot)");
	ASSERT_EQ(0, load_module(LEAK, ""));
	ASSERT_EQ(0, dma_debug_entries(self->testdev));
	ASSERT_EQ(0, write_str(PCI_DRV "/unbind", self->root));
	ASSERT_EQ(0, set_override(self->root, LEAK));
	ASSERT_EQ(0, write_str(LEAK_DRV "/bind", self->root));
	ASSERT_EQ(0, set_override(self->testdev, LEAK));
	ASSERT_EQ(0, write_str(LEAK_DRV "/bind", self->testdev));
	ASSERT_EQ(1, dma_debug_entries(self->testdev)) TH_LOG("no mapping to leak");

	ASSERT_EQ(0, write_str(LEAK_DRV "/unbind", self->testdev));
	EXPECT_EQ(0, dma_debug_entries(self->testdev));

	ASSERT_EQ(0, write_str(LEAK_DRV "/unbind", self->root));
	ASSERT_EQ(0, set_override(self->root, "\n"));
	ASSERT_EQ(0, write_str(PCI_DRV "/bind", self->root));
}

/* new_id adds the ID at run time and binds the device at once. */
TEST_F(drv, new_id_binds_other_device)
{
	ASSERT_EQ(0, write_str(PCI_DRV "/new_id", "1b36 0005"));
	ASSERT_TRUE(bound(self->testdev));
	EXPECT_EQ(32L * MIB, read_long(self->testdev, "p2pmem/size"));
	EXPECT_EQ(32L * MIB, read_long(self->testdev, "p2pmem/available"));
	EXPECT_EQ(0, write_str(PCI_DRV "/remove_id", "1b36 0005"));
	EXPECT_EQ(0, write_str(PCI_DRV "/unbind", self->testdev));
}

/* bar, offset and size choose the range; the pool starts at the offset. */
TEST_F_TIMEOUT(drv, module_params_choose_bar_offset_size, 120)
{
	long long at;
	void *p, *more;
	int fd, fd2;

	ASSERT_EQ(0, reload("bar=2 offset=0x200000 size=0x400000"));
	ASSERT_TRUE(bound(self->sw));
	ASSERT_EQ(4L * MIB, read_long(self->sw, "p2pmem/size"));
	EXPECT_EQ(4L * MIB, read_long(self->root, "p2pmem/size"));
	p = p2pmem_map(self->sw, 4 * MIB, &fd);
	ASSERT_NE(MAP_FAILED, p);
	at = bar_offset(self->sw, 2, p, 4 * MIB);
	EXPECT_EQ(2L * MIB, at);
	more = p2pmem_map(self->sw, 4096, &fd2);
	EXPECT_EQ(MAP_FAILED, more);
	EXPECT_EQ(ENOMEM, errno);
	EXPECT_EQ(0, munmap(p, 4 * MIB));
	close(fd);

	ASSERT_EQ(0, reload(""));
	ASSERT_TRUE(bound(self->sw));
	EXPECT_EQ(16L * MIB, read_long(self->sw, "p2pmem/size"));
}

/*
 * Bad parameters: the module loads, probing fails with EINVAL (one error
 * line in the log, no splat, nothing leaked) and the devices stay unbound.
 */
TEST_F_TIMEOUT(drv, bad_module_params_refused_cleanly, 300)
{
	static const char *const bad[] = {
		"offset=0x1000",		/* not 2 MiB aligned */
		"size=0x1000",
		"offset=0x1000000",		/* at the end: nothing left */
		"size=0x2000000",		/* larger than the BAR */
		"offset=0xffffffffffe00000 size=0x400000",	/* wraps */
		"bar=0",			/* 256 bytes of registers */
		"bar=1",			/* no such BAR */
		"bar=6",			/* not a standard BAR */
	};
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(bad); i++) {
		ASSERT_EQ(0, reload(bad[i])) TH_LOG("modprobe p2pdma_rs %s", bad[i]);
		EXPECT_FALSE(bound(self->sw)) TH_LOG("%s", bad[i]);
		EXPECT_FALSE(bound(self->root)) TH_LOG("%s", bad[i]);
		EXPECT_FALSE(exists(PCI_DEVS "/%s/p2pmem", self->sw)) TH_LOG("%s", bad[i]);
	}
	ASSERT_EQ(0, reload(""));
	EXPECT_TRUE(bound(self->sw) && bound(self->root));
}

TEST_HARNESS_MAIN
