// SPDX-License-Identifier: GPL-2.0
/*
 * `make bench`: the Rust dma-buf exporter (samples/rust/rust_p2pdma_dmabuf.rs,
 * kernel::p2pdma::Exporter) against vfio-pci's (drivers/vfio/pci/
 * vfio_pci_dmabuf.c), with the same importer (samples/rust/rust_p2pdma_import.rs
 * on the edu behind the switch) on both, in one boot. Each exporter has an
 * ivshmem-plain of its own behind the same switch (harness/qemu.sh).
 *
 * Rounds alternate the exporters (ABBA), so that drift of the host cancels;
 * a figure is the median over every sample of every round, in ns per
 * operation, and the ratio is Rust / VFIO (goal: at most 1.00).
 *
 *   cycle       attach + map + unmap + detach of one importer, with 1 and 16
 *               ranges, and each of the four steps on its own
 *   revoke      revoke + re-arm with 1, 16 and 256 mapped importers; Rust:
 *               REVOKE/UNREVOKE, VFIO: its lightest trigger, low-power
 *               entry/exit (software only without CONFIG_PM), then apart:
 *               VFIO's memory disable/enable through the config space, and
 *               a reset (Rust: sysfs reset, whose reset_prepare/done hooks
 *               revoke and re-arm; VFIO: VFIO_DEVICE_RESET)
 *   idle        apart: a re-arm with nothing to re-arm, the way of the ioctl
 *               without the dma-buf work
 *
 * The figures are never judged here: the program fails only when a step
 * fails (every revocation is checked: all importers unmapped).
 * Output: "bench dmabuf <what> rust_ns <n> vfio_ns <n> ratio <r>".
 */
#include "vfio_util.h"

#define ROUNDS 10		/* even: as many rounds with Rust first as with VFIO */
#define MAX_IMP 256
#define MAX_SAMPLES 4096

enum trig { LIGHT, MEMORY, RESET };

struct exporter {
	const char *name;
	int vfio;		/* 0: the Rust sample's node; 1: VFIO */
	int node;
	struct vfio v;
	char reset[PATH_MAX];	/* Rust: the sysfs reset file */
};

struct series {
	unsigned long long ns[MAX_SAMPLES];
	int n;
};

static int imp[MAX_IMP];
static char edu[16];

/* A step that failed ends the program: no figure from a broken run. */
static void check(int ok, const char *what, int line)
{
	if (ok)
		return;
	fprintf(stderr, "dmabuf_bench: line %d: %s: %s\n", line, what, strerror(errno));
	exit(1);
}

#define CHECK(cond) check(!!(cond), #cond, __LINE__)

static unsigned long long now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC_RAW, &t);
	return t.tv_sec * 1000000000ULL + t.tv_nsec;
}

static void add(struct series *s, unsigned long long ns)
{
	if (s->n < MAX_SAMPLES)
		s->ns[s->n++] = ns;
}

static int cmp(const void *a, const void *b)
{
	unsigned long long x = *(const unsigned long long *)a, y = *(const unsigned long long *)b;

	return x < y ? -1 : x > y;
}

static unsigned long long median(struct series *s)
{
	qsort(s->ns, s->n, sizeof(s->ns[0]), cmp);
	return s->n ? s->ns[s->n / 2] : 0;
}

static void report(const char *what, struct series *s)
{
	unsigned long long r = median(&s[0]), v = median(&s[1]);

	printf("bench dmabuf %s rust_ns %llu vfio_ns %llu ratio %.2f\n", what, r, v,
	       v ? (double)r / v : 0.0);
	fflush(stdout);
}

static int exp_export(struct exporter *e, const struct p2pdma_dmabuf_range *r, int n)
{
	return e->vfio ? vfio_export(&e->v, BAR, r, n) : export_ranges(e->node, r, n);
}

static void exp_revoke(struct exporter *e, enum trig t)
{
	if (!e->vfio && t == LIGHT)
		CHECK(!ioctl(e->node, P2PDMA_DMABUF_REVOKE));
	else if (!e->vfio && t == RESET)
		CHECK(!write_str(e->reset, "1"));
	else if (t == LIGHT)
		CHECK(!vfio_low_power(&e->v, 1));
	else if (t == MEMORY)
		CHECK(!vfio_memory(&e->v, 0));
	else
		CHECK(!vfio_reset(&e->v));
}

static void exp_rearm(struct exporter *e, enum trig t)
{
	if (t == RESET)
		return;		/* the reset re-armed */
	if (!e->vfio)
		CHECK(!ioctl(e->node, P2PDMA_DMABUF_UNREVOKE));
	else if (t == LIGHT)
		CHECK(!vfio_low_power(&e->v, 0));
	else
		CHECK(!vfio_memory(&e->v, 1));
}

static void map_all(int n)
{
	struct p2pdma_import_range m[16];
	int i;

	for (i = 0; i < n; i++)
		CHECK(imp_map(imp[i], m, 16, NULL) >= 1);
}

static void all_unmapped(int n)
{
	struct p2pdma_import_status s;
	int i;

	for (i = 0; i < n; i++)
		CHECK(!imp_status(imp[i], &s) && !s.mapped);
}

/* One importer: attach, map, unmap, detach, @iters times; steps and cycle. */
static void cycle(struct exporter *e, int ranges, int iters, struct series *step[5])
{
	struct p2pdma_dmabuf_range r[16];
	struct p2pdma_import_range m[16];
	unsigned long long t[5];
	int buf, i, k;

	for (i = 0; i < ranges; i++)
		r[i] = (struct p2pdma_dmabuf_range){ 0x800000 + i * 0x20000, 0x10000 };
	buf = exp_export(e, r, ranges);
	CHECK(buf >= 0);
	for (k = 0; k < iters; k++) {
		t[0] = now();
		CHECK(!ioctl(imp[0], P2PDMA_IMPORT_ATTACH, buf));
		t[1] = now();
		CHECK(imp_map(imp[0], m, 16, NULL) == ranges);
		t[2] = now();
		CHECK(!ioctl(imp[0], P2PDMA_IMPORT_UNMAP));
		t[3] = now();
		CHECK(!ioctl(imp[0], P2PDMA_IMPORT_DETACH));
		t[4] = now();
		for (i = 0; i < 4; i++)
			add(step[i], t[i + 1] - t[i]);
		add(step[4], t[4] - t[0]);
	}
	close(buf);
}

/* @n importers mapped; revoke and re-arm by @t, @iters times. */
static void revocations(struct exporter *e, enum trig t, int n, int iters,
			struct series *rv, struct series *ra, struct series *both)
{
	unsigned long long t0, t1, t2, t3;
	int buf, i, k;

	buf = exp_export(e, &(struct p2pdma_dmabuf_range){ 0xc00000, 0x10000 }, 1);
	CHECK(buf >= 0);
	for (i = 0; i < n; i++)
		CHECK(!ioctl(imp[i], P2PDMA_IMPORT_ATTACH, buf));
	for (k = 0; k < iters; k++) {
		map_all(n);
		t0 = now();
		exp_revoke(e, t);
		t1 = now();
		/* Checked between the two, untimed: a re-arm invalidates again. */
		all_unmapped(n);
		t2 = now();
		exp_rearm(e, t);
		t3 = now();
		add(rv, t1 - t0);
		add(ra, t3 - t2);
		add(both, (t1 - t0) + (t3 - t2));
	}
	for (i = 0; i < n; i++)
		CHECK(!ioctl(imp[i], P2PDMA_IMPORT_DETACH));
	close(buf);
}

/*
 * A re-arm with nothing to re-arm (the buffer is armed, one importer mapped):
 * the ioctl's way into the exporter and back, its lock and its walk over the
 * buffers, without the dma-buf work. Set against the re-arm above, it tells
 * whether a difference is in that way or in the work.
 */
static void idle_rearms(struct exporter *e, int iters, struct series *ra)
{
	unsigned long long t0;
	int buf, k;

	buf = exp_export(e, &(struct p2pdma_dmabuf_range){ 0xc00000, 0x10000 }, 1);
	CHECK(buf >= 0);
	CHECK(!ioctl(imp[0], P2PDMA_IMPORT_ATTACH, buf));
	map_all(1);
	for (k = 0; k < iters; k++) {
		t0 = now();
		exp_rearm(e, LIGHT);
		add(ra, now() - t0);
	}
	CHECK(!ioctl(imp[0], P2PDMA_IMPORT_DETACH));
	close(buf);
}

static struct series s[16][2];

int main(void)
{
	static const int importers[] = { 1, 16, 256 };
	struct exporter ex[2] = { { .name = "rust" }, { .name = "vfio", .vfio = 1 } };
	char devs[8][16], edus[2][16], up[32], path[PATH_MAX], buf[64];
	const char *what = "";
	struct series *st[5];
	int i, j, n, round, x;

	CHECK(!load_module(EXPORTER, "") && !load_module(IMPORTER, IMPORTER_BITS));
	n = find_devs(0x1af4, 0x1110, devs, 8);
	for (i = 0; i < n; i++) {
		snprintf(path, sizeof(path), PCI_DEVS "/%s/driver_override", devs[i]);
		/* The first: the fifth ivshmem is the exporter's too (pages_test). */
		if (!read_str(path, buf, sizeof(buf)) && !strcmp(buf, EXPORTER) &&
		    ex[0].node <= 0) {
			ex[0].node = open_node("dmabuf", devs[i]);
			snprintf(ex[0].reset, sizeof(ex[0].reset), PCI_DEVS "/%s/reset", devs[i]);
		}
	}
	CHECK(ex[0].node > 0);
	CHECK(!find_vfio_dev(buf));
	if (vfio_open(&ex[1].v, buf, &what)) {
		fprintf(stderr, "dmabuf_bench: vfio %s: %s: %s\n", buf, what, strerror(errno));
		return 1;
	}
	CHECK(find_devs(0x1234, 0x11e8, edus, 2) == 2);
	for (i = 0; i < 2; i++) {
		parent_of(edus[i], up, sizeof(up));
		if (up[0])
			memcpy(edu, edus[i], sizeof(edu));
	}
	CHECK(edu[0]);
	for (i = 0; i < MAX_IMP; i++)
		CHECK((imp[i] = open_node("import", edu)) >= 0);

	/* Warm-up: one pass of each, not counted. */
	for (j = 0; j < 2; j++) {
		for (i = 0; i < 5; i++)
			st[i] = &s[15][0];
		cycle(&ex[j], 16, 10, st);
		revocations(&ex[j], LIGHT, 16, 3, &s[15][0], &s[15][0], &s[15][0]);
	}

	for (round = 0; round < ROUNDS; round++) {
		for (x = 0; x < 2; x++) {
			/* ABBA: Rust, VFIO, VFIO, Rust, ... */
			j = (round % 2) ? 1 - x : x;
			for (i = 0; i < 5; i++)
				st[i] = &s[i][j];
			cycle(&ex[j], 1, 20, st);
			for (i = 0; i < 5; i++)
				st[i] = &s[5 + i][j];
			cycle(&ex[j], 16, 20, st);
		}
	}
	report("cycle ranges 1", s[4]);
	report("  attach ranges 1", s[0]);
	report("  map ranges 1", s[1]);
	report("  unmap ranges 1", s[2]);
	report("  detach ranges 1", s[3]);
	report("cycle ranges 16", s[9]);
	report("  attach ranges 16", s[5]);
	report("  map ranges 16", s[6]);
	report("  unmap ranges 16", s[7]);
	report("  detach ranges 16", s[8]);

	for (n = 0; n < 3; n++) {
		int iters = importers[n] == 256 ? 4 : 10;
		char label[64];

		memset(s, 0, sizeof(s));
		for (round = 0; round < ROUNDS; round++)
			for (x = 0; x < 2; x++) {
				j = (round % 2) ? 1 - x : x;
				revocations(&ex[j], LIGHT, importers[n], iters, &s[0][j], &s[1][j],
					    &s[2][j]);
				if (j == 1)
					revocations(&ex[1], MEMORY, importers[n], iters, &s[3][1],
						    &s[4][1], &s[5][1]);
			}
		/* VFIO's memory disable against the same Rust REVOKE/UNREVOKE. */
		for (i = 3; i < 6; i++)
			s[i][0] = s[i - 3][0];
		snprintf(label, sizeof(label), "revoke+rearm importers %d", importers[n]);
		report(label, s[2]);
		snprintf(label, sizeof(label), "  revoke importers %d", importers[n]);
		report(label, s[0]);
		snprintf(label, sizeof(label), "  rearm importers %d", importers[n]);
		report(label, s[1]);
		snprintf(label, sizeof(label), "revoke+rearm importers %d vfio-memory-disable",
			 importers[n]);
		report(label, s[5]);
	}

	/* Apart: the way of a re-arm without the dma-buf work. */
	memset(s, 0, sizeof(s));
	for (round = 0; round < ROUNDS; round++)
		for (x = 0; x < 2; x++) {
			j = (round % 2) ? 1 - x : x;
			idle_rearms(&ex[j], 20, &s[0][j]);
		}
	report("rearm with nothing to re-arm (apart: the ioctl path)", s[0]);

	/*
	 * Apart: a reset with 1 importer. Both wait for the bus reset's
	 * msleep()s, which come in whole ticks (4 ms at HZ=250): a sample is
	 * two or three ticks, so it takes many for a stable median.
	 */
	memset(s, 0, sizeof(s));
	for (round = 0; round < ROUNDS; round++)
		for (x = 0; x < 2; x++) {
			j = (round % 2) ? 1 - x : x;
			revocations(&ex[j], RESET, 1, 3, &s[0][j], &s[1][j], &s[2][j]);
		}
	report("reset importers 1 (apart: sysfs reset vs VFIO_DEVICE_RESET)", s[2]);

	for (i = 0; i < MAX_IMP; i++)
		close(imp[i]);
	vfio_close(&ex[1].v);
	close(ex[0].node);
	return 0;
}
