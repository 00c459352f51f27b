// SPDX-License-Identifier: GPL-2.0

#include <linux/pci.h>
#include <linux/pci-p2pdma.h>

__rust_helper unsigned long rust_helper_pci_resource_flags(struct pci_dev *pdev,
							   int bar)
{
	return pci_resource_flags(pdev, bar);
}
