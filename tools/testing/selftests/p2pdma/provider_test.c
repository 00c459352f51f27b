// SPDX-License-Identifier: GPL-2.0
/*
 * kernel::p2pdma on the real QEMU topology, through the debugfs reports of
 * the p2pdma_rs driver (drivers/pci/p2pdma_rs): provider bus offsets, map
 * types, the map-state cache over pgmap pages and pageless providers, p2pmem
 * allocation and finding the closest p2pmem.
 *
 * Topology: NVMe (CMB) and ivshmem-plain behind one PCIe switch, a second
 * ivshmem-plain and an edu device on the root bus. Root-bus pairs map
 * through the host bridge only with a CPU the allowlist accepts (AMD Zen):
 * the expectations follow /proc/cpuinfo.
 */
#include "p2pdma_util.h"
#include "kselftest_harness.h"

#define REPORT_MAX (64 << 10)

/* The whole text of debugfs report @name of the p2pdma_rs device @bdf. */
static char *report(const char *bdf, const char *name)
{
	char path[PATH_MAX], *buf = malloc(REPORT_MAX);
	size_t len = 0;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), DEBUGFS "/p2pdma_rs-%s/%s", bdf, name);
	fd = open(path, O_RDONLY);
	if (fd < 0 || !buf) {
		free(buf);
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	while ((n = read(fd, buf + len, REPORT_MAX - 1 - len)) > 0)
		len += n;
	close(fd);
	buf[len] = '\0';
	return buf;
}

/* The line of @text starting with @prefix (copied into @line), or NULL. */
static char *find_line(const char *text, const char *prefix, char *line, size_t len)
{
	const char *p = text;
	size_t plen = strlen(prefix);

	while (p && *p) {
		const char *end = strchrnul(p, '\n');

		if ((size_t)(end - p) >= plen && !strncmp(p, prefix, plen) &&
		    (size_t)(end - p) < len) {
			memcpy(line, p, end - p);
			line[end - p] = '\0';
			return line;
		}
		p = *end ? end + 1 : NULL;
	}
	return NULL;
}

FIXTURE(topo) {
	char sw[16];		/* ivshmem behind the switch */
	char root[16];		/* ivshmem on the root bus */
	char nvme[16];
	char edu[16];
	const char *no_p2p;	/* the map type of a switch/root-bus pair */
};

FIXTURE_SETUP(topo)
{
	ASSERT_EQ(0, find_ivshmem(self->sw, self->root))
		TH_LOG("expected an ivshmem-plain behind the switch and one on the root bus");
	ASSERT_EQ(1, find_devs(0x1b36, 0x0010, (char (*)[16])self->nvme, 1));
	ASSERT_EQ(1, find_devs(0x1234, 0x11e8, (char (*)[16])self->edu, 1));
	self->no_p2p = cpu_allows_host_bridge() ? "THRU_HOST_BRIDGE" : "NOT_SUPPORTED";
	TH_LOG("switch %s, root %s, NVMe %s, edu %s, root-bus pairs %s",
	       self->sw, self->root, self->nvme, self->edu, self->no_p2p);
}

FIXTURE_TEARDOWN(topo)
{
}

/* A BAR's bus address as the device decodes it: its config-space register. */
static unsigned long long bar_register(const char *bdf, int bar)
{
	char path[PATH_MAX];
	uint32_t lo, hi = 0;
	int fd;

	snprintf(path, sizeof(path), PCI_DEVS "/%s/config", bdf);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return 0;
	if (pread(fd, &lo, 4, 0x10 + 4 * bar) != 4)
		lo = 0;
	if ((lo & 0x6) == 0x4 && pread(fd, &hi, 4, 0x14 + 4 * bar) != 4)
		hi = 0;
	close(fd);
	return ((unsigned long long)hi << 32) | (lo & ~0xfULL);
}

/* Every provider's CPU range and bus offset match what the PCI core has. */
TEST_F(topo, provider_bus_offsets_match_c)
{
	const char *const devs[] = { self->sw, self->root };
	int d, bars;

	for (d = 0; d < 2; d++) {
		char *text = report(devs[d], "providers");
		const char *p;

		ASSERT_NE(NULL, text) TH_LOG("no providers report for %s", devs[d]);
		bars = 0;
		for (p = text; *p; p = strchrnul(p, '\n'), p += !!*p) {
			unsigned long long start, len, off, res_start, res_len, reg;
			char bus[32];
			int bar;

			if (sscanf(p, "bar%d start %llx len %llx bus_offset %llx bus %31s",
				   &bar, &start, &len, &off, bus) != 5)
				continue;
			bars++;
			ASSERT_EQ(0, bar_resource(devs[d], bar, &res_start, &res_len));
			reg = bar_register(devs[d], bar);
			EXPECT_EQ(res_start, start) TH_LOG("%s bar%d start", devs[d], bar);
			EXPECT_EQ(res_len, len) TH_LOG("%s bar%d len", devs[d], bar);
			/* bus_offset = pci_bus_address() - pci_resource_start() */
			EXPECT_EQ(reg - res_start, off) TH_LOG("%s bar%d bus_offset", devs[d], bar);
			/* Whole pages translate; a sub-page BAR is refused (EINVAL). */
			if (len % 4096) {
				EXPECT_STREQ("-22", bus) TH_LOG("%s bar%d", devs[d], bar);
			} else {
				EXPECT_EQ(reg, strtoull(bus, NULL, 0))
					TH_LOG("%s bar%d bus address", devs[d], bar);
			}
		}
		free(text);
		/* ivshmem-plain: BAR0 registers and BAR2 shared memory. */
		EXPECT_EQ(2, bars) TH_LOG("%s: providers for %d BARs", devs[d], bars);
	}
}

/* The map type of provider @prov for @client, from its map_types report. */
static int map_type(const char *prov, const char *client, char *type, size_t len)
{
	char prefix[96], line[256], *text = report(prov, "map_types");
	int ok = -1;

	snprintf(prefix, sizeof(prefix), "%s bar2 %s ", prov, client);
	if (text && find_line(text, prefix, line, sizeof(line))) {
		snprintf(type, len, "%s", line + strlen(prefix));
		type[strcspn(type, " ")] = '\0';
		ok = 0;
	}
	free(text);
	return ok;
}

TEST_F(topo, switch_pair_is_bus_addr)
{
	char type[32], dn[16];

	ASSERT_EQ(0, map_type(self->sw, self->nvme, type, sizeof(type)));
	EXPECT_STREQ("BUS_ADDR", type);
	ASSERT_EQ(0, map_type(self->sw, self->sw, type, sizeof(type)));
	EXPECT_STREQ("BUS_ADDR", type);
	/* The switch port above the provider shares its upstream path. */
	parent_of(self->sw, dn, sizeof(dn));
	ASSERT_EQ(0, map_type(self->sw, dn, type, sizeof(type)));
	EXPECT_STREQ("BUS_ADDR", type);
}

TEST_F(topo, switch_and_root_bus_pair_is_not_p2p)
{
	char type[32];

	ASSERT_EQ(0, map_type(self->sw, self->root, type, sizeof(type)));
	EXPECT_STREQ(self->no_p2p, type);
	ASSERT_EQ(0, map_type(self->sw, self->edu, type, sizeof(type)));
	EXPECT_STREQ(self->no_p2p, type);
	ASSERT_EQ(0, map_type(self->root, self->nvme, type, sizeof(type)));
	EXPECT_STREQ(self->no_p2p, type);
}

TEST_F(topo, root_bus_pair_follows_host_bridge)
{
	char type[32];

	ASSERT_EQ(0, map_type(self->root, self->edu, type, sizeof(type)));
	EXPECT_STREQ(self->no_p2p, type);
	/* A device reaches its own BARs by bus address, wherever it sits. */
	ASSERT_EQ(0, map_type(self->root, self->root, type, sizeof(type)));
	EXPECT_STREQ("BUS_ADDR", type);
}

/*
 * One map state per client walks: the p2pmem BAR as a pageless provider, a
 * pgmap page of it (C's pci_p2pdma_state()), the other BAR, another page.
 * Page and pageless sources of a device must agree, and bus addresses come
 * from the cached provider exactly when the type is BUS_ADDR.
 */
TEST_F(topo, map_state_pages_and_pageless_agree)
{
	const char *const clients[] = { self->nvme, self->sw, self->root, self->edu };
	const char *const want[] = { "BUS_ADDR", "BUS_ADDR", self->no_p2p, self->no_p2p };
	char *text = report(self->sw, "map_state");
	int i, n;

	ASSERT_NE(NULL, text);
	for (i = 0; i < 4; i++) {
		char line[256], prefix[32], a[32], b[32], c[32], d[32], bus[32], e[32];

		snprintf(prefix, sizeof(prefix), "%s ", clients[i]);
		ASSERT_NE(NULL, find_line(text, prefix, line, sizeof(line)))
			TH_LOG("no map_state line for %s", clients[i]);
		n = sscanf(line + strlen(prefix), "%31s %31s %31s %31s %31s %31s",
			   a, b, c, d, bus, e);
		ASSERT_EQ(6, n);
		EXPECT_STREQ(want[i], a) TH_LOG("%s", line);
		EXPECT_STREQ(a, b) TH_LOG("page differs from pageless: %s", line);
		EXPECT_STREQ(a, c) TH_LOG("%s", line);
		EXPECT_STREQ(a, d) TH_LOG("%s", line);
		EXPECT_STREQ(a, e) TH_LOG("pgmap hit differs: %s", line);
		EXPECT_STREQ(strcmp(a, "BUS_ADDR") ? "bus_none" : "bus_ok", bus)
			TH_LOG("%s", line);
	}
	free(text);
}

/* The Rust allocation objects take the whole pool and give all of it back. */
TEST_F(topo, p2pmem_alloc_gives_memory_back)
{
	long size = read_long(self->sw, "p2pmem/size");
	long avail = read_long(self->sw, "p2pmem/available");
	char *text, line[256];
	long taken;

	ASSERT_EQ(16L << 20, size);
	EXPECT_EQ(1, read_long(self->sw, "p2pmem/published"));
	EXPECT_EQ(size, avail);
	text = report(self->sw, "p2pmem_alloc");
	ASSERT_NE(NULL, text);
	ASSERT_NE(NULL, find_line(text, "allocated ", line, sizeof(line)));
	taken = strtol(line + strlen("allocated "), NULL, 0);
	EXPECT_EQ(avail, taken) TH_LOG("%s", line);
	EXPECT_NE(NULL, strstr(line, "chunks_inside_bar yes")) TH_LOG("%s", line);
	EXPECT_NE(NULL, strstr(line, "zero -22")) TH_LOG("%s", line);
	EXPECT_NE(NULL, strstr(line, "when_full -12")) TH_LOG("%s", line);
	free(text);
	EXPECT_EQ(avail, read_long(self->sw, "p2pmem/available"));
}

/*
 * Checks the driver made while probing: mappings, scatterlist, bad input
 * (errnos: ERANGE -34, EINVAL -22, EBUSY -16).
 */
TEST_F(topo, probe_mappings_sgl_and_refusals)
{
	char *text = report(self->sw, "probe"), line[256];
	unsigned long long bus, start, len, reg = bar_register(self->sw, 2);
	unsigned int nents, sglen;
	int n;

	ASSERT_NE(NULL, text);
	ASSERT_EQ(0, bar_resource(self->sw, 2, &start, &len));
	EXPECT_NE(NULL, find_line(text, "mmio bar2 BUS_ADDR addr_ok", line, sizeof(line)))
		TH_LOG("%s", text);
	EXPECT_NE(NULL, find_line(text, "mmio_bad bar2 past_end -34 unaligned -22",
				  line, sizeof(line))) TH_LOG("%s", text);
	ASSERT_NE(NULL, find_line(text, "sgl ", line, sizeof(line))) TH_LOG("%s", text);
	n = sscanf(line, "sgl nents %u len %u bus %llx", &nents, &sglen, &bus);
	ASSERT_EQ(3, n);
	EXPECT_EQ(1, nents);
	EXPECT_EQ(65536, sglen);
	EXPECT_TRUE(bus >= reg && bus + sglen <= reg + len) TH_LOG("%s", line);
	EXPECT_NE(NULL, find_line(text, "add_p2pmem again -16 unaligned -22 outside -22 bar1 -22",
				  line, sizeof(line))) TH_LOG("%s", text);
	free(text);
}

/* The closest published p2pmem for one client (pci_p2pmem_find_many()). */
static int closest(const char *prov, const char *client, char *out, size_t len)
{
	char prefix[32], line[128], *text = report(prov, "closest");
	int ok = -1;

	snprintf(prefix, sizeof(prefix), "%s ", client);
	if (text && find_line(text, prefix, line, sizeof(line))) {
		snprintf(out, len, "%s", line + strlen(prefix));
		ok = 0;
	}
	free(text);
	return ok;
}

TEST_F(topo, find_closest_picks_switch_local)
{
	char got[32], dn_sw[16], dn_nvme[16];

	parent_of(self->sw, dn_sw, sizeof(dn_sw));
	parent_of(self->nvme, dn_nvme, sizeof(dn_nvme));
	/* Below each downstream port, its own device's p2pmem is closest. */
	ASSERT_EQ(0, closest(self->sw, dn_sw, got, sizeof(got)));
	EXPECT_STREQ(self->sw, got);
	ASSERT_EQ(0, closest(self->sw, dn_nvme, got, sizeof(got)));
	EXPECT_STREQ(self->nvme, got);
	/* A provider is closest to itself. */
	ASSERT_EQ(0, closest(self->sw, self->nvme, got, sizeof(got)));
	EXPECT_STREQ(self->nvme, got);
	ASSERT_EQ(0, closest(self->sw, self->root, got, sizeof(got)));
	EXPECT_STREQ(self->root, got);
	/*
	 * The root-bus edu: nothing serves it without the host bridge; through
	 * it, one of the three published providers does.
	 */
	ASSERT_EQ(0, closest(self->sw, self->edu, got, sizeof(got)));
	if (!strcmp(self->no_p2p, "NOT_SUPPORTED")) {
		EXPECT_STREQ("-", got);
	} else {
		EXPECT_TRUE(!strcmp(got, self->sw) || !strcmp(got, self->root) ||
			    !strcmp(got, self->nvme)) TH_LOG("edu -> %s", got);
	}
}

TEST_HARNESS_MAIN
