// SPDX-License-Identifier: GPL-2.0
/*
 * `make run`: the dma-buf exporter and importer samples at work, one line per
 * step. The exporter (samples/rust/rust_p2pdma_dmabuf.rs) exports a range of
 * the ivshmem behind the switch; both edus import it; the one behind the
 * switch writes into it, then the exporter revokes with a transfer in flight
 * and re-arms. HOSTCHECK lines let the host check the bytes afterwards.
 * Exits with 1 when a step fails.
 */
#include "dmabuf_util.h"
#include <stdarg.h>

#define AT 0x100000ULL	/* offset of the exported range in the BAR */
#define LEN 0x10000ULL

static int failed;

static void step(int ok, const char *what, const char *fmt, ...)
{
	va_list ap;

	printf("  %-9s ", what);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("%s\n", ok ? "" : "  <-- FAILED");
	failed |= !ok;
}

static const char *map_name(__u32 type)
{
	switch (type) {
	case P2PDMA_MAP_BUS_ADDR: return "BUS_ADDR";
	case P2PDMA_MAP_THRU_HOST_BRIDGE: return "THRU_HOST_BRIDGE";
	case P2PDMA_MAP_NOT_SUPPORTED: return "NOT_SUPPORTED";
	default: return "UNKNOWN";
	}
}

static double ms_since(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (t.tv_sec - t0->tv_sec) * 1e3 + (t.tv_nsec - t0->tv_nsec) / 1e6;
}

/* Map @imp and say where the edu sees the range; 1 if it can write there. */
static int show_map(int imp, const char *edu, const char *where,
		    const struct p2pdma_dmabuf_state *st)
{
	uint64_t want = st->bar_start + AT;
	struct p2pdma_import_range r;
	__u32 type = 0;
	int n = imp_map(imp, &r, 1, &type);

	if (n == -EINVAL) {
		/* A pair the P2PDMA core refuses: the exporter's map fails. */
		step(1, "import", "edu %s (%s): NOT_SUPPORTED, map refused with EINVAL",
		     edu, where);
		return 0;
	}
	if (n != 1) {
		step(0, "import", "edu %s (%s): map: %s", edu, where, strerror(-n));
		return 0;
	}
	if (type == P2PDMA_MAP_BUS_ADDR)
		want += st->bus_offset;
	if (type == P2PDMA_MAP_BUS_ADDR)
		step(r.addr == want && r.length == LEN, "import",
		     "edu %s (%s): %s, DMA address %#llx = BAR + offset + bus offset 0x%llx",
		     edu, where, map_name(type), (unsigned long long)r.addr,
		     (unsigned long long)st->bus_offset);
	else
		step(r.addr == want && r.length == LEN, "import",
		     "edu %s (%s): %s, DMA address %#llx = BAR + offset (CPU physical)",
		     edu, where, map_name(type), (unsigned long long)r.addr);
	return 1;
}

int main(void)
{
	char devs[3][16], edus[2][16], up[32], exp_bdf[16] = "", path[PATH_MAX], buf[64];
	const char *where[2];
	struct p2pdma_import_status s[2] = {};
	struct p2pdma_dmabuf_state st;
	int exp, dbuf, imp[2], can[2], i, n, r;
	uint64_t seed = random_seed();
	struct timespec t0;
	double ms;

	printf("dma-buf of a BAR range, imported by two edus (p2pdma::Exporter, ImportRef)\n");
	if (load_module(EXPORTER, "") || load_module(IMPORTER, IMPORTER_BITS)) {
		step(0, "load", "the samples %s and %s", EXPORTER, IMPORTER);
		return 1;
	}
	n = find_devs(0x1af4, 0x1110, devs, 3);
	for (i = 0; i < n; i++) {
		snprintf(path, sizeof(path), PCI_DEVS "/%s/driver_override", devs[i]);
		if (!read_str(path, buf, sizeof(buf)) && !strcmp(buf, EXPORTER))
			snprintf(exp_bdf, sizeof(exp_bdf), "%.15s", devs[i]);
	}
	exp = exp_bdf[0] ? open_node("dmabuf", exp_bdf) : -1;
	if (exp < 0 || state(exp, &st) || find_devs(0x1234, 0x11e8, edus, 2) != 2) {
		step(0, "find", "the exporter's ivshmem and the two edus");
		return 1;
	}
	/* The edu behind the switch first. */
	for (i = 0; i < 2; i++) {
		parent_of(edus[i], up, sizeof(up));
		where[i] = up[0] ? "behind the switch" : "root bus";
	}
	if (!strcmp(where[0], "root bus")) {
		memcpy(buf, edus[0], 16);
		memcpy(edus[0], edus[1], 16);
		memcpy(edus[1], buf, 16);
		where[1] = where[0];
		where[0] = "behind the switch";
	}

	dbuf = export_one(exp, AT, LEN);
	step(dbuf >= 0, "export",
	     "ivshmem %s: BAR %d (at %#llx) + offset %#llx, 64 KiB: dma-buf fd %d",
	     exp_bdf, BAR, (unsigned long long)st.bar_start, AT, dbuf);
	if (dbuf < 0)
		return 1;
	for (i = 0; i < 2; i++) {
		imp[i] = importer(edus[i], dbuf);
		if (imp[i] < 0) {
			step(0, "import", "edu %s: attach: %s", edus[i], strerror(-imp[i]));
			return 1;
		}
		can[i] = show_map(imp[i], edus[i], where[i], &st);
	}
	if (!can[0])
		return 1;
	for (i = 0; i < 2; i++) {
		if (!can[i])
			continue;
		r = imp_dma(imp[i], i * 0x2000, DMA_LEN, seed + i, 1);
		step(!r, "write", "edu %s wrote %d bytes at offset %#x of the buffer%s%s",
		     edus[i], DMA_LEN, i * 0x2000, r ? ": " : "", r ? strerror(-r) : "");
		hostcheck(AT + i * 0x2000, DMA_LEN, seed + i, 0);
	}

	/* Revoke while the edu behind the switch writes (an edu transfer takes 100 ms). */
	r = imp_dma(imp[0], 0x4000, DMA_LEN, seed + 4, 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (!r && ioctl(exp, P2PDMA_DMABUF_REVOKE))
		r = -errno;
	ms = ms_since(&t0);
	for (i = 0; i < 2 && !r; i++)
		r = imp_status(imp[i], &s[i]);
	step(!r && !s[0].mapped && !s[1].mapped && s[0].invalidations == 1 &&
	     !s[0].dma_busy, "revoke",
	     "REVOKE during a transfer: %.1f ms; by then both importers told and unmapped, transfer done",
	     ms);
	hostcheck(AT + 0x4000, DMA_LEN, seed + 4, 0);
	r = imp_dma(imp[0], 0x6000, DMA_LEN, seed + 6, 1);
	step(r == -ENODEV, "refused", "a write after the revocation: %s; nothing lands",
	     r == -ENODEV ? "ENODEV" : r ? strerror(-r) : "done (!)");
	hostcheck(AT + 0x6000, DMA_LEN, 0, 1);
	r = ioctl(exp, P2PDMA_DMABUF_UNREVOKE) ? -errno : 0;
	if (!r)
		r = imp_dma(imp[0], 0x8000, DMA_LEN, seed + 8, 1);
	step(!r, "re-arm", "UNREVOKE: the edu maps again and writes at offset 0x8000%s%s",
	     r ? ": " : "", r ? strerror(-r) : "");
	hostcheck(AT + 0x8000, DMA_LEN, seed + 8, 0);

	for (i = 0; i < 2; i++)
		close(imp[i]);
	close(dbuf);
	close(exp);
	return failed;
}
