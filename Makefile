# SPDX-License-Identifier: GPL-2.0
#
# p2pdma-rs: build Linux 7.2 with this tree laid over it and run it in QEMU.
#
#   make run     build the kernel and show P2PDMA at work in QEMU
#   make check   all tests: static gates, then KUnit + kselftests in one boot
#   make bench   benchmarks (printed, never judged by time in tests)
#   make kunit   the library's KUnit suite through kunit.py (.kunitconfig)
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
# Every kernel is built with Debian's LLVM 22 (LLVM=-22, the LLVM major of
# rustc): KASAN with Rust and CONFIG_RUST_INLINE_HELPERS need clang.
ENV   = . $(BUILD)/env.sh &&
KMAKE = $(ENV) $(MAKE) -C $(KSRC) -j$(JOBS) LLVM=$$P2PDMA_LLVM BINDGEN=$$P2PDMA_BINDGEN O=$(BUILD)/$(1)

.PHONY: setup tree run check bench kunit static compile-fail compile-fail-cases boots-check boot-run boot-check boot-check-epyc clean distclean help
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

# What each flavour builds. The P2PDMA=n build test compiles what this project
# adds or patches (the kernel crate and its helpers, the PCI, dma-buf and misc
# device code, the samples) without linking a kernel nobody boots.
TARGETS          := bzImage modules
TARGETS_nop2pdma := rust/ drivers/pci/ drivers/dma-buf/ drivers/char/ samples/

kernel-%: config-%
	@echo "[build] $* kernel (O=build/$*) $(KFLAGS_$*)"
	@set -o pipefail; $(call KMAKE,$*) -s $(KFLAGS_$*) $(or $(TARGETS_$*),$(TARGETS)) 2>&1 | tee $(BUILD)/$*/build.log
	@harness/no-warnings.sh "$* build $(KFLAGS_$*)" $(BUILD)/$*/build.log

# --- guest: initramfs with busybox, the runner, selftests, modules -------
initramfs-%: kernel-%
	@$(ENV) harness/initramfs.sh $(KSRC) $(BUILD)/$* $(BUILD)/$*/initramfs.cpio

# $(call boot,FLAVOUR,CPU,LOG,RUNNER MODE): the shell command that boots
# build/FLAVOUR in the QEMU topology; the log is judged afterwards, so a failed
# boot does not stop make.
# $(call vm,FLAVOUR,LOG) is the folder of the boot's device files (shared
# memory, NVMe image), build/FLAVOUR/vm-LOG, which the host-side checks read.
vm = $(BUILD)/$(1)/vm-$(basename $(2))
boot = { echo "[qemu] $(1) kernel, mode $(4) ($(ACCEL), cpu $(2))"; \
	CPU=$(2) ACCEL=$(ACCEL) TIMEOUT=$(TIMEOUT) harness/qemu.sh \
		$(BUILD)/$(1)/arch/x86/boot/bzImage $(BUILD)/$(1)/initramfs.cpio \
		$(call vm,$(1),$(3)) $(BUILD)/$(1)/$(3) p2pdma.mode=$(4) $(APPEND_$(1)) || true; }
APPEND_check := kmemleak=on

boot-run: initramfs-run
	@$(call boot,run,$(CPU),guest.log,run)
boot-check: initramfs-check
	@$(call boot,check,$(CPU),guest.log,check)
# The debug kernel once more with an AMD Zen CPU model: the P2PDMA host-bridge
# check accepts it, so root-bus pairs map through the host bridge.
boot-check-epyc: initramfs-check
	@$(call boot,check,EPYC,guest-epyc.log,check)
# Both at once: much of a check boot is spent waiting (edu transfers,
# hot-unplug, kmemleak's grace period), so the two take little more than one.
boots-check: initramfs-check
	@$(call boot,check,$(CPU),guest.log,check) & \
	$(call boot,check,EPYC,guest-epyc.log,check) & wait

# --- the two commands ---------------------------------------------------
run: boot-run
	@harness/show.sh $(BUILD)/run/guest.log $(call vm,run,guest.log)

static: tree config-check
	@echo "[static] rustfmtcheck"
	@$(call KMAKE,check) -s rustfmtcheck
	@echo "[static] checkpatch"
	@harness/checkpatch.sh $(KSRC)
	@echo "[static] rustdoc"
	@set -o pipefail; $(call KMAKE,check) -s rustdoc 2>&1 | tee $(BUILD)/check/rustdoc.log
	@harness/no-warnings.sh "make rustdoc" $(BUILD)/check/rustdoc.log

# Code that must not compile (tests/compile-fail/*.rs), each with a twin that
# must, built as external modules against the debug kernel. `make compile-fail`
# fails on a wrong case; within `check` the cases are judged with the boots by
# results.py, so a wrong one does not keep the boots from running.
COMPILE_FAIL = echo "[compile-fail] tests/compile-fail against build/check"; \
	$(ENV) python3 harness/compile_fail.py $(KSRC) $(BUILD)/check $(CURDIR)/tests/compile-fail \
		$(BUILD)/compile-fail $(JOBS)
compile-fail: kernel-check
	@$(COMPILE_FAIL)
compile-fail-cases: kernel-check
	@-$(COMPILE_FAIL)

check: static compile-fail-cases kernel-nop2pdma boots-check
	@python3 harness/results.py $(KSRC) compile-fail=$(BUILD)/compile-fail/results.ktap \
		$(foreach l,guest.log guest-epyc.log,$(BUILD)/check/$(l):$(call vm,check,$(l)))

# Benchmarks run on the plain (non-debug) kernel; they print figures and fail
# only when a benchmark does not run.
bench: initramfs-run
	@$(call boot,run,$(CPU),bench.log,bench)
	@harness/bench.sh $(BUILD)/run/bench.log

# The library's KUnit suite the way a reviewer runs it: kunit.py with
# rust/kernel/p2pdma/.kunitconfig, its own x86_64 kernel in build/kunit.
# KUNIT_ACCEL=tcg hides /dev/kvm from QEMU (nested KVM guests hang here).
KUNIT_ACCEL ?= tcg
kunit: tree
	@$(ENV) cd $(KSRC) && $(if $(filter tcg,$(KUNIT_ACCEL)),unshare -m sh -c 'mount --bind /dev/null /dev/kvm && exec "$$@"' kunit,) \
		./tools/testing/kunit/kunit.py run --kunitconfig=rust/kernel/p2pdma \
		--arch=x86_64 --build_dir=$(BUILD)/kunit --jobs=$(JOBS) \
		--make_options LLVM=$$P2PDMA_LLVM --make_options BINDGEN=$$P2PDMA_BINDGEN

clean:
	rm -rf $(BUILD)/run $(BUILD)/check $(BUILD)/nop2pdma $(BUILD)/kunit $(BUILD)/compile-fail

distclean:
	rm -rf $(BUILD)
