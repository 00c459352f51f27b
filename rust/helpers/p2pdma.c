// SPDX-License-Identifier: GPL-2.0

#include <linux/pci-p2pdma.h>

__rust_helper enum pci_p2pdma_map_type
rust_helper_pci_p2pdma_state(struct pci_p2pdma_map_state *state,
			     struct device *dev, struct page *page)
{
	return pci_p2pdma_state(state, dev, page);
}
