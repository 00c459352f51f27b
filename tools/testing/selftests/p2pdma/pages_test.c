// SPDX-License-Identifier: GPL-2.0
/* Mappings, O_DIRECT and dma-buf on one BAR range: revoke, unbind (see pages_test.h). */
#include "pages_test.h"
