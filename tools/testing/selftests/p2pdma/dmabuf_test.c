// SPDX-License-Identifier: GPL-2.0
/*
 * dma-buf export of BAR ranges with synchronous revocation
 * (samples/rust/rust_p2pdma_dmabuf.rs, kernel::p2pdma::Exporter) and the
 * dynamic peer-to-peer importer (samples/rust/rust_p2pdma_import.rs, QEMU edu).
 *
 * The exporter owns the third ivshmem-plain (behind the switch, its BAR 2 is
 * the host file shm/ivshmem-dmabuf); the importers are the edu behind a
 * pcie-pci-bridge on the same switch (BUS_ADDR) and the edu on the root bus
 * (NOT_SUPPORTED, or THRU_HOST_BRIDGE with an AMD Zen guest CPU). The edu DMA
 * engine writes test patterns into the exported BAR; HOSTCHECK lines make the
 * host find them (and zeros where nothing may land) in the backing file.
 *
 * The AER test and the PCIe hot-unplug test ask the host for QMP commands
 * through the console (harness/qmp-relay.py); the unplug test must stay the
 * last test: the device does not come back.
 */
#include "p2pdma_util.h"
#include <fcntl.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include "dmabuf_util.h"
#include "kselftest_harness.h"

#define MAX_IMPORTERS 256
/* QMP command that unplugs the exporter's ivshmem (id from harness/qemu.sh). */
#define UNPLUG "{\"execute\": \"device_del\", \"arguments\": {\"id\": \"ivshmem2\"}}"
/*
 * QEMU 7.2 injects AER errors only through its human monitor, at a PCIe device
 * with an AER capability: the exporter's downstream port (the ivshmem itself
 * is conventional PCI). The recovery then reports to the devices below it.
 */
#define INJECT "{\"execute\": \"human-monitor-command\", \"arguments\": " \
	"{\"command-line\": \"pcie_aer_inject_error dn2 %s\"}}"

FIXTURE(dmabuf) {
	char exp_bdf[16];	/* the exporter's ivshmem */
	char edu_sw[16];	/* edu behind the switch */
	char edu_root[16];	/* edu on the root bus */
	int exp;		/* /dev/p2pdma-dmabuf-<bdf> */
	int reloaded;		/* the samples are loaded with test parameters */
	struct p2pdma_dmabuf_state st;
	uint64_t seed;
};

/* Bind @bdf to the exporter sample, whatever holds it now. */
static int claim(const char *bdf)
{
	char path[PATH_MAX], drv[64];

	driver_of(bdf, drv, sizeof(drv));
	if (!strcmp(drv, EXPORTER))
		return 0;
	snprintf(path, sizeof(path), PCI_DEVS "/%s/driver_override", bdf);
	if (write_str(path, EXPORTER))
		return -1;
	if (drv[0]) {
		snprintf(path, sizeof(path), "/sys/bus/pci/drivers/%s/unbind", drv);
		if (write_str(path, bdf))
			return -1;
	}
	return write_str("/sys/bus/pci/drivers/" EXPORTER "/bind", bdf);
}

/* Wait until the exporter has no exports left (dma-buf release is deferred). */
static int exports_gone(int exp)
{
	struct p2pdma_dmabuf_state st;
	int i;

	for (i = 0; i < 200; i++) {
		if (state(exp, &st))
			return 0;	/* no answer is no proof */
		if (st.exports == 0)
			return 1;
		usleep(10000);
	}
	return 0;
}

FIXTURE_SETUP(dmabuf)
{
	char edus[2][16], up[32], path[PATH_MAX], buf[64];
	char devs[3][16];
	int i, n;

	ASSERT_EQ(0, load_module(EXPORTER, ""));
	ASSERT_EQ(0, load_module(IMPORTER, IMPORTER_BITS));
	self->exp_bdf[0] = '\0';
	n = find_devs(0x1af4, 0x1110, devs, 3);
	for (i = 0; i < n; i++) {
		snprintf(path, sizeof(path), PCI_DEVS "/%s/driver_override", devs[i]);
		if (!read_str(path, buf, sizeof(buf)) && !strcmp(buf, EXPORTER))
			snprintf(self->exp_bdf, 16, "%.15s", devs[i]);
	}
	ASSERT_NE('\0', self->exp_bdf[0]) TH_LOG("no ivshmem-plain for " EXPORTER);
	ASSERT_EQ(2, find_devs(0x1234, 0x11e8, edus, 2));
	for (i = 0; i < 2; i++) {
		parent_of(edus[i], up, sizeof(up));
		snprintf(up[0] ? self->edu_sw : self->edu_root, 16, "%.15s", edus[i]);
	}
	ASSERT_EQ(0, claim(self->exp_bdf));
	self->exp = open_node("dmabuf", self->exp_bdf);
	ASSERT_LE(0, self->exp) TH_LOG("open /dev/p2pdma-dmabuf-%s: %s",
				       self->exp_bdf, strerror(errno));
	ASSERT_EQ(0, state(self->exp, &self->st));
	ASSERT_EQ(16 << 20, self->st.bar_len);
	self->seed = random_seed();
}

/* rmmod without waiting: 0, or -errno (EWOULDBLOCK while the module is in use). */
static int unload(const char *module)
{
	return syscall(__NR_delete_module, module, O_NONBLOCK) ? -errno : 0;
}

/* Loads the importer sample afresh with @params (in full: dma_bits too). */
static int reload_importer(const char *params)
{
	return unload(IMPORTER) ?: load_module(IMPORTER, params);
}

/* Loads the exporter sample afresh with @params; no buffer or node may be open. */
static int reload_exporter(const char *params)
{
	return unload(EXPORTER) ?: load_module(EXPORTER, params);
}

/* Loads both samples afresh with @params; none of their files may be open. */
static int reload_samples(const char *params)
{
	char imp[128];

	if (unload(IMPORTER) || unload(EXPORTER))
		return -1;
	snprintf(imp, sizeof(imp), IMPORTER_BITS " %s", params);
	return load_module(EXPORTER, params) ?: load_module(IMPORTER, imp);
}

/* Whether @bdf may master the bus (PCI_COMMAND_MASTER), or -1. */
static int bus_master(const char *bdf)
{
	char path[PATH_MAX];
	uint16_t cmd;
	int fd, n;

	snprintf(path, sizeof(path), PCI_DEVS "/%s/config", bdf);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return -1;
	n = pread(fd, &cmd, sizeof(cmd), 4);	/* PCI_COMMAND, little endian */
	close(fd);
	return n == sizeof(cmd) ? !!(cmd & 0x4) : -1;
}

FIXTURE_TEARDOWN(dmabuf)
{
	if (self->exp >= 0) {
		ioctl(self->exp, P2PDMA_DMABUF_UNREVOKE);
		close(self->exp);
	}
	/* A test that failed with test parameters leaves the samples as they should be. */
	if (self->reloaded)
		reload_samples("");
}

/* Two ranges, mapped for the edu behind the switch: bus addresses, real DMA. */
TEST_F(dmabuf, export_import_map_bus_addr_and_dma)
{
	struct p2pdma_dmabuf_range r[2] = { { 0, 0x10000 }, { 0x100000, 0x10000 } };
	struct p2pdma_import_range m[4];
	struct p2pdma_dmabuf_state st;
	__u32 type = 0;
	int buf, imp, i;

	buf = export_ranges(self->exp, r, 2);
	ASSERT_LE(0, buf) TH_LOG("export: %s", strerror(-buf));
	imp = importer(self->edu_sw, buf);
	ASSERT_LE(0, imp) TH_LOG("attach: %s", strerror(-imp));
	ASSERT_EQ(2, imp_map(imp, m, 4, &type));
	EXPECT_EQ(P2PDMA_MAP_BUS_ADDR, type);
	for (i = 0; i < 2; i++) {
		EXPECT_EQ(self->st.bar_start + r[i].offset + self->st.bus_offset, m[i].addr);
		EXPECT_EQ(r[i].length, m[i].length);
	}
	TH_LOG("BAR at %#llx, bus offset %#llx: DMA ranges %#llx+%#llx, %#llx+%#llx",
	       self->st.bar_start, self->st.bus_offset, m[0].addr, m[0].length,
	       m[1].addr, m[1].length);
	ASSERT_EQ(0, state(self->exp, &st));
	EXPECT_EQ(1, st.mappings);

	/* The edu writes into both ranges, peer to peer. */
	ASSERT_EQ(0, imp_dma(imp, 0, DMA_LEN, self->seed, 1));
	ASSERT_EQ(0, imp_dma(imp, 0x11000, DMA_LEN, self->seed + 1, 1));
	hostcheck(0, DMA_LEN, self->seed, 0);
	hostcheck(0x101000, DMA_LEN, self->seed + 1, 0);
	/* One transfer may not cross from one range into the next. */
	EXPECT_EQ(-EINVAL, imp_dma(imp, 0x10000 - 8, 16, self->seed, 1));

	EXPECT_EQ(0, ioctl(imp, P2PDMA_IMPORT_UNMAP));
	ASSERT_EQ(0, state(self->exp, &st));
	EXPECT_EQ(0, st.mappings);
	close(imp);
	close(buf);
	EXPECT_TRUE(exports_gone(self->exp));
}

/* The edu on the root bus: NOT_SUPPORTED is a clean EINVAL from map. */
TEST_F(dmabuf, root_bus_importer_not_supported_or_thru_host_bridge)
{
	struct p2pdma_import_range m[2];
	struct p2pdma_dmabuf_state st;
	__u32 type = 0;
	int buf, imp, n;

	buf = export_one(self->exp, 0x800000, 0x10000);
	ASSERT_LE(0, buf);
	imp = importer(self->edu_root, buf);
	ASSERT_LE(0, imp) TH_LOG("attach: %s", strerror(-imp));
	n = imp_map(imp, m, 2, &type);
	if (cpu_allows_host_bridge()) {
		ASSERT_EQ(1, n) TH_LOG("map: %s", strerror(-n));
		EXPECT_EQ(P2PDMA_MAP_THRU_HOST_BRIDGE, type);
		ASSERT_EQ(0, imp_dma(imp, 0, DMA_LEN, self->seed, 1));
		hostcheck(0x800000, DMA_LEN, self->seed, 0);
	} else {
		EXPECT_EQ(-EINVAL, n);
		EXPECT_EQ(-EINVAL, imp_dma(imp, 0, DMA_LEN, self->seed, 1));
		hostcheck(0x800000, 0x10000, 0, 1);
	}
	ASSERT_EQ(0, state(self->exp, &st));
	EXPECT_EQ(n > 0 ? 1 : 0, st.mappings);
	close(imp);
	close(buf);
	EXPECT_TRUE(exports_gone(self->exp));
}

/* FIXTURE_DATA(dmabuf) is struct _test_data_dmabuf. */

/*
 * @n importers map one buffer; the first has a transfer in flight. REVOKE
 * returns only when every importer was invalidated and unmapped and the
 * transfer is done; maps then fail until UNREVOKE.
 */
static void revoke_with(struct __test_metadata *_metadata,
			struct _test_data_dmabuf *self, int n, uint64_t at)
{
	struct p2pdma_import_status s;
	struct p2pdma_import_range m;
	struct p2pdma_dmabuf_state st;
	int imps[MAX_IMPORTERS];
	int buf, i, late, refused, mapped;

	buf = export_one(self->exp, at, 0x10000);
	ASSERT_LE(0, buf);
	for (i = 0; i < n; i++) {
		imps[i] = importer(self->edu_sw, buf);
		ASSERT_LE(0, imps[i]) TH_LOG("importer %d: %s", i, strerror(-imps[i]));
		ASSERT_EQ(1, imp_map(imps[i], &m, 1, NULL));
	}
	ASSERT_EQ(0, state(self->exp, &st));
	ASSERT_EQ(n, st.mappings);

	/* Started, not waited for: the revocation has to wait for it. */
	ASSERT_EQ(0, imp_dma(imps[0], 0, DMA_LEN, self->seed, 0));
	ASSERT_EQ(0, ioctl(self->exp, P2PDMA_DMABUF_REVOKE));

	ASSERT_EQ(0, state(self->exp, &st));
	EXPECT_EQ(1, st.revoked);
	EXPECT_EQ(0, st.mappings);
	for (i = 0; i < n; i++) {
		ASSERT_EQ(0, imp_status(imps[i], &s));
		EXPECT_EQ(0, s.mapped);
		EXPECT_EQ(1, s.invalidations);
		EXPECT_EQ(0, s.dma_busy);
	}
	hostcheck(at, DMA_LEN, self->seed, 0);
	for (refused = i = 0; i < n; i++)
		refused += imp_map(imps[i], &m, 1, NULL) == -ENODEV;
	EXPECT_EQ(n, refused);
	/* Nothing lands after the revocation. */
	EXPECT_EQ(-ENODEV, imp_dma(imps[0], 0x2000, DMA_LEN, self->seed + 2, 1));
	hostcheck(at + 0x2000, DMA_LEN, 0, 1);
	late = importer(self->edu_sw, buf);
	EXPECT_EQ(-ENODEV, late);

	ASSERT_EQ(0, ioctl(self->exp, P2PDMA_DMABUF_UNREVOKE));
	for (mapped = i = 0; i < n; i++)
		mapped += imp_map(imps[i], &m, 1, NULL) == 1;
	EXPECT_EQ(n, mapped);
	EXPECT_EQ(self->st.bar_start + at + self->st.bus_offset, m.addr);
	ASSERT_EQ(0, imp_dma(imps[n - 1], 0x4000, DMA_LEN, self->seed + 4, 1));
	hostcheck(at + 0x4000, DMA_LEN, self->seed + 4, 0);
	ASSERT_EQ(0, state(self->exp, &st));
	EXPECT_EQ(n, st.mappings);

	for (i = 0; i < n; i++)
		close(imps[i]);
	close(buf);
	EXPECT_TRUE(exports_gone(self->exp));
	ASSERT_EQ(0, state(self->exp, &st));
	EXPECT_EQ(0, st.mappings);
}

TEST_F(dmabuf, revoke_with_1_importer)
{
	revoke_with(_metadata, self, 1, 0x200000);
}

TEST_F(dmabuf, revoke_with_16_importers)
{
	revoke_with(_metadata, self, 16, 0x400000);
}

TEST_F_TIMEOUT(dmabuf, revoke_with_256_importers, 120)
{
	revoke_with(_metadata, self, 256, 0x600000);
}

/*
 * A function reset of the exporter (sysfs reset: the PCI core resets the bus
 * below its downstream port) with four mapped importers on two buffers and a
 * transfer in flight: the driver's reset_prepare revokes first, so when the
 * write returns every importer was invalidated and unmapped and the transfer
 * landed; reset_done re-armed, so the old importers map again and a new write
 * lands. A user's REVOKE made before a reset is still in force after it.
 */
/*
 * What a child asking for transfers saw before the reset (@phase 0), while the
 * parent's reset write ran (1) and after it returned (2); 3 stops it. While the
 * write runs it asks only when the exporter says it is revoked: an edu transfer
 * takes 100 ms (QEMU's timer) and would hide the reset's window.
 */
struct asker {
	int phase, polling, started;
	int ok[3], refused[3], other;
};

/* Ask for transfers of 8 bytes at @offset of @imp's buffer until told to stop. */
static void ask_until_stopped(struct asker *a, int exp, int imp, uint64_t offset,
			      uint64_t seed)
{
	struct p2pdma_dmabuf_state st;
	int phase, r;

	while ((phase = __atomic_load_n(&a->phase, __ATOMIC_SEQ_CST)) < 3) {
		if (phase == 1) {
			__atomic_store_n(&a->polling, 1, __ATOMIC_SEQ_CST);
			/* Waits while a revocation runs (the exporter's lock). */
			if (state(exp, &st) || !st.revoked)
				continue;
		}
		r = imp_dma(imp, offset, 8, seed++, 0);
		if (r && r != -ENODEV)
			a->other++;
		else
			(r ? a->refused : a->ok)[phase]++;
		__atomic_store_n(&a->started, 1, __ATOMIC_SEQ_CST);
	}
	_exit(0);
}

TEST_F(dmabuf, reset_revokes_first_and_rearms)
{
	struct p2pdma_import_status s;
	struct p2pdma_import_range m;
	struct p2pdma_dmabuf_state st;
	char path[PATH_MAX];
	int buf[2], imp[5], i, mapped, status;
	struct asker *a;
	pid_t child;

	snprintf(path, sizeof(path), PCI_DEVS "/%s/reset", self->exp_bdf);
	if (access(path, W_OK))
		SKIP(return, "%s cannot be reset here", self->exp_bdf);
	for (i = 0; i < 2; i++) {
		buf[i] = export_one(self->exp, 0x300000 + i * 0x10000, 0x10000);
		ASSERT_LE(0, buf[i]);
	}
	for (i = 0; i < 4; i++) {
		imp[i] = importer(self->edu_sw, buf[i % 2]);
		ASSERT_LE(0, imp[i]);
		ASSERT_EQ(1, imp_map(imp[i], &m, 1, NULL));
	}
	/* A fifth importer asks for transfers before, during and after the reset. */
	imp[4] = importer(self->edu_sw, buf[1]);
	ASSERT_LE(0, imp[4]);
	a = mmap(NULL, sizeof(*a), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, a);
	child = fork();
	ASSERT_LE(0, child);
	if (!child)
		ask_until_stopped(a, self->exp, imp[4], 0x8000, self->seed + 100);
	while (!__atomic_load_n(&a->started, __ATOMIC_SEQ_CST))
		usleep(1000);
	__atomic_store_n(&a->phase, 1, __ATOMIC_SEQ_CST);
	while (!__atomic_load_n(&a->polling, __ATOMIC_SEQ_CST))
		usleep(1000);

	/* Started, not waited for: the reset's revocation has to wait for it. */
	ASSERT_EQ(0, imp_dma(imp[0], 0, DMA_LEN, self->seed, 0));
	ASSERT_EQ(0, write_str(path, "1"));
	__atomic_store_n(&a->phase, 2, __ATOMIC_SEQ_CST);
	for (i = 0; i < 500 && !__atomic_load_n(&a->ok[2], __ATOMIC_SEQ_CST); i++)
		usleep(10000);
	__atomic_store_n(&a->phase, 3, __ATOMIC_SEQ_CST);
	ASSERT_EQ(child, waitpid(child, &status, 0));
	/*
	 * Transfers went through before the reset, were refused while it ran
	 * (revoked before the device stopped decoding, re-armed after it
	 * decoded again) and went through again once the write returned.
	 */
	TH_LOG("transfers before/during/after the reset: %d/%d/%d done, %d/%d/%d refused",
	       a->ok[0], a->ok[1], a->ok[2], a->refused[0], a->refused[1], a->refused[2]);
	EXPECT_LT(0, a->ok[0]);
	EXPECT_EQ(0, a->refused[0]);
	EXPECT_LT(0, a->refused[1]);
	EXPECT_LT(0, a->ok[2]);
	EXPECT_EQ(0, a->refused[2]);
	EXPECT_EQ(0, a->other);
	munmap(a, sizeof(*a));
	close(imp[4]);

	/*
	 * Two invalidations each: the revocation before the reset, and the
	 * re-arm after it, which tells importers they may map again (as VFIO's
	 * does). Without the reset hooks: none, and still mapped.
	 */
	for (i = 0; i < 4; i++) {
		ASSERT_EQ(0, imp_status(imp[i], &s));
		EXPECT_EQ(0, s.mapped);
		EXPECT_EQ(2, s.invalidations);
		EXPECT_EQ(0, s.dma_busy);
	}
	hostcheck(0x300000, DMA_LEN, self->seed, 0);
	ASSERT_EQ(0, state(self->exp, &st));
	EXPECT_EQ(0, st.revoked);
	for (mapped = i = 0; i < 4; i++)
		mapped += imp_map(imp[i], &m, 1, NULL) == 1;
	EXPECT_EQ(4, mapped);
	ASSERT_EQ(0, imp_dma(imp[1], 0x2000, DMA_LEN, self->seed + 2, 1));
	hostcheck(0x310000 + 0x2000, DMA_LEN, self->seed + 2, 0);

	/* The user's revocation outlives the reset's re-arm. */
	ASSERT_EQ(0, ioctl(self->exp, P2PDMA_DMABUF_REVOKE));
	ASSERT_EQ(0, write_str(path, "1"));
	ASSERT_EQ(0, state(self->exp, &st));
	EXPECT_EQ(1, st.revoked);
	EXPECT_EQ(-ENODEV, imp_map(imp[0], &m, 1, NULL));
	EXPECT_EQ(-ENODEV, imp_dma(imp[0], 0x4000, DMA_LEN, self->seed + 4, 1));
	hostcheck(0x300000 + 0x4000, DMA_LEN, 0, 1);
	ASSERT_EQ(0, ioctl(self->exp, P2PDMA_DMABUF_UNREVOKE));
	EXPECT_EQ(1, imp_map(imp[0], &m, 1, NULL));

	for (i = 0; i < 4; i++)
		close(imp[i]);
	for (i = 0; i < 2; i++)
		close(buf[i]);
	EXPECT_TRUE(exports_gone(self->exp));
}

/*
 * The shared state of the reset loop: @revoked is set while the parent holds a
 * user REVOKE; a child aims at the reserved range only then, with @busy set
 * around it, so the parent can wait for it before UNREVOKE.
 */
#define LOOP_CHILDREN 2
struct loop {
	int stop, revoked;
	int busy[LOOP_CHILDREN];
	uint64_t last[LOOP_CHILDREN];	/* seed of the last transfer started */
	int done[LOOP_CHILDREN], refused[LOOP_CHILDREN], aimed, landed, other;
};

/*
 * Child @k: map, unmap and start transfers (waited for or not) into its own
 * 8 KiB of @own, and into its part of @reserved while the user REVOKE holds.
 */
static void loop_child(struct loop *l, int k, int own, int reserved, uint64_t seed)
{
	struct p2pdma_import_range m;
	uint64_t x = seed;
	int r;

	while (!__atomic_load_n(&l->stop, __ATOMIC_SEQ_CST)) {
		x = x * 6364136223846793005ULL + 1442695040888963407ULL;
		__atomic_store_n(&l->busy[k], 1, __ATOMIC_SEQ_CST);
		if (__atomic_load_n(&l->revoked, __ATOMIC_SEQ_CST)) {
			r = imp_dma(reserved, k * 0x2000, DMA_LEN, x, 1);
			l->aimed++;
			if (r == 0)
				l->landed++;
			else if (r != -ENODEV)
				l->other++;
		}
		__atomic_store_n(&l->busy[k], 0, __ATOMIC_SEQ_CST);
		switch ((x >> 33) % 4) {
		case 0:
			r = imp_map(own, &m, 1, NULL);
			r = r == 1 ? 0 : r;
			break;
		case 1:
			r = ioctl(own, P2PDMA_IMPORT_UNMAP) ? -errno : 0;
			break;
		default:
			r = imp_dma(own, k * 0x2000, DMA_LEN, x, (x >> 40) & 1);
			if (r == 0) {
				l->last[k] = x;
				l->done[k]++;
			}
			break;
		}
		if (r == -ENODEV)
			l->refused[k]++;
		else if (r)
			l->other++;
	}
	_exit(0);
}

/*
 * 100 resets while two children map, unmap and start transfers: every
 * transfer that was started landed (the host finds the last one of each
 * child), none landed in the range aimed at only while revoked (host-checked
 * zeros), and some were refused while a reset ran.
 */
TEST_F_TIMEOUT(dmabuf, reset_100_times_under_load, 600)
{
	int own, reserved, imp[2][LOOP_CHILDREN], i, k, status, refused = 0;
	pid_t child[LOOP_CHILDREN];
	char path[PATH_MAX];
	struct loop *l;

	snprintf(path, sizeof(path), PCI_DEVS "/%s/reset", self->exp_bdf);
	if (access(path, W_OK))
		SKIP(return, "%s cannot be reset here", self->exp_bdf);
	own = export_one(self->exp, 0x500000, 0x10000);
	ASSERT_LE(0, own);
	reserved = export_one(self->exp, 0x700000, 0x10000);
	ASSERT_LE(0, reserved);
	l = mmap(NULL, sizeof(*l), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, l);
	for (k = 0; k < LOOP_CHILDREN; k++) {
		imp[0][k] = importer(self->edu_sw, own);
		ASSERT_LE(0, imp[0][k]);
		imp[1][k] = importer(self->edu_sw, reserved);
		ASSERT_LE(0, imp[1][k]);
		child[k] = fork();
		ASSERT_LE(0, child[k]);
		if (!child[k])
			loop_child(l, k, imp[0][k], imp[1][k], self->seed + k);
	}
	for (i = 0; i < 100; i++) {
		/* Every tenth reset under a user REVOKE, which it must not undo. */
		if (i % 10 == 5) {
			ASSERT_EQ(0, ioctl(self->exp, P2PDMA_DMABUF_REVOKE));
			__atomic_store_n(&l->revoked, 1, __ATOMIC_SEQ_CST);
		}
		ASSERT_EQ(0, write_str(path, "1")) TH_LOG("reset %d", i);
		if (i % 10 == 5) {
			usleep(20000);
			__atomic_store_n(&l->revoked, 0, __ATOMIC_SEQ_CST);
			for (k = 0; k < LOOP_CHILDREN; k++)
				while (__atomic_load_n(&l->busy[k], __ATOMIC_SEQ_CST))
					usleep(100);
			ASSERT_EQ(0, ioctl(self->exp, P2PDMA_DMABUF_UNREVOKE));
		}
		/* Time for transfers: each takes 100 ms and a revocation waits for it. */
		usleep(i % 5 * 50000);
	}
	__atomic_store_n(&l->stop, 1, __ATOMIC_SEQ_CST);
	for (k = 0; k < LOOP_CHILDREN; k++) {
		ASSERT_EQ(child[k], waitpid(child[k], &status, 0));
		EXPECT_TRUE(WIFEXITED(status) && !WEXITSTATUS(status));
		TH_LOG("child %d: %d transfers done, %d requests refused", k, l->done[k],
		       l->refused[k]);
		EXPECT_LT(0, l->done[k]);
		refused += l->refused[k];
		if (l->done[k])
			hostcheck(0x500000 + k * 0x2000, DMA_LEN, l->last[k], 0);
	}
	TH_LOG("%d transfers aimed at the reserved range while revoked", l->aimed);
	EXPECT_LT(0, refused);
	EXPECT_LT(0, l->aimed);
	EXPECT_EQ(0, l->landed);
	EXPECT_EQ(0, l->other);
	hostcheck(0x700000, 0x10000, 0, 1);
	munmap(l, sizeof(*l));
	for (k = 0; k < LOOP_CHILDREN; k++) {
		close(imp[0][k]);
		close(imp[1][k]);
	}
	close(own);
	close(reserved);
	EXPECT_TRUE(exports_gone(self->exp));
}

/*
 * A bus reset from the exporter's downstream port (reset_subordinate): the
 * same revocation first and re-arm after, with the locks of every device
 * below the port held.
 */
TEST_F(dmabuf, bus_reset_from_the_port_revokes_too)
{
	struct p2pdma_import_status s;
	struct p2pdma_import_range m;
	struct p2pdma_dmabuf_state st;
	char port[32], path[PATH_MAX];
	int buf, imp[2], i;

	parent_of(self->exp_bdf, port, sizeof(port));
	ASSERT_NE(0, port[0]);
	snprintf(path, sizeof(path), PCI_DEVS "/%s/reset_subordinate", port);
	buf = export_one(self->exp, 0xf00000, 0x10000);
	ASSERT_LE(0, buf);
	for (i = 0; i < 2; i++) {
		imp[i] = importer(self->edu_sw, buf);
		ASSERT_LE(0, imp[i]);
		ASSERT_EQ(1, imp_map(imp[i], &m, 1, NULL));
	}
	ASSERT_EQ(0, imp_dma(imp[0], 0, DMA_LEN, self->seed, 0));
	ASSERT_EQ(0, write_str(path, "1"));
	hostcheck(0xf00000, DMA_LEN, self->seed, 0);
	for (i = 0; i < 2; i++) {
		ASSERT_EQ(0, imp_status(imp[i], &s));
		EXPECT_EQ(0, s.mapped);
		EXPECT_EQ(2, s.invalidations);
	}
	ASSERT_EQ(0, state(self->exp, &st));
	EXPECT_EQ(0, st.revoked);
	ASSERT_EQ(0, imp_dma(imp[1], 0x2000, DMA_LEN, self->seed + 1, 1));
	hostcheck(0xf02000, DMA_LEN, self->seed + 1, 0);
	for (i = 0; i < 2; i++)
		close(imp[i]);
	close(buf);
	EXPECT_TRUE(exports_gone(self->exp));
}

/* Live buffers, attachments and mappings; then the exporter goes away. */
struct live {
	int buf[2];
	int imp[4];
};

static void make_live(struct __test_metadata *_metadata,
		      struct _test_data_dmabuf *self, struct live *l)
{
	struct p2pdma_import_range m;
	int i;

	for (i = 0; i < 2; i++) {
		l->buf[i] = export_one(self->exp, 0xa00000 + i * 0x10000, 0x10000);
		ASSERT_LE(0, l->buf[i]);
	}
	for (i = 0; i < 4; i++) {
		l->imp[i] = importer(self->edu_sw, l->buf[i % 2]);
		ASSERT_LE(0, l->imp[i]);
		ASSERT_EQ(1, imp_map(l->imp[i], &m, 1, NULL));
	}
}

static void release_live(struct live *l)
{
	int i;

	for (i = 0; i < 4; i++)
		close(l->imp[i]);
	for (i = 0; i < 2; i++)
		close(l->buf[i]);
}

/* How many lines of the kernel log contain @needle. */
static int klog_count(const char *needle)
{
	FILE *f = popen("dmesg", "r");
	char line[512];
	int n = 0;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		n += !!strstr(line, needle);
	pclose(f);
	return n;
}

/* The exporter is back: live buffers and mappings again, all given back. */
static void works_again(struct __test_metadata *_metadata,
			struct _test_data_dmabuf *self)
{
	struct live l;

	self->exp = open_node("dmabuf", self->exp_bdf);
	ASSERT_LE(0, self->exp);
	make_live(_metadata, self, &l);
	release_live(&l);
	EXPECT_TRUE(exports_gone(self->exp));
}

/* After the exporter is gone: everything fails cleanly, nothing is mapped. */
static void check_gone(struct __test_metadata *_metadata,
		       struct _test_data_dmabuf *self, struct live *l)
{
	struct p2pdma_import_status s;
	struct p2pdma_import_range m;
	struct p2pdma_dmabuf_state st;
	void *p;
	int i;

	for (i = 0; i < 4; i++) {
		ASSERT_EQ(0, imp_status(l->imp[i], &s));
		EXPECT_EQ(0, s.mapped);
		EXPECT_EQ(1, s.invalidations);
		EXPECT_EQ(-ENODEV, imp_map(l->imp[i], &m, 1, NULL));
	}
	EXPECT_EQ(-ENODEV, export_one(self->exp, 0, PAGE));
	EXPECT_EQ(-ENODEV, state(self->exp, &st));
	EXPECT_EQ(-1, ioctl(self->exp, P2PDMA_DMABUF_REVOKE));
	EXPECT_EQ(ENODEV, errno);
	EXPECT_EQ(-1, ioctl(self->exp, P2PDMA_DMABUF_UNREVOKE));
	EXPECT_EQ(ENODEV, errno);
	/* A revoked dma-buf has no CPU mapping either. */
	p = mmap(NULL, PAGE, PROT_READ, MAP_SHARED, l->buf[0], 0);
	EXPECT_EQ(MAP_FAILED, p);
	EXPECT_EQ(-ENODEV, importer(self->edu_sw, l->buf[1]));
	release_live(l);
	close(self->exp);
	self->exp = -1;
}

/*
 * Unbind the exporter with live mappings: revoked before the driver's remove()
 * ran (the sample's remove() logs what it finds), then everything is gone.
 */
static void unbind_live_exporter(struct __test_metadata *_metadata,
				 struct _test_data_dmabuf *self)
{
	char line[128];
	struct live l;
	int before;

	make_live(_metadata, self, &l);
	snprintf(line, sizeof(line), "%s: remove: revoked for good true, 0 mappings",
		 self->exp_bdf);
	before = klog_count(line);
	ASSERT_EQ(0, write_str("/sys/bus/pci/drivers/" EXPORTER "/unbind", self->exp_bdf));
	EXPECT_EQ(before + 1, klog_count(line));
	check_gone(_metadata, self, &l);
}

TEST_F(dmabuf, unbind_with_live_mappings_then_rebind)
{
	unbind_live_exporter(_metadata, self);
	ASSERT_EQ(0, write_str("/sys/bus/pci/drivers/" EXPORTER "/bind", self->exp_bdf));
	works_again(_metadata, self);
}

TEST_F(dmabuf, pci_remove_with_live_mappings_then_rescan)
{
	char path[PATH_MAX];
	struct live l;

	make_live(_metadata, self, &l);
	snprintf(path, sizeof(path), PCI_DEVS "/%s/remove", self->exp_bdf);
	ASSERT_EQ(0, write_str(path, "1"));
	check_gone(_metadata, self, &l);

	ASSERT_EQ(0, write_str("/sys/bus/pci/rescan", "1"));
	/* A new pci_dev: p2pdma_rs may have taken it; give it back to the sample. */
	ASSERT_EQ(0, claim(self->exp_bdf));
	works_again(_metadata, self);
}

/* An open node file pins its module: rmmod fails cleanly until it is closed. */
TEST_F(dmabuf, rmmod_with_open_node_fails_until_closed)
{
	int imp = open_node("import", self->edu_sw);

	ASSERT_LE(0, imp);
	EXPECT_EQ(-EWOULDBLOCK, unload(IMPORTER));
	close(imp);
	EXPECT_EQ(0, unload(IMPORTER));
	/* The fixture's exporter node is still open. */
	EXPECT_EQ(-EWOULDBLOCK, unload(EXPORTER));
	close(self->exp);
	self->exp = -1;
	EXPECT_EQ(0, unload(EXPORTER));

	/* Both come back; the exporter's device keeps its driver_override. */
	ASSERT_EQ(0, load_module(EXPORTER, ""));
	ASSERT_EQ(0, load_module(IMPORTER, IMPORTER_BITS));
	works_again(_metadata, self);
}

/*
 * Both samples leak their Exporter and Importer (mem::forget, module parameter
 * forget=1): the library's device-managed unbind work still revokes, unmaps
 * and detaches, before remove() runs (the exporter's remove() logs what it
 * finds), and nothing is reported (KASAN, lockdep, kmemleak run after).
 */
TEST_F(dmabuf, leaked_exporter_and_importer_still_revoke_and_detach)
{
	struct p2pdma_import_status s;
	struct p2pdma_import_range m;
	struct p2pdma_dmabuf_state st;
	struct live l;
	int i;

	close(self->exp);
	self->exp = -1;
	self->reloaded = 1;
	ASSERT_EQ(0, reload_samples("forget=1"));
	ASSERT_EQ(0, claim(self->exp_bdf));
	self->exp = open_node("dmabuf", self->exp_bdf);
	ASSERT_LE(0, self->exp);

	/* The provider's driver goes: revoked before its remove() ran. */
	unbind_live_exporter(_metadata, self);
	ASSERT_EQ(0, write_str("/sys/bus/pci/drivers/" EXPORTER "/bind", self->exp_bdf));
	self->exp = open_node("dmabuf", self->exp_bdf);
	ASSERT_LE(0, self->exp);

	/* The importing device's driver goes: every import stopped and detached. */
	make_live(_metadata, self, &l);
	ASSERT_EQ(0, state(self->exp, &st));
	EXPECT_EQ(4, st.mappings);
	ASSERT_EQ(0, write_str("/sys/bus/pci/drivers/" IMPORTER "/unbind", self->edu_sw));
	ASSERT_EQ(0, state(self->exp, &st));
	EXPECT_EQ(0, st.mappings);
	for (i = 0; i < 4; i++) {
		EXPECT_EQ(-ENODEV, imp_map(l.imp[i], &m, 1, NULL));
		EXPECT_EQ(-ENODEV, imp_status(l.imp[i], &s));
	}
	release_live(&l);
	EXPECT_TRUE(exports_gone(self->exp));
	ASSERT_EQ(0, write_str("/sys/bus/pci/drivers/" IMPORTER "/bind", self->edu_sw));

	/* Back to the defaults. */
	close(self->exp);
	self->exp = -1;
	ASSERT_EQ(0, reload_samples(""));
	self->reloaded = 0;
	works_again(_metadata, self);
}

/*
 * Unbinding the importing device while its engine writes into the dma-buf:
 * the transfer in flight lands (the stop hook waits for it before the library
 * unmaps), and the driver takes bus mastering away before its DMA buffers go.
 * Probe gives it back.
 */
TEST_F(dmabuf, importer_unbind_quiesces_engine_and_clears_bus_master)
{
	struct p2pdma_import_status s;
	struct p2pdma_import_range m;
	int buf, imp;

	ASSERT_EQ(1, bus_master(self->edu_sw));
	buf = export_one(self->exp, 0xb00000, 0x10000);
	ASSERT_LE(0, buf);
	imp = importer(self->edu_sw, buf);
	ASSERT_LE(0, imp);
	ASSERT_EQ(1, imp_map(imp, &m, 1, NULL));
	ASSERT_EQ(0, imp_dma(imp, 0, DMA_LEN, self->seed, 0));
	/* A transfer takes 100 ms: it still runs when unbind starts. */
	ASSERT_EQ(0, imp_status(imp, &s));
	ASSERT_EQ(1, s.dma_busy);
	ASSERT_EQ(0, write_str("/sys/bus/pci/drivers/" IMPORTER "/unbind", self->edu_sw));
	EXPECT_EQ(0, bus_master(self->edu_sw));
	hostcheck(0xb00000, DMA_LEN, self->seed, 0);
	close(imp);
	close(buf);
	EXPECT_TRUE(exports_gone(self->exp));
	ASSERT_EQ(0, write_str("/sys/bus/pci/drivers/" IMPORTER "/bind", self->edu_sw));
	EXPECT_EQ(1, bus_master(self->edu_sw));
}

/*
 * The engine reaches only dma_bits of address (QEMU's edu: 28 by default). A
 * BAR above that is mapped but not written: the transfer is refused with
 * ERANGE, the buffer keeps its zeros. 31 bits: the staging buffer (guest RAM,
 * 2 GiB) is reachable, the BAR is not, so the refusal is the destination's. The
 * width is the device's DMA mask, set before probe. A width that is no width
 * refuses probe.
 */
TEST_F(dmabuf, dma_beyond_the_engine_mask_refused)
{
	struct p2pdma_import_range m;
	char drv[64];
	int buf, imp;

	self->reloaded = 1;
	ASSERT_EQ(0, reload_importer("dma_bits=65"));
	driver_of(self->edu_sw, drv, sizeof(drv));
	EXPECT_STRNE(IMPORTER, drv);

	ASSERT_EQ(0, reload_importer("dma_bits=31"));
	/* The PCI core set it before probe (pci::Driver::dma_mask); 32 bits otherwise. */
	EXPECT_EQ(31, read_long(self->edu_sw, "dma_mask_bits"));
	EXPECT_EQ(31, read_long(self->edu_sw, "consistent_dma_mask_bits"));
	buf = export_one(self->exp, 0xd00000, 0x10000);
	ASSERT_LE(0, buf);
	imp = importer(self->edu_sw, buf);
	ASSERT_LE(0, imp) TH_LOG("attach: %s", strerror(-imp));
	ASSERT_EQ(1, imp_map(imp, &m, 1, NULL));
	if (m.addr <= 0x7fffffffULL)
		SKIP(goto out, "the BAR is within 31 bits: nothing to check");
	EXPECT_EQ(-ERANGE, imp_dma(imp, 0, DMA_LEN, self->seed, 1));
	hostcheck(0xd00000, 0x10000, 0, 1);
out:
	close(imp);
	close(buf);
	EXPECT_TRUE(exports_gone(self->exp));

	ASSERT_EQ(0, reload_importer(IMPORTER_BITS));
	EXPECT_EQ(64, read_long(self->edu_sw, "dma_mask_bits"));
	self->reloaded = 0;
}

/* Every field of the export request, one at a time. */
TEST_F(dmabuf, bad_export_input_field_by_field)
{
	struct p2pdma_dmabuf_range many[P2PDMA_DMABUF_MAX_RANGES + 1];
	uint64_t len = self->st.bar_len;
	struct p2pdma_dmabuf_state st;
	struct p2pdma_dmabuf_export e;
	static const struct {
		uint64_t offset, length;
		int err;
	} bad[] = {
		{ 0, 0, EINVAL },			/* zero length */
		{ 0x800, PAGE, EINVAL },		/* unaligned offset */
		{ 0, 0x800, EINVAL },			/* unaligned length */
		{ 16 << 20, PAGE, EINVAL },		/* offset at the end */
		{ (16 << 20) - PAGE, 2 * PAGE, EINVAL },	/* beyond the BAR */
		{ ~0xfffULL, PAGE, EOVERFLOW },		/* offset wraps */
		{ PAGE, ~0xfffULL, EOVERFLOW },		/* length wraps */
	};
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(bad); i++) {
		EXPECT_EQ(-bad[i].err, export_one(self->exp, bad[i].offset, bad[i].length))
			TH_LOG("range %u", i);
	}
	for (i = 0; i < ARRAY_SIZE(many); i++)
		many[i] = (struct p2pdma_dmabuf_range){ (i % 16) * PAGE, PAGE };
	EXPECT_EQ(-EINVAL, export_ranges(self->exp, many, 0));
	EXPECT_EQ(-E2BIG, export_ranges(self->exp, many, P2PDMA_DMABUF_MAX_RANGES + 1));
	i = export_ranges(self->exp, many, P2PDMA_DMABUF_MAX_RANGES);
	EXPECT_LE(0, (int)i);
	close(i);
	/* The second range is bad: nothing of the first is kept. */
	many[1].length = len;
	EXPECT_EQ(-EINVAL, export_ranges(self->exp, many, 2));

	memset(&e, 0, sizeof(e));
	e.nr_ranges = 1;
	e.ranges = (uintptr_t)many;
	for (e.bar = 0; e.bar < 8; e.bar++) {
		if (e.bar == BAR)
			continue;
		/* BAR 0: registers, not claimed; 1, 3-5 unused; 6+ no BAR. */
		EXPECT_EQ(-1, ioctl(self->exp, P2PDMA_DMABUF_EXPORT, &e)) TH_LOG("bar %u", e.bar);
		EXPECT_EQ(e.bar ? EINVAL : EPERM, errno) TH_LOG("bar %u", e.bar);
	}
	e.bar = BAR;
	e.flags = 1;
	EXPECT_EQ(-1, ioctl(self->exp, P2PDMA_DMABUF_EXPORT, &e));
	EXPECT_EQ(EINVAL, errno);
	e.flags = 0;
	e.open_flags = O_RDWR | O_APPEND;
	EXPECT_EQ(-1, ioctl(self->exp, P2PDMA_DMABUF_EXPORT, &e));
	EXPECT_EQ(EINVAL, errno);
	e.open_flags = O_RDWR;
	e.ranges = 0;
	EXPECT_EQ(-1, ioctl(self->exp, P2PDMA_DMABUF_EXPORT, &e));
	EXPECT_EQ(EFAULT, errno);
	EXPECT_EQ(-1, ioctl(self->exp, P2PDMA_DMABUF_EXPORT, NULL));
	EXPECT_EQ(EFAULT, errno);
	EXPECT_EQ(-1, ioctl(self->exp, _IO(P2PDMA_DMABUF_TYPE, 0x1f)));
	EXPECT_EQ(ENOTTY, errno);
	memset(&st, 0, sizeof(st));
	st.bar = 1;
	EXPECT_EQ(-1, ioctl(self->exp, P2PDMA_DMABUF_STATE, &st));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_TRUE(exports_gone(self->exp));
}

/* Whether a line of /proc/iomem contains @needle. */
static int iomem_has(const char *needle)
{
	FILE *f = fopen("/proc/iomem", "r");
	char line[256];
	int found = 0;

	while (f && !found && fgets(line, sizeof(line), f))
		found = !!strstr(line, needle);
	if (f)
		fclose(f);
	return found;
}

#define PROBE_FAILED "probe with driver " EXPORTER " failed with error -22"

/*
 * The exporter claims the BARs it exports (BAR 2 by default, the `bars`
 * parameter) in its driver's name, and exports from no other.
 */
TEST_F(dmabuf, only_claimed_bars_export)
{
	struct p2pdma_dmabuf_range r = { 0, PAGE };
	struct p2pdma_dmabuf_export e = {
		.open_flags = O_RDWR, .nr_ranges = 1, .ranges = (uintptr_t)&r,
	};
	char claim[64], probe_failed[128];
	int failed;

	/* This device's: the sample also binds the fifth ivshmem (pages_test's). */
	snprintf(probe_failed, sizeof(probe_failed), "%s: " PROBE_FAILED, self->exp_bdf);
	snprintf(claim, sizeof(claim), "%08llx-%08llx : " EXPORTER,
		 (unsigned long long)self->st.bar_start,
		 (unsigned long long)(self->st.bar_start + self->st.bar_len - 1));
	EXPECT_TRUE(iomem_has(claim)) TH_LOG("no \"%s\" in /proc/iomem", claim);
	e.bar = 0;		/* the ivshmem registers: a memory BAR, not claimed */
	EXPECT_EQ(-1, ioctl(self->exp, P2PDMA_DMABUF_EXPORT, &e));
	EXPECT_EQ(EPERM, errno);

	/* Loaded to claim nothing: BAR 2 is refused too, and nobody's. */
	close(self->exp);
	self->exp = -1;
	self->reloaded = 1;
	ASSERT_EQ(0, reload_exporter("bars=0"));
	self->exp = open_node("dmabuf", self->exp_bdf);
	ASSERT_LE(0, self->exp);
	EXPECT_FALSE(iomem_has(claim));
	e.bar = BAR;
	EXPECT_EQ(-1, ioctl(self->exp, P2PDMA_DMABUF_EXPORT, &e));
	EXPECT_EQ(EPERM, errno);
	/* BAR 1 is no memory BAR and cannot be claimed: probe fails. */
	close(self->exp);
	self->exp = -1;
	failed = klog_count(probe_failed);
	ASSERT_EQ(0, reload_exporter("bars=2"));
	EXPECT_GT(0, open_node("dmabuf", self->exp_bdf));
	EXPECT_EQ(failed + 1, klog_count(probe_failed));
	ASSERT_EQ(0, reload_exporter(""));
	self->reloaded = 0;
	self->exp = open_node("dmabuf", self->exp_bdf);
	ASSERT_LE(0, self->exp);
	EXPECT_TRUE(iomem_has(claim));
}

/* pci-testdev through driver_override: its BAR 1 is an I/O BAR. */
TEST_F(dmabuf, io_bar_refused_on_driver_override_device)
{
	char testdev[1][16], path[PATH_MAX], drv[64];
	struct p2pdma_dmabuf_export e = { .nr_ranges = 1 };
	struct p2pdma_dmabuf_range r = { 0, PAGE };
	int node, fd;

	ASSERT_EQ(1, find_devs(0x1b36, 0x0005, testdev, 1));
	driver_of(testdev[0], drv, sizeof(drv));
	ASSERT_EQ(0, drv[0]) TH_LOG("pci-testdev is bound to %s", drv);
	snprintf(path, sizeof(path), PCI_DEVS "/%s/driver_override", testdev[0]);
	ASSERT_EQ(0, write_str(path, EXPORTER));
	ASSERT_EQ(0, write_str("/sys/bus/pci/drivers/" EXPORTER "/bind", testdev[0]));
	node = open_node("dmabuf", testdev[0]);
	ASSERT_LE(0, node);
	e.ranges = (uintptr_t)&r;
	e.bar = 1;
	EXPECT_EQ(-1, ioctl(node, P2PDMA_DMABUF_EXPORT, &e));
	EXPECT_EQ(EINVAL, errno);
	e.bar = 2;
	fd = ioctl(node, P2PDMA_DMABUF_EXPORT, &e);
	EXPECT_LE(0, fd);
	close(fd);
	close(node);
	EXPECT_EQ(0, write_str("/sys/bus/pci/drivers/" EXPORTER "/unbind", testdev[0]));
	EXPECT_EQ(0, write_str(path, "\n"));
}

/* The importer's ioctls, field by field. */
TEST_F(dmabuf, bad_import_input_field_by_field)
{
	struct p2pdma_import_dma bad_flags = { .length = 8, .flags = 2 };
	struct p2pdma_import_range r;
	struct p2pdma_import_map bad_map = { .nr_ranges = 1, .reserved = 1,
					     .ranges = (uintptr_t)&r };
	struct p2pdma_import_status s;
	struct p2pdma_import_range m;
	int buf, imp, null;

	imp = open_node("import", self->edu_sw);
	ASSERT_LE(0, imp);
	EXPECT_EQ(-ENOENT, imp_map(imp, &m, 1, NULL));
	EXPECT_EQ(-ENOENT, imp_dma(imp, 0, DMA_LEN, 1, 1));
	EXPECT_EQ(-ENOENT, imp_status(imp, &s));
	EXPECT_EQ(-1, ioctl(imp, P2PDMA_IMPORT_DETACH));
	EXPECT_EQ(ENOENT, errno);
	EXPECT_EQ(-1, ioctl(imp, P2PDMA_IMPORT_ATTACH, -1));
	EXPECT_EQ(EBADF, errno);
	EXPECT_EQ(-1, ioctl(imp, P2PDMA_IMPORT_ATTACH, 4096));
	EXPECT_EQ(EBADF, errno);
	null = open("/dev/null", O_RDONLY);
	EXPECT_EQ(-1, ioctl(imp, P2PDMA_IMPORT_ATTACH, null));
	EXPECT_EQ(EINVAL, errno);
	close(null);

	buf = export_one(self->exp, 0xc00000, 0x10000);
	ASSERT_LE(0, buf);
	ASSERT_EQ(0, ioctl(imp, P2PDMA_IMPORT_ATTACH, buf));
	EXPECT_EQ(-1, ioctl(imp, P2PDMA_IMPORT_ATTACH, buf));
	EXPECT_EQ(EBUSY, errno);
	EXPECT_EQ(-1, ioctl(imp, P2PDMA_IMPORT_MAP, NULL));
	EXPECT_EQ(EFAULT, errno);
	EXPECT_EQ(1, imp_map(imp, &m, 0, NULL));	/* no room: count only */
	EXPECT_EQ(-1, ioctl(imp, P2PDMA_IMPORT_MAP, &bad_map));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-EINVAL, imp_dma(imp, 0, 0, 1, 1));
	EXPECT_EQ(-EINVAL, imp_dma(imp, 0, DMA_LEN + 8, 1, 1));
	EXPECT_EQ(-EINVAL, imp_dma(imp, 0, 12, 1, 1));
	EXPECT_EQ(-EINVAL, imp_dma(imp, 4, 8, 1, 1));
	EXPECT_EQ(-EINVAL, imp_dma(imp, 0x10000, 8, 1, 1));
	EXPECT_EQ(-EINVAL, imp_dma(imp, ~7ULL, 8, 1, 1));
	EXPECT_EQ(-1, ioctl(imp, P2PDMA_IMPORT_DMA, &bad_flags));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-1, ioctl(imp, _IO(P2PDMA_DMABUF_TYPE, 0x1f)));
	EXPECT_EQ(ENOTTY, errno);
	hostcheck(0xc00000, 0x10000, 0, 1);
	EXPECT_EQ(0, ioctl(imp, P2PDMA_IMPORT_DETACH));
	close(imp);
	close(buf);
	EXPECT_TRUE(exports_gone(self->exp));
}

/* Random ioctls on both nodes; every answer is a success or a known errno. */
TEST_F_TIMEOUT(dmabuf, fuzz_100000_random_ioctls, 400)
{
	static const int ok_errs[] = { EINVAL, E2BIG, EOVERFLOW, EFAULT, ENOTTY,
				       ENODEV, ENOENT, EBUSY, EBADF, EPERM };
	struct p2pdma_dmabuf_range ranges[P2PDMA_DMABUF_MAX_RANGES + 8];
	unsigned long cmds[] = { P2PDMA_DMABUF_EXPORT, P2PDMA_DMABUF_STATE,
		P2PDMA_DMABUF_REVOKE, P2PDMA_DMABUF_UNREVOKE, P2PDMA_IMPORT_ATTACH,
		P2PDMA_IMPORT_MAP, P2PDMA_IMPORT_UNMAP, P2PDMA_IMPORT_STATUS,
		P2PDMA_IMPORT_DETACH, _IO(P2PDMA_DMABUF_TYPE, 0x1f), 0 };
	struct p2pdma_dmabuf_state st;
	struct p2pdma_import_range m[4];
	union {
		struct p2pdma_dmabuf_export e;
		struct p2pdma_dmabuf_state s;
		struct p2pdma_import_map m;
		unsigned char raw[64];
	} a;
	int imps[8], bufs[16] = { -1 }, nbufs = 0, ok = 0, bad = 0;
	unsigned long i, calls = 100000;
	uint64_t x = self->seed;

	TH_LOG("seed %#llx", (unsigned long long)self->seed);
	for (i = 0; i < 8; i++) {
		imps[i] = open_node("import", i % 2 ? self->edu_root : self->edu_sw);
		ASSERT_LE(0, imps[i]);
	}
#define RND() (x = x * 6364136223846793005ULL + 1442695040888963407ULL, x >> 17)
	for (i = 0; i < calls; i++) {
		unsigned long cmd;

		cmds[ARRAY_SIZE(cmds) - 1] = 0;
		cmd = cmds[RND() % ARRAY_SIZE(cmds)];
		int target = RND() % 2 ? self->exp : imps[RND() % 8];
		unsigned int j, n;
		long ret;

		/* Any other command, of a type no VFS or sample ioctl uses. */
		while (!cmd || (cmd == cmds[ARRAY_SIZE(cmds) - 1] &&
				memchr("TXf\x94\xbb", _IOC_TYPE(cmd), 5))) {
			cmd = _IOC(RND() % 4, RND() % 256, RND() % 256, RND() % 64);
			cmds[ARRAY_SIZE(cmds) - 1] = cmd;
		}
		for (j = 0; j < sizeof(a.raw); j++)
			a.raw[j] = RND();
		n = RND() % 4 ? RND() % 4 : RND() % (P2PDMA_DMABUF_MAX_RANGES + 8);
		for (j = 0; j < n; j++) {
			ranges[j].offset = RND() % 2 ? (RND() % 4096) * PAGE : RND() << 20;
			ranges[j].length = RND() % 2 ? (RND() % 8 + 1) * PAGE : RND();
		}
		if (cmd == P2PDMA_DMABUF_EXPORT) {
			a.e.bar = RND() % 4 ? BAR : RND() % 8;
			a.e.open_flags = RND() % 4 ? O_RDWR : RND();
			a.e.flags = RND() % 8 ? 0 : RND();
			a.e.nr_ranges = n;
			a.e.ranges = RND() % 16 ? (uintptr_t)ranges : RND();
		} else if (cmd == P2PDMA_DMABUF_STATE) {
			a.s.bar = RND() % 2 ? BAR : RND() % 16;
		} else if (cmd == P2PDMA_IMPORT_MAP) {
			a.m.nr_ranges = RND() % 8;
			a.m.ranges = RND() % 16 ? (uintptr_t)m : RND();
		}
		if (cmd == P2PDMA_IMPORT_ATTACH)
			ret = ioctl(target, cmd, nbufs && RND() % 4 ?
				    bufs[RND() % nbufs] : (int)(RND() % 64) - 2);
		else if (RND() % 32)
			ret = ioctl(target, cmd, &a);
		else
			ret = ioctl(target, cmd, RND());

		if (ret >= 0) {
			ok++;
			if (cmd == P2PDMA_DMABUF_EXPORT && target == self->exp) {
				if (nbufs < 16) {
					bufs[nbufs++] = ret;
				} else {
					j = RND() % 16;
					close(bufs[j]);
					bufs[j] = ret;
				}
			}
			continue;
		}
		for (j = 0; j < ARRAY_SIZE(ok_errs); j++)
			if (errno == ok_errs[j])
				break;
		if (j == ARRAY_SIZE(ok_errs) && bad++ < 10)
			TH_LOG("call %lu: cmd %#lx: unexpected %s", i, cmd, strerror(errno));
	}
	TH_LOG("%lu calls: %d succeeded, %lu refused cleanly, %d unexpected",
	       calls, ok, calls - ok - bad, bad);
	EXPECT_EQ(0, bad);
	EXPECT_EQ(0, ioctl(self->exp, P2PDMA_DMABUF_UNREVOKE));
	for (i = 0; i < 8; i++)
		close(imps[i]);
	for (i = 0; i < (unsigned long)nbufs; i++)
		close(bufs[i]);
	EXPECT_TRUE(exports_gone(self->exp));
	ASSERT_EQ(0, state(self->exp, &st));
	EXPECT_EQ(0, st.mappings);
}

/* Map/unmap loop in a child while the host unplugs the exporter (last test). */
/* Ask the host to inject AER error @err (QEMU's name for it) at the exporter's port. */
static int inject_aer(const char *err)
{
	int console = open("/dev/console", O_WRONLY);

	if (console < 0)
		return -1;
	dprintf(console, "\n@@QMP " INJECT "\n", err);
	close(console);
	return 0;
}

/* Wait until @needle is in the kernel log more than @before times; the count. */
static int klog_wait(const char *needle, int before)
{
	int i, n = 0;

	for (i = 0; i < 300 && (n = klog_count(needle)) <= before; i++)
		usleep(100000);
	return n;
}

#define AER_REVOKED "error recovery: %s, exports revoked"
#define AER_REARMED "error recovery: done, exports re-armed"
#define AER_MMIO "error recovery: MMIO enabled"
#define AER_SLOT "error recovery: slot reset, config space restored"

/*
 * A real AER error below the exporter: the error handlers revoke (every
 * importer invalidated and unmapped, the transfer in flight landed) and, when
 * the recovery is over, re-arm; a non-fatal error goes through mmio_enabled,
 * a fatal one through a reset of the link and slot_reset, after which the
 * restored BAR takes DMA again. A user's REVOKE outlives the recovery.
 */
TEST_F_TIMEOUT(dmabuf, aer_error_revokes_then_rearms, 180)
{
	static const struct {
		const char *err, *state, *step;
	} errs[] = {
		{ "POISON_TLP", "Normal", AER_MMIO },	/* uncorrectable, non-fatal */
		{ "MALF_TLP", "Frozen", AER_SLOT },	/* uncorrectable, fatal */
	};
	struct p2pdma_import_status s;
	struct p2pdma_import_range m;
	struct p2pdma_dmabuf_state st;
	int buf, imp[2], e, i, rearmed, step;
	char revoked[64];

	buf = export_one(self->exp, 0x900000, 0x10000);
	ASSERT_LE(0, buf);
	for (i = 0; i < 2; i++) {
		imp[i] = importer(self->edu_sw, buf);
		ASSERT_LE(0, imp[i]);
	}
	for (e = 0; e < 2; e++) {
		for (i = 0; i < 2; i++)
			ASSERT_EQ(1, imp_map(imp[i], &m, 1, NULL));
		/* Started, not waited for: it lands before or during the revocation. */
		ASSERT_EQ(0, imp_dma(imp[0], e * 0x2000, DMA_LEN, self->seed + e, 0));
		snprintf(revoked, sizeof(revoked), AER_REVOKED, errs[e].state);
		rearmed = klog_count(AER_REARMED);
		step = klog_count(errs[e].step);
		i = klog_count(revoked);
		ASSERT_EQ(0, inject_aer(errs[e].err));
		ASSERT_EQ(rearmed + 1, klog_wait(AER_REARMED, rearmed))
			TH_LOG("no recovery after %s", errs[e].err);
		EXPECT_EQ(i + 1, klog_count(revoked)) TH_LOG("%s", errs[e].err);
		EXPECT_EQ(step + 1, klog_count(errs[e].step)) TH_LOG("%s", errs[e].err);
		hostcheck(0x900000 + e * 0x2000, DMA_LEN, self->seed + e, 0);
		for (i = 0; i < 2; i++) {
			ASSERT_EQ(0, imp_status(imp[i], &s));
			EXPECT_EQ(0, s.mapped);
			/* The revocation, and the re-arm's notice. */
			EXPECT_EQ(2 * (e + 1), s.invalidations);
		}
		ASSERT_EQ(0, state(self->exp, &st));
		EXPECT_EQ(0, st.revoked);
		/* Mapped again, a new transfer lands: the BAR decodes where it did. */
		ASSERT_EQ(0, imp_dma(imp[1], 0x8000 + e * 0x2000, DMA_LEN, self->seed + 8 + e, 1));
		hostcheck(0x908000 + e * 0x2000, DMA_LEN, self->seed + 8 + e, 0);
	}

	ASSERT_EQ(0, ioctl(self->exp, P2PDMA_DMABUF_REVOKE));
	rearmed = klog_count(AER_REARMED);
	ASSERT_EQ(0, inject_aer(errs[0].err));
	ASSERT_EQ(rearmed + 1, klog_wait(AER_REARMED, rearmed));
	ASSERT_EQ(0, state(self->exp, &st));
	EXPECT_EQ(1, st.revoked);
	EXPECT_EQ(-ENODEV, imp_dma(imp[0], 0xc000, DMA_LEN, self->seed, 1));
	hostcheck(0x90c000, DMA_LEN, 0, 1);
	ASSERT_EQ(0, ioctl(self->exp, P2PDMA_DMABUF_UNREVOKE));
	EXPECT_EQ(1, imp_map(imp[0], &m, 1, NULL));
	for (i = 0; i < 2; i++)
		close(imp[i]);
	close(buf);
	EXPECT_TRUE(exports_gone(self->exp));
}

TEST_F_TIMEOUT(dmabuf, unplug_during_map_loop, 150)
{
	struct p2pdma_import_range m;
	char path[PATH_MAX];
	int buf, imp, console, i, status;
	struct live l;
	pid_t child;

	make_live(_metadata, self, &l);
	buf = export_one(self->exp, 0xe00000, 0x10000);
	ASSERT_LE(0, buf);
	imp = importer(self->edu_sw, buf);
	ASSERT_LE(0, imp);
	child = fork();
	ASSERT_LE(0, child);
	if (!child) {
		/* Until the device is gone: map and unmap; then only ENODEV. */
		int err = 0, gone = 0;

		for (i = 0; i < 1000000 && gone < 100; i++) {
			int n = imp_map(imp, &m, 1, NULL);

			if (n == 1) {
				if (gone)
					_exit(2);	/* mapped after it was gone */
				ioctl(imp, P2PDMA_IMPORT_UNMAP);
			} else if (n == -ENODEV) {
				gone++;
			} else {
				err = 3;
				break;
			}
		}
		_exit(gone ? err : 4);
	}
	usleep(200000);
	console = open("/dev/console", O_WRONLY);
	ASSERT_LE(0, console);
	dprintf(console, "\n@@QMP %s\n", UNPLUG);
	close(console);
	snprintf(path, sizeof(path), PCI_DEVS "/%s", self->exp_bdf);
	for (i = 0; i < 600 && access(path, F_OK) == 0; i++)
		usleep(100000);
	ASSERT_NE(0, access(path, F_OK)) TH_LOG("%s still there after 60 s", path);
	ASSERT_EQ(child, waitpid(child, &status, 0));
	EXPECT_TRUE(WIFEXITED(status));
	EXPECT_EQ(0, WEXITSTATUS(status));
	check_gone(_metadata, self, &l);
	close(imp);
	close(buf);
}

TEST_HARNESS_MAIN
