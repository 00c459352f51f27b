// SPDX-License-Identifier: GPL-2.0
/*
 * The Rust importer (samples/rust/rust_p2pdma_import.rs, kernel::p2pdma::
 * Importer) on dma-bufs of vfio-pci, the upstream C exporter of BAR ranges
 * (drivers/vfio/pci/vfio_pci_dmabuf.c).
 *
 * vfio-pci owns the fourth ivshmem-plain (behind the switch's fifth
 * downstream port; its BAR 2 is the host file shm/ivshmem-vfio), in no-IOMMU
 * mode. The importer is the edu behind the same switch: VFIO's buffers map to
 * it at PCI bus addresses, it DMAs into them, and the host finds the bytes.
 * Each of VFIO's revocations (memory decoding off in the config space,
 * VFIO_DEVICE_RESET, low-power entry, closing the device file) has stopped
 * and unmapped the importer, with a transfer in flight, by the time the
 * syscall returns; maps then fail with ENODEV until VFIO re-arms.
 */
#include <signal.h>
#include <sys/prctl.h>
#include "vfio_util.h"
#include <sys/wait.h>
#include "kselftest_harness.h"

#define VFIO_FILE "ivshmem-vfio"

FIXTURE(vfio) {
	struct vfio v;
	char edu_sw[16];	/* edu behind the switch */
	char edu_root[16];	/* edu on the root bus */
	unsigned long long bar;	/* BAR 2: CPU physical address */
	unsigned long long bus;	/* BAR 2: PCI bus address (its register) */
	uint64_t seed;
};

/* The PCI bus address of 64-bit memory BAR @bar: its registers in the config space. */
static int bar_bus_addr(const char *bdf, int bar, unsigned long long *addr)
{
	char path[PATH_MAX];
	uint32_t r[2];
	int fd, n;

	snprintf(path, sizeof(path), PCI_DEVS "/%s/config", bdf);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return -errno;
	n = pread(fd, r, sizeof(r), PCI_BASE_ADDRESS_0 + 4 * bar);
	close(fd);
	if (n != sizeof(r))
		return -EIO;
	*addr = ((unsigned long long)r[1] << 32 | r[0]) & PCI_BASE_ADDRESS_MEM_MASK;
	return 0;
}

FIXTURE_SETUP(vfio)
{
	char bdf[16], edus[2][16], up[32];
	unsigned long long len;
	const char *what = "";
	int i, r;

	vfio_init(&self->v);
	ASSERT_EQ(0, find_vfio_dev(bdf)) TH_LOG("no ivshmem-plain bound to " VFIO_DRV);
	ASSERT_EQ(0, load_module(IMPORTER, IMPORTER_BITS));
	ASSERT_EQ(2, find_devs(0x1234, 0x11e8, edus, 2));
	for (i = 0; i < 2; i++) {
		parent_of(edus[i], up, sizeof(up));
		snprintf(up[0] ? self->edu_sw : self->edu_root, 16, "%.15s", edus[i]);
	}
	r = vfio_open(&self->v, bdf, &what);
	ASSERT_EQ(0, r) TH_LOG("vfio %s: %s: %s", bdf, what, strerror(-r));
	ASSERT_EQ(0, bar_resource(bdf, BAR, &self->bar, &len));
	ASSERT_EQ(16 << 20, len);
	ASSERT_EQ(0, bar_bus_addr(bdf, BAR, &self->bus));
	self->seed = random_seed();
}

FIXTURE_TEARDOWN(vfio)
{
	vfio_close(&self->v);
}

/*
 * Two ranges, mapped for the edu behind the switch at PCI bus addresses (the
 * BAR's register + offset), and real DMA into both; the edu on the root bus
 * is refused (NOT_SUPPORTED) or maps through the host bridge (EPYC), as for
 * the Rust exporter: the P2PDMA core decides per pair, whoever exports.
 */
TEST_F(vfio, import_maps_bus_addr_and_dma)
{
	struct p2pdma_dmabuf_range r[2] = { { 0, 0x10000 }, { 0x100000, 0x10000 } };
	struct p2pdma_import_range m[4];
	__u32 type = ~0U;
	int buf, imp, root, n, i;

	buf = vfio_export(&self->v, BAR, r, 2);
	ASSERT_LE(0, buf) TH_LOG("VFIO_DEVICE_FEATURE_DMA_BUF: %s", strerror(-buf));
	imp = importer(self->edu_sw, buf);
	ASSERT_LE(0, imp) TH_LOG("attach: %s", strerror(-imp));
	ASSERT_EQ(2, imp_map(imp, m, 4, &type));
	/*
	 * Only p2pdma::Exporter's buffers say their map type. Under qemu64 the
	 * host bridge is refused (see root below), so a map is BUS_ADDR.
	 */
	EXPECT_EQ(P2PDMA_MAP_UNKNOWN, type);
	for (i = 0; i < 2; i++) {
		EXPECT_EQ(self->bus + r[i].offset, m[i].addr);
		EXPECT_EQ(r[i].length, m[i].length);
	}
	TH_LOG("BAR at %#llx (bus %#llx): DMA ranges %#llx+%#llx, %#llx+%#llx",
	       self->bar, self->bus, m[0].addr, m[0].length, m[1].addr, m[1].length);
	ASSERT_EQ(0, imp_dma(imp, 0, DMA_LEN, self->seed, 1));
	ASSERT_EQ(0, imp_dma(imp, 0x11000, DMA_LEN, self->seed + 1, 1));
	hostcheck_in(VFIO_FILE, 0, DMA_LEN, self->seed, 0);
	hostcheck_in(VFIO_FILE, 0x101000, DMA_LEN, self->seed + 1, 0);

	root = importer(self->edu_root, buf);
	ASSERT_LE(0, root) TH_LOG("attach: %s", strerror(-root));
	n = imp_map(root, m, 4, NULL);
	if (cpu_allows_host_bridge()) {
		ASSERT_EQ(2, n) TH_LOG("map: %s", strerror(-n));
		EXPECT_EQ(self->bar + r[1].offset, m[1].addr);
		ASSERT_EQ(0, imp_dma(root, 0x12000, DMA_LEN, self->seed + 2, 1));
		hostcheck_in(VFIO_FILE, 0x102000, DMA_LEN, self->seed + 2, 0);
	} else {
		EXPECT_EQ(-EINVAL, n);
		EXPECT_EQ(-EINVAL, imp_dma(root, 0x12000, DMA_LEN, self->seed + 2, 1));
		hostcheck_in(VFIO_FILE, 0x102000, DMA_LEN, 0, 1);
	}
	EXPECT_EQ(0, ioctl(imp, P2PDMA_IMPORT_UNMAP));
	close(root);
	close(imp);
	close(buf);
}

/* VFIO's revocation triggers. */
enum trigger { MEMORY, LOW_POWER, RESET, CLOSE };

static int vfio_revoke(struct vfio *v, enum trigger t)
{
	switch (t) {
	case MEMORY:
		return vfio_memory(v, 0);
	case LOW_POWER:
		return vfio_low_power(v, 1);
	case RESET:
		return vfio_reset(v);
	case CLOSE:
		close(v->dev);
		v->dev = -1;
		return 0;
	}
	return -EINVAL;
}

static int vfio_rearm(struct vfio *v, enum trigger t)
{
	switch (t) {
	case MEMORY:
		return vfio_memory(v, 1);
	case LOW_POWER:
		return vfio_low_power(v, 0);
	default:
		return 0;
	}
}

/* FIXTURE_DATA(vfio) is struct _test_data_vfio. */

/*
 * Four importers map one buffer of VFIO's at @at; the first has a transfer in
 * flight when trigger @t revokes. When the syscall returns, every importer was
 * invalidated and unmapped and the transfer landed; maps and transfers are
 * refused (nothing lands) until VFIO re-arms, after which they work again.
 * A reset re-arms inside the syscall; closing the device file revokes for good.
 */
static void revoke_by(struct __test_metadata *_metadata, struct _test_data_vfio *self,
		      enum trigger t, uint64_t at)
{
	struct p2pdma_import_status s;
	struct p2pdma_import_range m;
	const char *what = "";
	int buf, imp[4], i, refused, mapped, late;

	buf = vfio_export_one(&self->v, at, 0x10000);
	ASSERT_LE(0, buf) TH_LOG("export: %s", strerror(-buf));
	for (i = 0; i < 4; i++) {
		imp[i] = importer(self->edu_sw, buf);
		ASSERT_LE(0, imp[i]) TH_LOG("importer %d: %s", i, strerror(-imp[i]));
		ASSERT_EQ(1, imp_map(imp[i], &m, 1, NULL));
		EXPECT_EQ(self->bus + at, m.addr);
	}
	/* Started, not waited for: the revocation has to wait for it. */
	ASSERT_EQ(0, imp_dma(imp[0], 0, DMA_LEN, self->seed, 0));
	/* (An edu transfer takes 100 ms: it is still in flight.) */
	ASSERT_EQ(0, imp_status(imp[0], &s));
	ASSERT_EQ(1, s.dma_busy) TH_LOG("the transfer was done before the revocation");
	ASSERT_EQ(0, vfio_revoke(&self->v, t));
	for (i = 0; i < 4; i++) {
		ASSERT_EQ(0, imp_status(imp[i], &s));
		EXPECT_EQ(0, s.mapped);
		/* A reset re-armed already, which invalidates once more (unmapped). */
		EXPECT_EQ(t == RESET ? 2 : 1, s.invalidations);
		EXPECT_EQ(0, s.dma_busy);
	}
	hostcheck_in(VFIO_FILE, at, DMA_LEN, self->seed, 0);
	if (t == RESET)
		goto rearmed;
	for (refused = i = 0; i < 4; i++)
		refused += imp_map(imp[i], &m, 1, NULL) == -ENODEV;
	EXPECT_EQ(4, refused);
	/* Nothing lands after the revocation, nor can a new importer attach. */
	EXPECT_EQ(-ENODEV, imp_dma(imp[0], 0x2000, DMA_LEN, self->seed + 2, 1));
	hostcheck_in(VFIO_FILE, at + 0x2000, DMA_LEN, 0, 1);
	late = importer(self->edu_sw, buf);
	EXPECT_EQ(-ENODEV, late);
	if (late >= 0)
		close(late);
	if (t == CLOSE) {
		/* For good: the old buffer stays revoked; the device opens again. */
		char bdf[16];
		int r;

		memcpy(bdf, self->v.bdf, sizeof(bdf));
		vfio_close(&self->v);
		r = vfio_open(&self->v, bdf, &what);
		ASSERT_EQ(0, r) TH_LOG("vfio: %s: %s", what, strerror(-r));
		EXPECT_EQ(-ENODEV, imp_map(imp[0], &m, 1, NULL));
		for (i = 0; i < 4; i++)
			close(imp[i]);
		close(buf);
		buf = vfio_export_one(&self->v, at, 0x10000);
		ASSERT_LE(0, buf) TH_LOG("export: %s", strerror(-buf));
		for (i = 0; i < 4; i++) {
			imp[i] = importer(self->edu_sw, buf);
			ASSERT_LE(0, imp[i]);
		}
	} else {
		ASSERT_EQ(0, vfio_rearm(&self->v, t));
	}
rearmed:
	for (mapped = i = 0; i < 4; i++)
		mapped += imp_map(imp[i], &m, 1, NULL) == 1;
	EXPECT_EQ(4, mapped);
	EXPECT_EQ(self->bus + at, m.addr);
	ASSERT_EQ(0, imp_dma(imp[3], 0x4000, DMA_LEN, self->seed + 4, 1));
	hostcheck_in(VFIO_FILE, at + 0x4000, DMA_LEN, self->seed + 4, 0);
	for (i = 0; i < 4; i++)
		close(imp[i]);
	close(buf);
}

TEST_F(vfio, memory_disable_revokes_first_and_rearms)
{
	revoke_by(_metadata, self, MEMORY, 0x200000);
}

TEST_F(vfio, low_power_entry_revokes_and_exit_rearms)
{
	revoke_by(_metadata, self, LOW_POWER, 0x300000);
}

TEST_F(vfio, device_reset_revokes_first_and_rearms)
{
	revoke_by(_metadata, self, RESET, 0x400000);
}

TEST_F(vfio, closing_the_device_revokes_for_good)
{
	revoke_by(_metadata, self, CLOSE, 0x500000);
}

/*
 * What a child mapping in a loop saw before VFIO_DEVICE_RESET (@phase 0),
 * while it ran (1) and after it returned (2); 3 stops it.
 */
struct mapper {
	int phase, started;
	int ok[3], refused[3], other;
};

TEST_F(vfio, maps_fail_while_a_reset_runs)
{
	struct p2pdma_import_range m;
	struct mapper *a;
	int buf, imp, phase, r, status;
	pid_t child;

	buf = vfio_export_one(&self->v, 0x600000, 0x10000);
	ASSERT_LE(0, buf);
	imp = importer(self->edu_sw, buf);
	ASSERT_LE(0, imp);
	a = mmap(NULL, sizeof(*a), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, a);
	child = fork();
	ASSERT_LE(0, child);
	if (!child) {
		/* Dies with the test, whatever way it ends (it holds VFIO's group fd). */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		while ((phase = __atomic_load_n(&a->phase, __ATOMIC_SEQ_CST)) < 3) {
			r = imp_map(imp, &m, 1, NULL);
			/* A map that the phase changed under counts for neither. */
			if (phase != __atomic_load_n(&a->phase, __ATOMIC_SEQ_CST))
				continue;
			if (r != 1 && r != -ENODEV)
				a->other++;
			else
				(r == 1 ? a->ok : a->refused)[phase]++;
			__atomic_store_n(&a->started, 1, __ATOMIC_SEQ_CST);
		}
		_exit(0);
	}
	while (!__atomic_load_n(&a->started, __ATOMIC_SEQ_CST))
		usleep(1000);
	__atomic_store_n(&a->phase, 1, __ATOMIC_SEQ_CST);
	usleep(10000);
	ASSERT_EQ(0, vfio_reset(&self->v));
	__atomic_store_n(&a->phase, 2, __ATOMIC_SEQ_CST);
	usleep(10000);
	__atomic_store_n(&a->phase, 3, __ATOMIC_SEQ_CST);
	ASSERT_EQ(child, waitpid(child, &status, 0));
	TH_LOG("maps before/during/after the reset: %d/%d/%d done, %d/%d/%d refused",
	       a->ok[0], a->ok[1], a->ok[2], a->refused[0], a->refused[1], a->refused[2]);
	EXPECT_LT(0, a->ok[0]);
	EXPECT_EQ(0, a->refused[0]);
	EXPECT_LT(0, a->refused[1]);
	EXPECT_LT(0, a->ok[2]);
	EXPECT_EQ(0, a->refused[2]);
	EXPECT_EQ(0, a->other);
	munmap(a, sizeof(*a));
	close(imp);
	close(buf);
}

TEST_HARNESS_MAIN
