// SPDX-License-Identifier: GPL-2.0

#include <linux/dma-mapping.h>
#include <linux/ktime.h>
#include <linux/memremap.h>
#include <linux/mm.h>
#include <linux/pci-p2pdma.h>
#include <linux/pseudo_fs.h>
#include <linux/scatterlist.h>

__rust_helper enum pci_p2pdma_map_type
rust_helper_pci_p2pdma_state(struct pci_p2pdma_map_state *state,
			     struct device *dev, struct page *page)
{
	return pci_p2pdma_state(state, dev, page);
}

/*
 * The pgmap of @page if it is a PCI P2PDMA page, else NULL: the key of the
 * inlined map-state cache hit (kernel::p2pdma::MapState::page). Reads only
 * the page's flags and its folio's pgmap, as pci_p2pdma_state() does.
 */
__rust_helper struct dev_pagemap *
rust_helper_pci_p2pdma_page_pgmap(const struct page *page)
{
	return is_pci_p2pdma_page(page) ? page_pgmap(page) : NULL;
}

__rust_helper phys_addr_t rust_helper_page_to_phys(struct page *page)
{
	return page_to_phys(page);
}

__rust_helper struct page *rust_helper_virt_to_page(const void *addr)
{
	return virt_to_page(addr);
}

__rust_helper void *rust_helper_sg_virt(struct scatterlist *sg)
{
	return sg_virt(sg);
}

__rust_helper void rust_helper_put_dev_pagemap(struct dev_pagemap *pgmap)
{
	put_dev_pagemap(pgmap);
}

__rust_helper int rust_helper_dma_mapping_error(struct device *dev,
						dma_addr_t dma_addr)
{
	return dma_mapping_error(dev, dma_addr);
}

/* Lockdep: the reservation lock of a dma-buf is held (the exporter's map/unmap). */
__rust_helper void rust_helper_dma_resv_assert_held(struct dma_resv *obj)
{
	dma_resv_assert_held(obj);
}

/* The references of the pages of a kernel::p2pdma::PagesExporter. */
__rust_helper int rust_helper_page_ref_count(const struct page *page)
{
	return page_ref_count(page);
}

__rust_helper void rust_helper_set_page_count(struct page *page, int v)
{
	set_page_count(page, v);
}

__rust_helper int rust_helper_page_ref_freeze(struct page *page, int count)
{
	return page_ref_freeze(page, count);
}

/* The pseudo file system of the PagesExporter inodes (as VFIO's). */
__rust_helper int rust_helper_p2pdma_init_pseudo(struct fs_context *fc,
						 unsigned long magic)
{
	return init_pseudo(fc, magic) ? 0 : -ENOMEM;
}

#ifdef CONFIG_RUST_P2PDMA_BENCH
/*
 * The C side of kernel::p2pdma::bench: @lookups cache hits of
 * pci_p2pdma_state() on @page for @dev, in nanoseconds. It must be built in:
 * pci_p2pdma_state() calls __pci_p2pdma_update_state(), which is not exported.
 */
__rust_helper u64 rust_helper_p2pdma_bench_c_hits(struct device *dev,
						  struct page *page,
						  u32 lookups)
{
	struct pci_p2pdma_map_state state = {};
	unsigned int acc;
	u64 start;
	u32 i;

	acc = pci_p2pdma_state(&state, dev, page);
	start = ktime_get_ns();
	for (i = 0; i < lookups; i++) {
		/* Like black_box() in the Rust loop: the page is opaque each time. */
		OPTIMIZER_HIDE_VAR(page);
		acc += pci_p2pdma_state(&state, dev, page);
	}
	start = ktime_get_ns() - start;
	OPTIMIZER_HIDE_VAR(acc);
	return start;
}
#endif
