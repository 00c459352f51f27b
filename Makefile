# SPDX-License-Identifier: GPL-2.0
#
# p2pdma-rs: build Linux 7.2 with this tree laid over it and run it in QEMU.
#
#   make run     build the kernel and show P2PDMA at work in QEMU
#   make check   all tests: static gates, then KUnit + kselftests in one boot
#   make bench   benchmarks (printed, never judged by time in tests)
#
# Everything downloaded is cached in $(CACHE); the kernel tree and the build
# outputs live in ./build (git-ignored).

SHELL   := /bin/bash
CACHE   ?= $(HOME)/.cache/p2pdma-rs
BUILD   := $(CURDIR)/build
KSRC    := $(BUILD)/linux
JOBS    ?= $(shell echo $$(( $$(nproc) + 1 )))
CPU     ?= qemu64
ACCEL   ?= tcg
TIMEOUT ?= 900

# Paths where this repository mirrors the kernel tree.
OVERLAY := rust drivers samples include tools kernel

# Tool paths found by `make setup` (a shell fragment in the build folder).
ENV   = . $(BUILD)/env.sh &&
KMAKE = $(ENV) $(MAKE) -C $(KSRC) -j$(JOBS) BINDGEN=$$P2PDMA_BINDGEN O=$(BUILD)/$(1)

.PHONY: setup tree run check bench static boot-check-epyc clean distclean help
.DEFAULT_GOAL := help
help:
	@sed -n 's/^#   make/  make/p' Makefile

# --- preparation --------------------------------------------------------
# Idempotent and quick once done; runs every time so a lost cache is refilled.
setup:
	@mkdir -p $(BUILD)
	@P2PDMA_CACHE=$(CACHE) harness/setup.sh $(BUILD)/env.sh

tree: setup
	@$(ENV) harness/tree.sh $(KSRC) $(OVERLAY)

# --- kernel builds: run (plain), check (debug), nop2pdma (P2PDMA=n) ------
FRAG_run      := p2pdma_rs.config
FRAG_check    := p2pdma_rs.config p2pdma_rs_debug.config
FRAG_nop2pdma := p2pdma_rs.config p2pdma_rs_nop2pdma.config

# Configure O=build/<flavour> from tinyconfig plus committed fragments,
# again only when a fragment changed.
config-%: tree
	@frags="$(foreach f,$(FRAG_$*),kernel/configs/$(f))"; \
	sum=$$(cat $$frags | sha1sum); \
	if [ "$$(cat $(BUILD)/$*/.frag-sum 2>/dev/null)" != "$$sum" ]; then \
		echo "[config] $*: tinyconfig + $(FRAG_$*)"; \
		$(call KMAKE,$*) -s tinyconfig $(FRAG_$*) >/dev/null && \
		harness/checkconfig.sh $(BUILD)/$*/.config $$frags && \
		echo "$$sum" >$(BUILD)/$*/.frag-sum; \
	fi

# Only the debug kernel is built with clippy (it compiles and lints at once).
KFLAGS_check := CLIPPY=1

kernel-%: config-%
	@echo "[build] $* kernel (O=build/$*) $(KFLAGS_$*)"
	@set -o pipefail; $(call KMAKE,$*) -s $(KFLAGS_$*) bzImage modules 2>&1 | tee $(BUILD)/$*/build.log
	@harness/no-warnings.sh "$* build $(KFLAGS_$*)" $(BUILD)/$*/build.log

# --- guest: initramfs with busybox, the runner, selftests, modules -------
initramfs-%: kernel-%
	@harness/initramfs.sh $(KSRC) $(BUILD)/$* $(BUILD)/$*/initramfs.cpio

boot-%: initramfs-%
	@echo "[qemu] booting the $* kernel ($(ACCEL), cpu $(CPU))"
	@CPU=$(CPU) ACCEL=$(ACCEL) TIMEOUT=$(TIMEOUT) harness/qemu.sh \
		$(BUILD)/$*/arch/x86/boot/bzImage $(BUILD)/$*/initramfs.cpio \
		$(BUILD)/$* $(BUILD)/$*/guest.log p2pdma.mode=$(MODE_$*) $(APPEND_$*) || true
MODE_run   := run
MODE_check := check
APPEND_check := kmemleak=on

# The debug kernel once more with an AMD Zen CPU model: the P2PDMA host-bridge
# check accepts it, so root-bus pairs map through the host bridge.
boot-check-epyc: initramfs-check
	@echo "[qemu] booting the check kernel ($(ACCEL), cpu EPYC)"
	@CPU=EPYC ACCEL=$(ACCEL) TIMEOUT=$(TIMEOUT) harness/qemu.sh \
		$(BUILD)/check/arch/x86/boot/bzImage $(BUILD)/check/initramfs.cpio \
		$(BUILD)/check $(BUILD)/check/guest-epyc.log p2pdma.mode=check $(APPEND_check) || true

# --- the two commands ---------------------------------------------------
run: boot-run
	@harness/show.sh $(BUILD)/run/guest.log

static: tree config-check
	@echo "[static] rustfmtcheck"
	@$(call KMAKE,check) -s rustfmtcheck
	@echo "[static] checkpatch"
	@harness/checkpatch.sh $(KSRC)
	@echo "[static] rustdoc"
	@set -o pipefail; $(call KMAKE,check) -s rustdoc 2>&1 | tee $(BUILD)/check/rustdoc.log
	@harness/no-warnings.sh "make rustdoc" $(BUILD)/check/rustdoc.log

check: static kernel-nop2pdma boot-check boot-check-epyc
	@rc=0; for log in guest.log guest-epyc.log; do \
		echo "== $$log"; python3 harness/results.py $(BUILD)/check/$$log || rc=1; \
	done; exit $$rc

# Benchmarks run on the plain (non-debug) kernel; they print figures and fail
# only when a benchmark does not run.
bench: initramfs-run
	@echo "[qemu] benchmarks on the run kernel ($(ACCEL), cpu $(CPU))"
	@CPU=$(CPU) ACCEL=$(ACCEL) TIMEOUT=$(TIMEOUT) harness/qemu.sh \
		$(BUILD)/run/arch/x86/boot/bzImage $(BUILD)/run/initramfs.cpio \
		$(BUILD)/run $(BUILD)/run/bench.log p2pdma.mode=bench || true
	@harness/bench.sh $(BUILD)/run/bench.log

clean:
	rm -rf $(BUILD)/run $(BUILD)/check $(BUILD)/nop2pdma

distclean:
	rm -rf $(BUILD)
