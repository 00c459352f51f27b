// SPDX-License-Identifier: GPL-2.0
/* The hot-unplug test of pages_test.h, run last (see there). */
#define PAGES_UNPLUG_TEST
#include "pages_test.h"
