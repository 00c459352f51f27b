// SPDX-License-Identifier: GPL-2.0

#include <linux/pci.h>
#include <linux/pci-p2pdma.h>

__rust_helper unsigned long rust_helper_pci_resource_flags(struct pci_dev *pdev,
							   int bar)
{
	return pci_resource_flags(pdev, bar);
}

__rust_helper enum pci_p2pdma_map_type
rust_helper_pci_p2pdma_state(struct pci_p2pdma_map_state *state,
			     struct device *dev, struct page *page)
{
	return pci_p2pdma_state(state, dev, page);
}
