/* SPDX-License-Identifier: GPL-2.0 */
/*
 * pages_test and pages_unplug_test (each file includes this one).
 *
 * One BAR range both mapped into user space with struct pages and exported
 * through dma-buf (kernel::p2pdma::PagesExporter: the exporter sample's pages
 * mode, /dev/p2pdma-pages-<bdf>), revoked in three stages: the user mappings
 * are zapped, the pages pinned by I/O in flight come back, the importers are
 * invalidated and unmap.
 *
 * The exporter sample owns the fifth ivshmem-plain (behind the switch, BAR 2
 * is the host file shm/ivshmem-pages), loaded with pages=8: the first 8 MiB
 * of BAR 2. Four readers keep O_DIRECT reads from the NVMe behind the switch
 * going into a user mapping of it, while the edu behind the switch writes into
 * a dma-buf of it. The BAR is also mapped through sysfs (resource2), beside
 * the pages, so that the test can see what is there while the pages are
 * revoked. Each test has its own 2 MiB of the range (reads, transfers, checks
 * after the re-arm), the first test the ends of the first two, the reset test
 * [5.5, 5.75) MiB; [6, 8) MiB is where nothing may land after a revocation.
 *
 * pages_unplug_test is the hot-unplug test, built on its own: it runs after
 * dmabuf_test, last, because every PCIe hot-unplug in QEMU makes
 * lockdep report a lock order problem of pciehp (upstream) and switch itself
 * off; the unbind test covers the same path with lockdep on.
 */
#include "p2pdma_util.h"
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include "dmabuf_util.h"
#include "kselftest_harness.h"

#define RANGE		0x800000ULL
#define RLEN		0x40000ULL		/* one O_DIRECT read */
#define READERS		4			/* reader r: base + r * RLEN */
#define DMA_AT		0x100000ULL		/* base + this: the importer's dma-buf */
#define DMA_SLOTS	32			/* transfers go 8 KiB apart */
#define DMA_BUF		0x80000			/* the dma-buf: twice the slots */
#define AFTER_AT	0x180000ULL		/* base + this: I/O after the re-arm */
#define RESERVED	0x600000ULL		/* [6, 8) MiB: nothing lands there */
#define CHUNKS		16			/* on the NVMe, RLEN each */
#define NVME_AT		0x2800000ULL		/* 40 MiB: unused by the other tests */
#define SHM		"ivshmem-pages"
/* Shared with other threads (FIXTURE_DATA(pages) is struct _test_data_pages). */
#define LOAD(x)		__atomic_load_n(&(x), __ATOMIC_SEQ_CST)
#define STORE(x, v)	__atomic_store_n(&(x), (v), __ATOMIC_SEQ_CST)
#define UNPLUG "{\"execute\": \"device_del\", \"arguments\": {\"id\": \"ivshmem4\"}}"

FIXTURE(pages) {
	char bdf[16];		/* the ivshmem in pages mode */
	char edu[16];		/* edu behind the switch */
	char blk[PATH_MAX];	/* the NVMe namespace */
	int node;
	uint8_t *map;		/* the node's mapping: the range */
	int resfd;
	uint8_t *bar;		/* resource2: BAR 2 as the CPU sees it */
	struct p2pdma_dmabuf_state st;
	uint64_t seed;
};

/* rmmod without waiting: 0, or -errno. */
static int unload(const char *module)
{
	int i, err = 0;

	/* dma-buf files are released after close(), by a deferred fput(). */
	for (i = 0; i < 100; i++) {
		if (!syscall(__NR_delete_module, module, O_NONBLOCK))
			return 0;
		err = -errno;
		if (err == -ENOENT)
			return 0;
		usleep(20000);
	}
	return err;
}

static int pages_info(int node, struct p2pdma_dmabuf_pages *p)
{
	memset(p, 0xff, sizeof(*p));
	return ioctl(node, P2PDMA_DMABUF_PAGES, p) ? -errno : 0;
}

/* Maps the range of @node; MAP_FAILED with errno on failure. */
static uint8_t *map_range(int node)
{
	return mmap(NULL, RANGE, PROT_READ | PROT_WRITE, MAP_SHARED, node, 0);
}

/* Touches @p in a child: the signal that killed it, or 0. */
static inline int touch(uint8_t *p, int write)
{
	int status;
	pid_t pid = fork();

	if (pid < 0)
		return -1;
	if (!pid) {
		if (write)
			__atomic_store_n(p, 1, __ATOMIC_RELAXED);
		else
			__atomic_load_n(p, __ATOMIC_RELAXED);
		_exit(0);
	}
	if (waitpid(pid, &status, 0) != pid)
		return -1;
	return WIFSIGNALED(status) ? WTERMSIG(status) : 0;
}

static sigjmp_buf bus_jmp;

static void on_sigbus(int sig)
{
	siglongjmp(bus_jmp, 1);
}

/*
 * Reads @p in this process (other threads may run): 1 if that raised SIGBUS.
 * (A child would not do: after a zap, fork() has no page table entry to copy,
 * so the child faults whether or not the parent's entry was zapped.)
 */
static int bus_here(uint8_t *p)
{
	struct sigaction sa = { .sa_handler = on_sigbus }, old;
	int bus = 0;

	sigaction(SIGBUS, &sa, &old);
	if (sigsetjmp(bus_jmp, 1))
		bus = 1;
	else
		__atomic_load_n(p, __ATOMIC_RELAXED);
	sigaction(SIGBUS, &old, NULL);
	return bus;
}

/* Whether the @len bytes at @buf are words @first... of the pattern of @seed. */
static int pattern_at(const void *buf, size_t len, uint64_t seed, uint64_t first)
{
	const uint64_t *w = buf;
	size_t i;

	for (i = 0; i < len / 8; i++)
		if (w[i] != pattern_word(seed, first + i))
			return 0;
	return 1;
}

/* Chunk @c on the NVMe: RLEN bytes of the pattern of seed + 1 + c. */
static uint64_t chunk_seed(uint64_t seed, int c)
{
	return seed + 1 + c;
}

FIXTURE_SETUP(pages)
{
	char devs[8][16], edus[2][16], nvme[1][16], up[32], path[PATH_MAX], buf[64];
	struct p2pdma_dmabuf_pages pg;
	void *data;
	int i, n, fd;

	self->node = -1;
	self->resfd = -1;
	self->map = MAP_FAILED;
	self->bar = MAP_FAILED;
	self->seed = random_seed();
	/*
	 * The last ivshmem in bus order (the fifth; dmabuf_test, which runs
	 * before pages_unplug_test, unplugs the third).
	 */
	n = find_devs(0x1af4, 0x1110, devs, 8);
	ASSERT_LE(4, n) TH_LOG("harness/qemu.sh has five ivshmem-plain");
	snprintf(path, sizeof(path), PCI_DEVS "/%s/driver_override", devs[n - 1]);
	ASSERT_EQ(0, read_str(path, buf, sizeof(buf)));
	ASSERT_STREQ(EXPORTER, buf);
	snprintf(self->bdf, 16, "%.15s", devs[n - 1]);
	ASSERT_EQ(2, find_devs(0x1234, 0x11e8, edus, 2));
	for (i = 0; i < 2; i++) {
		parent_of(edus[i], up, sizeof(up));
		if (up[0])
			snprintf(self->edu, 16, "%.15s", edus[i]);
	}
	ASSERT_NE('\0', self->edu[0]);
	ASSERT_EQ(1, find_devs(0x1b36, 0x0010, nvme, 1));
	ASSERT_EQ(0, nvme_namespace(nvme[0], self->blk, sizeof(self->blk)));

	/* The chunks the readers read, from system memory. */
	fd = open(self->blk, O_WRONLY | O_DIRECT);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, posix_memalign(&data, 4096, RLEN));
	for (i = 0; i < CHUNKS; i++) {
		pattern_fill(data, RLEN, chunk_seed(self->seed, i));
		ASSERT_EQ((ssize_t)RLEN, pwrite(fd, data, RLEN, NVME_AT + i * RLEN));
	}
	free(data);
	close(fd);

	ASSERT_EQ(0, unload(EXPORTER));
	ASSERT_EQ(0, load_module(EXPORTER, "pages=8"));
	ASSERT_EQ(0, load_module(IMPORTER, IMPORTER_BITS));
	self->node = open_node("pages", self->bdf);
	ASSERT_LE(0, self->node) TH_LOG("open /dev/p2pdma-pages-%s: %s", self->bdf,
					strerror(errno));
	ASSERT_EQ(0, state(self->node, &self->st));
	ASSERT_EQ(16 << 20, self->st.bar_len);
	ASSERT_EQ(0, pages_info(self->node, &pg));
	ASSERT_EQ(0, pg.offset);
	ASSERT_EQ(RANGE, pg.length);
	self->map = map_range(self->node);
	ASSERT_NE(MAP_FAILED, self->map) TH_LOG("mmap: %s", strerror(errno));
	snprintf(path, sizeof(path), PCI_DEVS "/%s/resource2", self->bdf);
	self->resfd = open(path, O_RDWR | O_SYNC);
	ASSERT_LE(0, self->resfd);
	self->bar = mmap(NULL, 16 << 20, PROT_READ | PROT_WRITE, MAP_SHARED, self->resfd, 0);
	ASSERT_NE(MAP_FAILED, self->bar) TH_LOG("mmap resource2: %s", strerror(errno));
}

FIXTURE_TEARDOWN(pages)
{
	if (self->bar != MAP_FAILED)
		munmap((void *)self->bar, 16 << 20);
	if (self->resfd >= 0)
		close(self->resfd);
	if (self->map != MAP_FAILED)
		munmap(self->map, RANGE);
	if (self->node >= 0)
		close(self->node);
	/* The other tests load the exporter as they need it. */
	unload(EXPORTER);
}

struct reader {
	pthread_t t;
	int blk, r;
	uint8_t *dst;
	uint64_t seed;
	uint64_t inflight;	/* read k of chunk c started last: k << 8 | c (LOAD) */
	long ok;		/* reads done in full (LOAD) */
	int last;		/* chunk of the last of them (LOAD) */
	int err;			/* errno of the read that ended the loop, SHORT */
	ssize_t short_len;		/* SHORT: the bytes it read, of chunk short_chunk */
	int short_chunk;
};

/* A read that pinned part of its buffer before the zap, and read that much. */
#define SHORT	-1

/* O_DIRECT reads of the NVMe into the pages until one fails. */
static void *read_loop(void *arg)
{
	struct reader *rd = arg;
	long k;

	for (k = 0;; k++) {
		int c = (rd->r * 5 + k) % CHUNKS;	/* never the chunk already there */
		ssize_t n;

		STORE(rd->inflight, (uint64_t)k << 8 | c);
		n = pread(rd->blk, rd->dst, RLEN, NVME_AT + c * RLEN);
		if (n != (ssize_t)RLEN) {
			rd->err = n < 0 ? errno : SHORT;
			rd->short_len = n;
			rd->short_chunk = c;
			return NULL;
		}
		STORE(rd->last, c);
		STORE(rd->ok, k + 1);
	}
}

struct traffic {
	uint64_t base;		/* of the test's 2 MiB */
	int dma;		/* the importer writes all along */
	struct reader rd[READERS];
	int buf, imp;
	pthread_t dma_t;
	uint64_t dma_seed;	/* transfer i writes the pattern of dma_seed + i */
	long dma_ok;		/* transfers done (LOAD) */
	int dma_err;
	int landed[READERS];	/* at the snapshot: the read in flight had landed */
	uint64_t snap[READERS];	/* inflight at the snapshot */
	uint8_t *copy;		/* the readers' slots at the snapshot */
};

/* Transfers by the edu into the dma-buf until one fails. */
static void *dma_loop(void *arg)
{
	struct traffic *t = arg;
	long i;

	for (i = 0;; i++) {
		int err = imp_dma(t->imp, (i % DMA_SLOTS) * 0x2000, DMA_LEN, t->dma_seed + i, 1);

		if (err) {
			t->dma_err = -err;
			return NULL;
		}
		STORE(t->dma_ok, i + 1);
	}
}

/*
 * Starts the readers, and with @dma the importer writing all along, on the
 * test's 2 MiB at @base. (Without importer, a revocation returns right after
 * stage 2: an importer's invalidation takes milliseconds, 100 ms with an edu
 * transfer in flight, which would hide a stage 2 that did not wait for the
 * reads.)
 */
static void start_traffic(struct __test_metadata *_metadata, struct _test_data_pages *self,
			  struct traffic *t, uint64_t base, int dma)
{
	struct p2pdma_import_range m;
	__u32 type = ~0u;
	int r, i;

	memset(t, 0, sizeof(*t));
	t->base = base;
	t->dma = dma;
	t->dma_seed = self->seed + 0x1000 + base;
	t->imp = -1;
	t->buf = export_one(self->node, base + DMA_AT, DMA_BUF);
	ASSERT_LE(0, t->buf) TH_LOG("export: %s", strerror(-t->buf));
	if (dma) {
		t->imp = importer(self->edu, t->buf);
		ASSERT_LE(0, t->imp) TH_LOG("attach: %s", strerror(-t->imp));
		ASSERT_EQ(1, imp_map(t->imp, &m, 1, &type));
		ASSERT_EQ(P2PDMA_MAP_BUS_ADDR, type);
		ASSERT_EQ(self->st.bar_start + self->st.bus_offset + base + DMA_AT, m.addr);
	}
	for (r = 0; r < READERS; r++) {
		struct reader *rd = &t->rd[r];

		rd->r = r;
		rd->dst = self->map + base + r * RLEN;
		rd->blk = open(self->blk, O_RDONLY | O_DIRECT);
		ASSERT_LE(0, rd->blk);
		ASSERT_EQ(0, pthread_create(&rd->t, NULL, read_loop, rd));
	}
	if (dma)
		ASSERT_EQ(0, pthread_create(&t->dma_t, NULL, dma_loop, t));
	/* Until every reader and the importer have done one in full. */
	for (i = 0; i < 1000; i++) {
		int all = !dma || LOAD(t->dma_ok) > 0;

		for (r = 0; r < READERS; r++)
			all &= LOAD(t->rd[r].ok) > 0;
		if (all)
			break;
		usleep(10000);
	}
	ASSERT_LT(i, 1000) TH_LOG("no traffic after 10 s");
}

/*
 * Right after a revocation: for the read each reader started last, whether its
 * bytes are in the BAR already (the CPU view, beside the pages), and a copy of
 * the readers' slots.
 */
static inline void snapshot(struct _test_data_pages *self, struct traffic *t)
{
	int r;

	for (r = 0; r < READERS; r++)
		t->snap[r] = LOAD(t->rd[r].inflight);
	/* First the copy, as soon as possible; then look at it. */
	t->copy = malloc(READERS * RLEN);
	if (!t->copy)
		return;
	memcpy(t->copy, self->bar + t->base, READERS * RLEN);
	for (r = 0; r < READERS; r++)
		t->landed[r] = pattern_check(t->copy + r * RLEN, RLEN,
					     chunk_seed(self->seed, t->snap[r] & 0xff)) < 0;
}

/*
 * After the revocation that @snapshot followed: the readers and the importer
 * end with @err (their next I/O is refused); a read that was in flight and
 * completed in full had landed when the revocation returned; nothing landed
 * since; the bytes of each reader's last read and of the last transfer are
 * where they belong, and (@final: no later I/O goes there) the host checks them.
 */
static void stop_traffic(struct __test_metadata *_metadata, struct _test_data_pages *self,
			 struct traffic *t, int err, int bar_readable, int final)
{
	int r;

	for (r = 0; r < READERS; r++) {
		struct reader *rd = &t->rd[r];

		uint8_t *slot = self->bar + t->base + r * RLEN;
		size_t head = 0;

		ASSERT_EQ(0, pthread_join(rd->t, NULL));
		close(rd->blk);
		EXPECT_TRUE(rd->err == err || rd->err == SHORT)
			TH_LOG("reader %d: %s", r, strerror(rd->err));
		if (bar_readable && t->copy && rd->ok > (long)(t->snap[r] >> 8))
			EXPECT_TRUE(t->landed[r])
				TH_LOG("reader %d: read %llu completed after the revocation", r,
				       (unsigned long long)(t->snap[r] >> 8));
		ASSERT_LT(0, rd->ok);
		/*
		 * A short read (its buffer was pinned in part when the zap came)
		 * put the head of its chunk before the last full read's data.
		 */
		if (rd->err == SHORT)
			head = rd->short_len;
		if (bar_readable) {
			EXPECT_TRUE(pattern_at(slot, head, chunk_seed(self->seed, rd->short_chunk),
					       0));
			EXPECT_TRUE(pattern_at(slot + head, RLEN - head,
					       chunk_seed(self->seed, rd->last), head / 8));
		}
		if (final && head)
			hostcheck_in(SHM, t->base + r * RLEN, head,
				     chunk_seed(self->seed, rd->short_chunk), 0);
		else if (final)
			hostcheck_in(SHM, t->base + r * RLEN, RLEN,
				     chunk_seed(self->seed, rd->last), 0);
	}
	if (bar_readable && t->copy)
		EXPECT_EQ(0, memcmp(t->copy, self->bar + t->base, READERS * RLEN))
			TH_LOG("a read landed after the revocation");
	free(t->copy);
	if (!t->dma)
		return;
	ASSERT_EQ(0, pthread_join(t->dma_t, NULL));
	EXPECT_EQ(ENODEV, t->dma_err);
	ASSERT_LT(0, t->dma_ok);
	if (final) {
		long last = t->dma_ok - 1;

		hostcheck_in(SHM, t->base + DMA_AT + (last % DMA_SLOTS) * 0x2000, DMA_LEN,
			     t->dma_seed + last, 0);
	}
}

static void close_traffic(struct traffic *t)
{
	if (t->imp >= 0)
		close(t->imp);
	close(t->buf);
}

#ifndef PAGES_UNPLUG_TEST
/* The mapping is the BAR; O_DIRECT and the importer's DMA land in it. */
TEST_F(pages, mapping_is_the_bar_and_io_lands_in_it)
{
	struct p2pdma_import_range m;
	const uint64_t at = 0x1c0000, dma_at = 0x3c0000;	/* the spare ends */
	uint8_t *p;
	__u32 type = ~0u;
	int blk, buf, imp;

	/* Touch every page: they map at the BAR, contiguously, from its start. */
	memset(self->map, 0, RANGE);
	EXPECT_EQ(0, bar_offset(self->bdf, BAR, self->map, RANGE));

	blk = open(self->blk, O_RDONLY | O_DIRECT);
	ASSERT_LE(0, blk);
	ASSERT_EQ((ssize_t)RLEN, pread(blk, self->map + at, RLEN, NVME_AT + 3 * RLEN))
		TH_LOG("O_DIRECT into the pages: %s", strerror(errno));
	EXPECT_EQ(-1, pattern_check(self->map + at, RLEN, chunk_seed(self->seed, 3)));
	EXPECT_EQ(-1, pattern_check((void *)(self->bar + at), RLEN, chunk_seed(self->seed, 3)));
	hostcheck_in(SHM, at, RLEN, chunk_seed(self->seed, 3), 0);
	close(blk);

	buf = export_one(self->node, dma_at, 0x10000);
	ASSERT_LE(0, buf);
	imp = importer(self->edu, buf);
	ASSERT_LE(0, imp);
	ASSERT_EQ(1, imp_map(imp, &m, 1, &type));
	EXPECT_EQ(P2PDMA_MAP_BUS_ADDR, type);
	EXPECT_EQ(self->st.bar_start + self->st.bus_offset + dma_at, m.addr);
	ASSERT_EQ(0, imp_dma(imp, 0x1000, DMA_LEN, self->seed, 1));
	EXPECT_EQ(-1, pattern_check(self->map + dma_at + 0x1000, DMA_LEN, self->seed));
	hostcheck_in(SHM, dma_at + 0x1000, DMA_LEN, self->seed, 0);
	close(imp);
	close(buf);

	/* What the node refuses. */
	p = mmap(NULL, 0x1000, PROT_READ | PROT_WRITE, MAP_PRIVATE, self->node, 0);
	EXPECT_EQ(MAP_FAILED, p);
	EXPECT_EQ(EINVAL, errno);
	p = mmap(NULL, 0x2000, PROT_READ | PROT_WRITE, MAP_SHARED, self->node, RANGE - 0x1000);
	EXPECT_EQ(MAP_FAILED, p);
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-EINVAL, export_one(self->node, RANGE - 0x1000, 0x2000));
	EXPECT_EQ(-EINVAL, export_one(self->node, RANGE, 0x1000));
}

/* REVOKE with traffic @t started: the checks of each stage, when it returns. */
static int revoke_and_check(struct __test_metadata *_metadata, struct _test_data_pages *self,
			    struct traffic *t, int final)
{
	struct p2pdma_import_status is;
	struct p2pdma_dmabuf_pages pg;
	struct p2pdma_dmabuf_state st;

	if (ioctl(self->node, P2PDMA_DMABUF_REVOKE)) {
		TH_LOG("REVOKE: %s", strerror(errno));
		return -1;
	}
	snapshot(self, t);
	if (pages_info(self->node, &pg))
		return -1;
	/*
	 * Stage 2 is done: no page is referenced but by the exporter (the page
	 * refcounts; the reads hold their pins until they complete).
	 */
	EXPECT_EQ(0, pg.busy_pages);
	/* Stage 3 is done: the importer has unmapped. */
	if (t->imp >= 0) {
		EXPECT_EQ(0, imp_status(t->imp, &is));
		EXPECT_EQ(0, is.mapped);
		EXPECT_LE(1, is.invalidations);
		EXPECT_EQ(0, is.dma_busy);
	}
	EXPECT_EQ(0, state(self->node, &st));
	EXPECT_EQ(1, st.revoked);
	EXPECT_EQ(0, st.mappings);
	/* Stage 1: the mapping is gone. */
	EXPECT_EQ(1, bus_here(self->map + t->base + RLEN));
	stop_traffic(_metadata, self, t, EFAULT, 1, final);
	TH_LOG("%s: waited for %u pinned pages; stages %llu/%llu/%llu us",
	       t->dma ? "reads and transfers" : "reads alone", pg.waited_pages,
	       (unsigned long long)pg.zap_ns / 1000, (unsigned long long)pg.wait_ns / 1000,
	       (unsigned long long)pg.invalidate_ns / 1000);
	return pg.waited_pages;
}

/*
 * REVOKE under O_DIRECT reads and importer DMA: when it returns, the mapping
 * gives SIGBUS, the reads it waited for have landed, the importer has
 * unmapped; new reads and transfers are refused (zeros in the reserved part).
 * First with reads alone, until a revocation had to wait for pinned pages (so
 * that stage 2 was tested, not assumed: a stage 2 that does not wait fails
 * here), then with the importer's transfers going too. After UNREVOKE, all
 * works again.
 */
TEST_F_TIMEOUT(pages, revoke_waits_for_mappings_io_and_importers, 300)
{
	struct p2pdma_import_range m;
	struct traffic t;
	int round, waited = 0, blk, buf;

	for (round = 0; round < 10 && waited <= 0; round++) {
		start_traffic(_metadata, self, &t, 0, 0);
		waited = revoke_and_check(_metadata, self, &t, 0);
		close_traffic(&t);
		ASSERT_LE(0, waited);
		ASSERT_EQ(0, ioctl(self->node, P2PDMA_DMABUF_UNREVOKE));
	}
	ASSERT_LT(0, waited) TH_LOG("no revocation caught a read in flight in %d rounds", round);
	start_traffic(_metadata, self, &t, 0, 1);
	ASSERT_LE(0, revoke_and_check(_metadata, self, &t, 1));

	/* While revoked: new reads, maps, attaches and transfers are refused. */
	EXPECT_EQ(SIGBUS, touch(self->map + RESERVED, 1));
	blk = open(self->blk, O_RDONLY | O_DIRECT);
	ASSERT_LE(0, blk);
	EXPECT_EQ(-1, pread(blk, self->map + RESERVED, RLEN, NVME_AT));
	EXPECT_EQ(EFAULT, errno);
	EXPECT_EQ(-ENODEV, imp_map(t.imp, &m, 1, NULL));
	EXPECT_EQ(-ENODEV, imp_dma(t.imp, 0, DMA_LEN, self->seed, 1));
	buf = export_one(self->node, RESERVED, 0x200000);
	ASSERT_LE(0, buf);
	EXPECT_EQ(-ENODEV, importer(self->edu, buf));
	hostcheck_in(SHM, RESERVED, 0x200000, 0, 1);

	/* UNREVOKE: the same mapping, O_DIRECT and the importer work again. */
	ASSERT_EQ(0, ioctl(self->node, P2PDMA_DMABUF_UNREVOKE));
	EXPECT_EQ(0, touch(self->map + AFTER_AT, 1));
	ASSERT_EQ((ssize_t)RLEN, pread(blk, self->map + AFTER_AT, RLEN, NVME_AT + 7 * RLEN));
	EXPECT_EQ(-1, pattern_check(self->map + AFTER_AT, RLEN, chunk_seed(self->seed, 7)));
	hostcheck_in(SHM, AFTER_AT, RLEN, chunk_seed(self->seed, 7), 0);
	ASSERT_EQ(1, imp_map(t.imp, &m, 1, NULL));
	ASSERT_EQ(0, imp_dma(t.imp, DMA_BUF / 2, DMA_LEN, self->seed + 5, 1));
	EXPECT_EQ(-1, pattern_check(self->map + DMA_AT + DMA_BUF / 2, DMA_LEN, self->seed + 5));
	hostcheck_in(SHM, DMA_AT + DMA_BUF / 2, DMA_LEN, self->seed + 5, 0);
	close(blk);
	close(buf);
	close_traffic(&t);
}

/*
 * Every mapping of the range is zapped, however it came about: the node's
 * second file, a read-only file (MAP_SHARED without write), a mapping split
 * by munmap(), one moved by mremap(), and the copy a child inherited by
 * fork() before the revocation. All work again after UNREVOKE.
 */
TEST_F(pages, every_mapping_is_zapped)
{
	const long pg = 0x1000;
	uint8_t *m[6], *split, *moved, *spot;
	int fd2, ro, pipefd[2], status, i;
	char path[PATH_MAX];
	pid_t child;
	char c = 0;

	fd2 = open_node("pages", self->bdf);
	ASSERT_LE(0, fd2);
	snprintf(path, sizeof(path), "/dev/p2pdma-pages-%s", self->bdf);
	ro = open(path, O_RDONLY | O_CLOEXEC);
	ASSERT_LE(0, ro);
	m[0] = self->map;
	m[1] = mmap(NULL, 2 * pg, PROT_READ, MAP_SHARED, fd2, 0x5c0000);
	ASSERT_NE(MAP_FAILED, m[1]);
	m[2] = mmap(NULL, pg, PROT_READ, MAP_SHARED, ro, 0x5c0000);
	ASSERT_NE(MAP_FAILED, m[2]) TH_LOG("MAP_SHARED of a read-only file: %s", strerror(errno));
	split = mmap(NULL, 3 * pg, PROT_READ, MAP_SHARED, self->node, 0x5c0000);
	ASSERT_NE(MAP_FAILED, split);
	ASSERT_EQ(0, munmap(split + pg, pg));
	m[3] = split;
	m[4] = split + 2 * pg;
	moved = mmap(NULL, pg, PROT_READ, MAP_SHARED, self->node, 0x5c0000);
	ASSERT_NE(MAP_FAILED, moved);
	/* A free spot to move it to. */
	spot = mmap(NULL, pg, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, spot);
	for (i = 0; i < 5; i++)
		ASSERT_EQ(0, bus_here(m[i]));
	ASSERT_EQ(0, bus_here(moved));
	m[5] = mremap(moved, pg, pg, MREMAP_MAYMOVE | MREMAP_FIXED, spot);
	ASSERT_EQ(spot, m[5]);
	ASSERT_EQ(0, pipe(pipefd));
	child = fork();
	ASSERT_LE(0, child);
	if (!child) {
		/* After the revocation: the entry fork() copied must be gone. */
		if (read(pipefd[0], &c, 1) != 1)
			_exit(2);
		_exit(bus_here(m[1]) ? 0 : 1);
	}
	close(pipefd[0]);

	ASSERT_EQ(0, ioctl(self->node, P2PDMA_DMABUF_REVOKE));
	ASSERT_EQ(1, write(pipefd[1], "r", 1));
	close(pipefd[1]);
	for (i = 0; i < 6; i++)
		EXPECT_EQ(1, bus_here(m[i])) TH_LOG("mapping %d still maps after REVOKE", i);
	ASSERT_EQ(child, waitpid(child, &status, 0));
	EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
		TH_LOG("the child's inherited mapping still maps after REVOKE");

	ASSERT_EQ(0, ioctl(self->node, P2PDMA_DMABUF_UNREVOKE));
	for (i = 0; i < 6; i++)
		EXPECT_EQ(0, bus_here(m[i])) TH_LOG("mapping %d does not map after UNREVOKE", i);
	munmap(m[1], 2 * pg);
	munmap(m[2], pg);
	munmap(m[3], pg);
	munmap(m[4], pg);
	munmap(m[5], pg);
	close(ro);
	close(fd2);
}

#define PINNERS		192		/* readers of the reset test */
#define PIN_AT		0x580000ULL	/* 256 KiB that no other test uses */
#define PIN_PAGES	64

struct pinner {
	pthread_t t;
	int blk;
	uint8_t *dst;
	int err;		/* errno of the read that ended the loop (LOAD) */
	int *started;		/* counts the pinners that started (atomic) */
};

/* 4 KiB O_DIRECT reads into one page until one fails: a pin held all along. */
static void *pin_loop(void *arg)
{
	struct pinner *p = arg;
	long k;

	__atomic_add_fetch(p->started, 1, __ATOMIC_SEQ_CST);
	for (k = 0;; k++)
		if (pread(p->blk, p->dst, 0x1000, NVME_AT + (k % CHUNKS) * RLEN) != 0x1000) {
			STORE(p->err, errno ? errno : EIO);
			return NULL;
		}
}

struct revoker {
	int node;
	int ret;		/* of the REVOKE ioctl: 0 or errno */
	int done;		/* LOAD */
};

static void *revoke_thread(void *arg)
{
	struct revoker *rv = arg;

	rv->ret = ioctl(rv->node, P2PDMA_DMABUF_REVOKE) ? errno : 0;
	STORE(rv->done, 1);
	return NULL;
}

/*
 * A reset never waits behind a user's revocation. PINNERS threads keep 4 KiB
 * O_DIRECT reads queued at the NVMe (throttled to 50 reads a second in check
 * boots, so the pins taken before a zap last seconds); a user's REVOKE waits
 * in stage 2 for all of them. A sysfs reset of the exporter's device during
 * that wait revokes for the reset (its own stage 2 gives up after
 * PAGES_RESET_WAIT, 1 s) and returns while the user's REVOKE still waits: it
 * did not wait behind the REVOKE, which would deadlock where the I/O that
 * holds the pins waits for the reset (a bus reset that also stops the NVMe).
 * The REVOKE then returns with every page back, the reset's re-arm does not
 * undo it, and UNREVOKE maps again.
 */
TEST_F_TIMEOUT(pages, reset_does_not_wait_behind_a_user_revoke, 120)
{
	struct p2pdma_dmabuf_pages pg;
	struct p2pdma_dmabuf_state st;
	struct pinner *pin;
	struct revoker rv = { .node = self->node };
	pthread_attr_t attr;
	pthread_t rt;
	char path[PATH_MAX];
	int i, busy = 0, started = 0;

	snprintf(path, sizeof(path), PCI_DEVS "/%s/reset", self->bdf);
	ASSERT_EQ(0, access(path, W_OK)) TH_LOG("%s cannot be reset: %s", self->bdf,
						strerror(errno));
	pin = calloc(PINNERS, sizeof(*pin));
	ASSERT_NE(NULL, pin);
	ASSERT_EQ(0, pthread_attr_init(&attr));
	ASSERT_EQ(0, pthread_attr_setstacksize(&attr, 64 << 10));
	for (i = 0; i < PINNERS; i++) {
		pin[i].dst = self->map + PIN_AT + (i % PIN_PAGES) * 0x1000;
		pin[i].started = &started;
		pin[i].blk = open(self->blk, O_RDONLY | O_DIRECT);
		ASSERT_LE(0, pin[i].blk);
		ASSERT_EQ(0, pthread_create(&pin[i].t, &attr, pin_loop, &pin[i]));
	}
	/* Until the reads use (pin, or map) most of the pages they read into. */
	for (i = 0; i < 500 && busy < PIN_PAGES / 2; i++) {
		usleep(10000);
		ASSERT_EQ(0, pages_info(self->node, &pg));
		busy = pg.busy_pages;
	}
	ASSERT_LE(PIN_PAGES / 2, busy) TH_LOG("only %d pages in use", busy);
	/* Every pinner started, and has had time to queue its read. */
	for (i = 0; i < 500 && LOAD(started) < PINNERS; i++)
		usleep(10000);
	ASSERT_EQ(PINNERS, LOAD(started));
	usleep(200000);

	ASSERT_EQ(0, pthread_create(&rt, NULL, revoke_thread, &rv));
	/* Stage 1 is done when the mapping gives SIGBUS here. */
	for (i = 0; i < 500 && !bus_here(self->map + RESERVED); i++)
		usleep(1000);
	ASSERT_EQ(1, bus_here(self->map + RESERVED));
	ASSERT_EQ(0, LOAD(rv.done)) TH_LOG("REVOKE did not wait for %d pinned pages", busy);

	ASSERT_EQ(0, write_str(path, "1"));
	EXPECT_EQ(0, LOAD(rv.done))
		TH_LOG("the reset returned only after the user's REVOKE: it waited behind it");
	/*
	 * The reset revoked too: its stage 2 (the last record, the REVOKE
	 * still waiting) found the pinned pages and gave up after 1 s.
	 */
	ASSERT_EQ(0, pages_info(self->node, &pg));
	if (!LOAD(rv.done)) {
		EXPECT_LT(0, pg.waited_pages);
		EXPECT_LE(1000000000ULL, pg.wait_ns);
	}

	ASSERT_EQ(0, pthread_join(rt, NULL));
	EXPECT_EQ(0, rv.ret) TH_LOG("REVOKE: %s", strerror(rv.ret));
	ASSERT_EQ(0, pages_info(self->node, &pg));
	EXPECT_EQ(0, pg.busy_pages);
	/* The reset's re-arm did not undo the user's revocation. */
	ASSERT_EQ(0, state(self->node, &st));
	EXPECT_EQ(1, st.revoked);
	EXPECT_EQ(1, bus_here(self->map + PIN_AT));
	for (i = 0; i < PINNERS; i++) {
		ASSERT_EQ(0, pthread_join(pin[i].t, NULL));
		close(pin[i].blk);
		/* Refused after the zap, or hit by the reset. */
		EXPECT_NE(0, pin[i].err);
	}
	TH_LOG("REVOKE waited %llu us for %u pinned pages",
	       (unsigned long long)pg.wait_ns / 1000, pg.waited_pages);
	free(pin);
	pthread_attr_destroy(&attr);

	ASSERT_EQ(0, ioctl(self->node, P2PDMA_DMABUF_UNREVOKE));
	EXPECT_EQ(0, bus_here(self->map + PIN_AT));
	EXPECT_EQ(0, touch(self->map + PIN_AT, 1));
}

/* Rebinds the exporter sample to @bdf and reopens and maps its node. */
static inline void rebind(struct __test_metadata *_metadata, struct _test_data_pages *self)
{
	ASSERT_EQ(0, write_str("/sys/bus/pci/drivers/" EXPORTER "/bind", self->bdf));
	munmap(self->map, RANGE);
	close(self->node);
	self->node = open_node("pages", self->bdf);
	ASSERT_LE(0, self->node);
	self->map = map_range(self->node);
	ASSERT_NE(MAP_FAILED, self->map);
}

/*
 * Unbind under the same traffic: when the unbind returns, the same
 * guarantees, for good (the node's files say ENODEV); a rebind works.
 */
TEST_F_TIMEOUT(pages, unbind_during_traffic_then_rebind, 120)
{
	const uint64_t base = 2 << 20;
	struct p2pdma_import_status is;
	struct p2pdma_dmabuf_state st;
	struct traffic t;
	int blk;

	start_traffic(_metadata, self, &t, base, 1);
	ASSERT_EQ(0, write_str("/sys/bus/pci/drivers/" EXPORTER "/unbind", self->bdf));
	snapshot(self, &t);
	ASSERT_EQ(0, imp_status(t.imp, &is));
	EXPECT_EQ(0, is.mapped);
	EXPECT_EQ(0, is.dma_busy);
	EXPECT_EQ(1, bus_here(self->map + base));
	stop_traffic(_metadata, self, &t, EFAULT, 1, 1);
	EXPECT_EQ(-ENODEV, state(self->node, &st));
	EXPECT_EQ(MAP_FAILED, map_range(self->node));
	EXPECT_EQ(ENODEV, errno);
	EXPECT_EQ(-ENODEV, export_one(self->node, base, 0x1000));
	close_traffic(&t);

	rebind(_metadata, self);
	blk = open(self->blk, O_RDONLY | O_DIRECT);
	ASSERT_LE(0, blk);
	ASSERT_EQ((ssize_t)RLEN, pread(blk, self->map + base + AFTER_AT, RLEN,
				       NVME_AT + 9 * RLEN));
	EXPECT_EQ(-1, pattern_check(self->map + base + AFTER_AT, RLEN,
				    chunk_seed(self->seed, 9)));
	hostcheck_in(SHM, base + AFTER_AT, RLEN, chunk_seed(self->seed, 9), 0);
	close(blk);
}

/*
 * The exporter leaked (forget=1: mem::forget of the PagesExporter at probe):
 * an unbind under the same traffic keeps the same guarantees, from the
 * device-managed work alone. Uses the unplug test's part of the range, which
 * that test (a later program) host-checks; this one checks in the guest only.
 */
TEST_F_TIMEOUT(pages, leaked_exporter_unbind_during_traffic, 120)
{
	const uint64_t base = 4 << 20;
	struct p2pdma_import_status is;
	struct traffic t;

	munmap(self->map, RANGE);
	self->map = MAP_FAILED;
	close(self->node);
	self->node = -1;
	ASSERT_EQ(0, unload(EXPORTER));
	ASSERT_EQ(0, load_module(EXPORTER, "pages=8 forget=1"));
	self->node = open_node("pages", self->bdf);
	ASSERT_LE(0, self->node);
	self->map = map_range(self->node);
	ASSERT_NE(MAP_FAILED, self->map);

	start_traffic(_metadata, self, &t, base, 1);
	ASSERT_EQ(0, write_str("/sys/bus/pci/drivers/" EXPORTER "/unbind", self->bdf));
	snapshot(self, &t);
	ASSERT_EQ(0, imp_status(t.imp, &is));
	EXPECT_EQ(0, is.mapped);
	EXPECT_EQ(0, is.dma_busy);
	EXPECT_EQ(1, bus_here(self->map + base));
	stop_traffic(_metadata, self, &t, EFAULT, 1, 0);
	close_traffic(&t);
	rebind(_metadata, self);
}
#else
/*
 * PCIe hot-unplug of the ivshmem under the same traffic: when it is gone, the
 * mapping gives SIGBUS, every reader's last read and the last transfer are on
 * the host, nothing else is in flight. The device stays gone.
 */
TEST_F_TIMEOUT(pages, unplug_during_traffic, 150)
{
	const uint64_t base = 4 << 20;
	char path[PATH_MAX];
	struct traffic t;
	int console, i;

	start_traffic(_metadata, self, &t, base, 1);
	/* The sysfs view of the BAR goes with the device. */
	munmap((void *)self->bar, 16 << 20);
	self->bar = MAP_FAILED;
	close(self->resfd);
	self->resfd = -1;
	console = open("/dev/console", O_WRONLY);
	ASSERT_LE(0, console);
	dprintf(console, "\n@@QMP %s\n", UNPLUG);
	close(console);
	snprintf(path, sizeof(path), PCI_DEVS "/%s", self->bdf);
	for (i = 0; i < 600 && access(path, F_OK) == 0; i++)
		usleep(100000);
	ASSERT_NE(0, access(path, F_OK)) TH_LOG("%s still there after 60 s", path);
	EXPECT_EQ(1, bus_here(self->map + base));
	stop_traffic(_metadata, self, &t, EFAULT, 0, 1);
	close_traffic(&t);
}
#endif

TEST_HARNESS_MAIN
