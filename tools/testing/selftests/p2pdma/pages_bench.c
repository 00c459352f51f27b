// SPDX-License-Identifier: GPL-2.0
/*
 * `make bench`: the three stages of a revocation of a kernel::p2pdma::
 * PagesExporter (the exporter sample's pages mode on the fifth ivshmem, as in
 * pages_test), with N importers mapped (the edu behind the switch, idle) and
 * M threads keeping O_DIRECT reads from the NVMe behind the switch going into
 * the user mapping. Stage 1 zaps the user mappings, stage 2 waits for the
 * pages the reads pinned, stage 3 invalidates the importers until they have
 * unmapped; the sample reports each (P2PDMA_DMABUF_PAGES).
 *
 * A figure is the median over the rounds, in microseconds; "pinned" is the
 * median number of pages stage 2 found pinned. Every revocation is checked
 * (importers unmapped, no page busy afterwards); a failed step fails the
 * program, and no figure is printed from a broken run.
 * Output: "bench pages <N> importers <M> readers zap_us <n> wait_us <n>
 * invalidate_us <n> pinned <n>".
 */
#include "p2pdma_util.h"
#include <pthread.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include "dmabuf_util.h"

#define ROUNDS		11
#define RANGE		0x800000ULL
#define RLEN		0x40000ULL
#define MAX_READERS	4
#define MAX_IMP		16
#define NVME_AT		0x2800000ULL	/* 40 MiB, as pages_test */

static void check(int ok, const char *what, int line)
{
	if (ok)
		return;
	fprintf(stderr, "pages_bench: line %d: %s: %s\n", line, what, strerror(errno));
	exit(1);
}

#define CHECK(cond) check(!!(cond), #cond, __LINE__)

struct reader {
	pthread_t t;
	int blk;
	uint8_t *dst;
	long ok;	/* reads done (atomic) */
};

static char blkdev[PATH_MAX];

/* O_DIRECT reads into the pages until one fails (after the zap). */
static void *read_loop(void *arg)
{
	struct reader *rd = arg;
	long k;

	for (k = 0;; k++) {
		if (pread(rd->blk, rd->dst, RLEN, NVME_AT + (k % 16) * RLEN) != (ssize_t)RLEN)
			return NULL;
		__atomic_store_n(&rd->ok, k + 1, __ATOMIC_SEQ_CST);
	}
}

static int cmp(const void *a, const void *b)
{
	unsigned long long x = *(const unsigned long long *)a, y = *(const unsigned long long *)b;

	return x < y ? -1 : x > y;
}

static unsigned long long median(unsigned long long *v)
{
	qsort(v, ROUNDS, sizeof(*v), cmp);
	return v[ROUNDS / 2];
}

int main(void)
{
	static const int nimp[] = { 1, 16 }, nread[] = { 0, MAX_READERS };
	char devs[8][16], edus[2][16], nvme[1][16], up[32], edu[16] = "";
	unsigned long long zap[ROUNDS], wait[ROUNDS], inv[ROUNDS], pinned[ROUNDS];
	struct p2pdma_import_range m;
	struct reader rd[MAX_READERS];
	int node, buf, imp[MAX_IMP], i, j, n, a, b, round;
	uint8_t *map;
	void *data;

	CHECK(find_devs(0x1af4, 0x1110, devs, 8) == 5);
	CHECK(find_devs(0x1234, 0x11e8, edus, 2) == 2);
	for (i = 0; i < 2; i++) {
		parent_of(edus[i], up, sizeof(up));
		if (up[0])
			memcpy(edu, edus[i], sizeof(edu));
	}
	CHECK(edu[0]);
	CHECK(find_devs(0x1b36, 0x0010, nvme, 1) == 1);
	CHECK(!nvme_namespace(nvme[0], blkdev, sizeof(blkdev)));
	n = open(blkdev, O_WRONLY | O_DIRECT);
	CHECK(n >= 0 && !posix_memalign(&data, 4096, 16 * RLEN));
	pattern_fill(data, 16 * RLEN, 1);
	CHECK(pwrite(n, data, 16 * RLEN, NVME_AT) == (ssize_t)(16 * RLEN));
	close(n);
	free(data);

	/* The dma-buf bench loaded the sample without parameters. */
	for (i = 0; i < 100; i++) {
		if (!syscall(__NR_delete_module, EXPORTER, O_NONBLOCK) || errno == ENOENT)
			break;
		usleep(20000);
	}
	CHECK(!load_module(EXPORTER, "pages=8") && !load_module(IMPORTER, IMPORTER_BITS));
	node = open_node("pages", devs[4]);
	CHECK(node >= 0);
	map = mmap(NULL, RANGE, PROT_READ | PROT_WRITE, MAP_SHARED, node, 0);
	CHECK(map != MAP_FAILED);
	buf = export_one(node, 1 << 20, 1 << 20);
	CHECK(buf >= 0);

	for (a = 0; a < 2; a++) {
		for (b = 0; b < 2; b++) {
			for (round = 0; round < ROUNDS; round++) {
				struct p2pdma_dmabuf_pages pg;
				struct p2pdma_dmabuf_state st;

				for (i = 0; i < nimp[a]; i++) {
					imp[i] = importer(edu, buf);
					CHECK(imp[i] >= 0 && imp_map(imp[i], &m, 1, NULL) == 1);
				}
				for (j = 0; j < nread[b]; j++) {
					rd[j].ok = 0;
					rd[j].dst = map + j * RLEN;
					rd[j].blk = open(blkdev, O_RDONLY | O_DIRECT);
					CHECK(rd[j].blk >= 0);
					CHECK(!pthread_create(&rd[j].t, NULL, read_loop, &rd[j]));
				}
				for (j = 0; j < nread[b]; j++)
					while (!__atomic_load_n(&rd[j].ok, __ATOMIC_SEQ_CST))
						usleep(1000);
				CHECK(!ioctl(node, P2PDMA_DMABUF_REVOKE));
				CHECK(!state(node, &st) && st.mappings == 0);
				for (j = 0; j < nread[b]; j++) {
					CHECK(!pthread_join(rd[j].t, NULL));
					close(rd[j].blk);
				}
				memset(&pg, 0xff, sizeof(pg));
				CHECK(!ioctl(node, P2PDMA_DMABUF_PAGES, &pg) && pg.busy_pages == 0);
				zap[round] = pg.zap_ns / 1000;
				wait[round] = pg.wait_ns / 1000;
				inv[round] = pg.invalidate_ns / 1000;
				pinned[round] = pg.waited_pages;
				CHECK(!ioctl(node, P2PDMA_DMABUF_UNREVOKE));
				for (i = 0; i < nimp[a]; i++)
					close(imp[i]);
			}
			printf("bench pages %2d importers %d readers ", nimp[a], nread[b]);
			printf("zap_us %llu wait_us %llu invalidate_us %llu pinned %llu\n",
			       median(zap), median(wait), median(inv), median(pinned));
			fflush(stdout);
		}
	}
	munmap(map, RANGE);
	close(buf);
	close(node);
	return 0;
}
