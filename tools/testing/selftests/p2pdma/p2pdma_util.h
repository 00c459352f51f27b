/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Helpers shared by the p2pdma selftests: sysfs reads and writes, finding
 * the devices of the QEMU topology, BAR ranges, p2pmem mappings and the data
 * pattern the host checks again after the run (harness/hostcheck.py).
 */
#ifndef P2PDMA_UTIL_H
#define P2PDMA_UTIL_H

#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define PCI_DEVS "/sys/bus/pci/devices"
#define PCI_DRV "/sys/bus/pci/drivers/p2pdma_rs"
#define DEBUGFS "/sys/kernel/debug"

/*
 * modprobe @module with @params: 0 once the module is loaded (busybox modprobe
 * may exit with 0 when the kernel refused the module, for example for a
 * parameter it cannot parse).
 */
static inline int load_module(const char *module, const char *params)
{
	char cmd[256], path[PATH_MAX];

	snprintf(cmd, sizeof(cmd), "modprobe %s %s", module, params);
	if (system(cmd))
		return -1;
	snprintf(path, sizeof(path), "/sys/module/%s", module);
	return access(path, F_OK);
}

/* The first line of file @path, without its newline; 0 or -errno. */
static inline int read_str(const char *path, char *buf, size_t len)
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

/* Writes @s to the sysfs file @path in one write(); 0 or -errno. */
static inline int write_str(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = write(fd, s, strlen(s));
	n = n < 0 ? -errno : 0;
	close(fd);
	return n;
}

/* Attribute @attr of PCI device @dev as a number, or -1. */
static inline long read_long(const char *dev, const char *attr)
{
	char path[PATH_MAX], buf[64];

	snprintf(path, sizeof(path), PCI_DEVS "/%s/%s", dev, attr);
	if (read_str(path, buf, sizeof(buf)))
		return -1;
	return strtol(buf, NULL, 0);
}

/* All PCI devices with this vendor:device, in bus order. */
static inline int find_devs(long vendor, long device, char bdfs[][16], int max)
{
	struct dirent **list;
	int i, n, found = 0;

	n = scandir(PCI_DEVS, &list, NULL, alphasort);
	for (i = 0; i < n; i++) {
		const char *name = list[i]->d_name;

		if (name[0] != '.' && strlen(name) < 16 && found < max &&
		    read_long(name, "vendor") == vendor && read_long(name, "device") == device)
			snprintf(bdfs[found++], 16, "%s", name);
		free(list[i]);
	}
	free(list);
	return found;
}

/* The PCI parent of @bdf, or "" on a root bus. */
static inline void parent_of(const char *bdf, char *up, size_t len)
{
	char path[PATH_MAX], real[PATH_MAX], *slash;

	up[0] = '\0';
	snprintf(path, sizeof(path), PCI_DEVS "/%s", bdf);
	if (!realpath(path, real))
		return;
	slash = strrchr(real, '/');
	*slash = '\0';
	slash = strrchr(real, '/');
	if (slash && strncmp(slash + 1, "pci", 3))
		snprintf(up, len, "%s", slash + 1);
}

/* The ivshmem-plain devices: the one behind the switch and the root-bus one. */
static inline int find_ivshmem(char *sw, char *root)
{
	char ivshmem[2][16], up[32];
	int i;

	sw[0] = '\0';
	root[0] = '\0';
	if (find_devs(0x1af4, 0x1110, ivshmem, 2) != 2)
		return -ENODEV;
	for (i = 0; i < 2; i++) {
		parent_of(ivshmem[i], up, sizeof(up));
		snprintf(up[0] ? sw : root, 16, "%.15s", ivshmem[i]);
	}
	return sw[0] && root[0] ? 0 : -ENODEV;
}

/* The driver @bdf is bound to, or "" when none. */
static inline void driver_of(const char *bdf, char *drv, size_t len)
{
	char path[PATH_MAX], real[PATH_MAX];

	drv[0] = '\0';
	snprintf(path, sizeof(path), PCI_DEVS "/%s/driver", bdf);
	if (realpath(path, real))
		snprintf(drv, len, "%s", strrchr(real, '/') + 1);
}

/* Does the guest CPU make the host bridge pass (x86: AMD family >= 0x17)? */
static inline int cpu_allows_host_bridge(void)
{
	char line[256];
	int amd = 0, family = 0;
	FILE *f = fopen("/proc/cpuinfo", "r");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, "vendor_id", 9))
			amd = !!strstr(line, "AuthenticAMD");
		if (!strncmp(line, "cpu family", 10))
			family = atoi(strchr(line, ':') + 1);
		if (line[0] == '\n')
			break;
	}
	fclose(f);
	return amd && family >= 0x17;
}

/* Start and length of @bar from sysfs "resource" (the CPU view). */
static inline int bar_resource(const char *bdf, int bar, unsigned long long *start,
			       unsigned long long *len)
{
	char path[PATH_MAX], line[128];
	unsigned long long end, flags;
	FILE *f;
	int i, ok = -1;

	snprintf(path, sizeof(path), PCI_DEVS "/%s/resource", bdf);
	f = fopen(path, "r");
	if (!f)
		return -1;
	for (i = 0; fgets(line, sizeof(line), f); i++)
		if (i == bar && sscanf(line, "%llx %llx %llx",
				       start, &end, &flags) == 3) {
			*len = end - *start + 1;
			ok = 0;
		}
	fclose(f);
	return ok;
}

/* The block device of the first namespace of NVMe controller @bdf. */
static inline int nvme_namespace(const char *bdf, char *dev, size_t len)
{
	char path[PATH_MAX];
	glob_t g;

	snprintf(path, sizeof(path), PCI_DEVS "/%s/nvme/nvme*/nvme*n1", bdf);
	if (glob(path, 0, NULL, &g))
		return -ENOENT;
	snprintf(dev, len, "/dev/%s", strrchr(g.gl_pathv[0], '/') + 1);
	globfree(&g);
	return 0;
}

/* A shared mapping of @len bytes of @bdf's p2pmem (sysfs p2pmem/allocate). */
static inline void *p2pmem_map(const char *bdf, size_t len, int *fdp)
{
	char path[PATH_MAX];
	void *p;
	int fd;

	snprintf(path, sizeof(path), PCI_DEVS "/%s/p2pmem/allocate", bdf);
	fd = open(path, O_RDWR);
	if (fd < 0)
		return MAP_FAILED;
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		int err = errno;

		close(fd);
		errno = err;
		return MAP_FAILED;
	}
	*fdp = fd;
	return p;
}

/*
 * The physical address behind the mapping @p of @len bytes, from
 * /proc/self/pagemap; -1 unless every page is present and the pages are
 * physically contiguous.
 */
static inline long long phys_of(const void *p, size_t len)
{
	long psz = sysconf(_SC_PAGESIZE);
	uint64_t e, first = 0;
	size_t i, n = len / psz;
	int fd = open("/proc/self/pagemap", O_RDONLY);

	if (fd < 0)
		return -1;
	for (i = 0; i < n; i++) {
		off_t at = ((uintptr_t)p / psz + i) * sizeof(e);

		if (pread(fd, &e, sizeof(e), at) != sizeof(e) || !(e >> 63))
			break;
		e &= (1ULL << 55) - 1;
		if (i == 0)
			first = e;
		else if (e != first + i)
			break;
	}
	close(fd);
	return i == n && first ? (long long)(first * psz) : -1;
}

/* Where in BAR @bar of @bdf the mapping @p is, or -1 when not inside it. */
static inline long long bar_offset(const char *bdf, int bar, const void *p, size_t len)
{
	unsigned long long start, blen;
	long long phys = phys_of(p, len);

	if (phys < 0 || bar_resource(bdf, bar, &start, &blen))
		return -1;
	if ((unsigned long long)phys < start || phys + len > start + blen)
		return -1;
	return phys - start;
}

/*
 * The data pattern: 64-bit word @i of a buffer filled with @seed
 * (splitmix64). harness/hostcheck.py computes the same words.
 */
static inline uint64_t pattern_word(uint64_t seed, uint64_t i)
{
	uint64_t z = seed + (i + 1) * 0x9e3779b97f4a7c15ULL;

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static inline void pattern_fill(void *buf, size_t len, uint64_t seed)
{
	uint64_t *w = buf;
	size_t i;

	for (i = 0; i < len / 8; i++)
		w[i] = pattern_word(seed, i);
}

/* The byte offset of the first word that differs from the pattern, or -1. */
static inline long pattern_check(const void *buf, size_t len, uint64_t seed)
{
	const uint64_t *w = buf;
	size_t i;

	for (i = 0; i < len / 8; i++)
		if (w[i] != pattern_word(seed, i))
			return i * 8;
	return -1;
}

/* A seed that differs from run to run, so stale data never matches. */
static inline uint64_t random_seed(void)
{
	uint64_t seed = 0;
	int fd = open("/dev/urandom", O_RDONLY);

	if (fd >= 0) {
		if (read(fd, &seed, sizeof(seed)) != sizeof(seed))
			seed = 0;
		close(fd);
	}
	return seed ? seed : (uint64_t)getpid() << 32 | (uint64_t)time(NULL);
}

#endif /* P2PDMA_UTIL_H */
