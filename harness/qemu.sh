#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The default QEMU topology, in one place:
#
#   pcie.0 (q35 host bridge, not in the P2PDMA host-bridge allowlist)
#   |-- pcie-root-port rp0
#   |   `-- x3130-upstream sw0                       (PCIe switch)
#   |       |-- xio3130-downstream dn0 -- nvme        CMB 16 MiB in BAR2 -> published p2pmem,
#   |       |                                         namespace = host file WORK/nvme0.img
#   |       |-- xio3130-downstream dn1 -- ivshmem-plain  BAR2 = host file WORK/shm/ivshmem-switch
#   |       |-- xio3130-downstream dn2 -- ivshmem-plain  BAR2 = host file WORK/shm/ivshmem-dmabuf,
#   |       |                                         the dma-buf exporter sample's (hot-pluggable)
#   |       |-- xio3130-downstream dn3 -- pcie-pci-bridge -- edu  (importer, BUS_ADDR)
#   |       |-- xio3130-downstream dn4 -- ivshmem-plain  BAR2 = host file WORK/shm/ivshmem-vfio,
#   |       |                                         bound to vfio-pci (no-IOMMU mode), whose
#   |       |                                         C dma-buf exporter is compared with ours
#   |       `-- xio3130-downstream dn5 -- ivshmem-plain  BAR2 = host file WORK/shm/ivshmem-pages,
#   |                                                 the exporter sample's too, for its pages
#   |                                                 mode (mmap + O_DIRECT + dma-buf; hot-pluggable)
#   |-- ivshmem-plain                                BAR2 = host file WORK/shm/ivshmem-root
#   |-- edu (dma_mask 64 bit)                        importer on the root bus
#   `-- pci-testdev                                  BAR2 32 MiB (membar, no backing), for
#                                                    binding p2pdma_rs by driver_override/new_id
#
# The host files are made afresh (zeroed) for every boot, so what the host
# finds in them after the run was written during that run
# (harness/hostcheck.py).
#
# Devices behind the switch map to each other with PCI bus addresses
# (BUS_ADDR); pairs through the root complex are NOT_SUPPORTED unless the guest
# CPU is one the host-bridge check accepts (CPU=EPYC: THRU_HOST_BRIDGE).
#
# ACPI PCI hotplug is off, so the guest's pciehp handles the switch's
# downstream ports natively (device_del = attention button, 5 s, removal).
# The guest asks for QMP commands (hot-unplug) by printing "@@QMP <json>" lines;
# harness/qmp-relay.py passes them to the QMP socket.
#
# Usage: qemu.sh KERNEL INITRD WORKDIR LOG [APPEND...]
# Env:   CPU (default qemu64), ACCEL (tcg|kvm, default tcg), TIMEOUT (s),
#        MEM (default 2G)
set -euo pipefail
KERNEL=$1 INITRD=$2 WORK=$3 LOG=$4
shift 4
# vfio-pci binds only in no-IOMMU mode here (there is no IOMMU), and the mode
# must be on before it probes.
CPU=${CPU:-qemu64}
ACCEL=${ACCEL:-tcg}
TIMEOUT=${TIMEOUT:-600}
# A guest whose kselftests hang says where: 90 s before the kill its own
# watchdog (harness/init) prints what each task does; 45 s before, unless the
# kselftests have ended, the QMP relay injects an NMI, on which the guest
# panics with the stack of every blocked task and of the CPU that took the
# NMI, the locks held (while lockdep is on) and its whole log. Not for
# limits under 3 minutes.
APPEND="console=ttyS0 panic=-1 log_buf_len=8M rdinit=/init vfio.enable_unsafe_noiommu_mode=1"
DEADLINE=
if [ "$TIMEOUT" -ge 180 ]; then
	DEADLINE=$((TIMEOUT - 45))
	APPEND="$APPEND p2pdma.watchdog=$((TIMEOUT - 90)) unknown_nmi_panic"
	APPEND="$APPEND panic_sys_info=blocked_tasks,locks panic_console_replay"
fi
APPEND="$APPEND $*"
MEM=${MEM:-2G}

# In check boots the NVMe serves at most 50 reads a second (QEMU's block
# throttling): an O_DIRECT read then keeps its pages pinned for milliseconds to
# tens of milliseconds, long enough for pages_test to tell whether a revocation
# waits for it. Unthrottled, the emulated NVMe finishes a read in less time than
# a revocation's other stages take, and one that did not wait would go unseen.
THROTTLE=
case " $* " in *" p2pdma.mode=check "*) THROTTLE=,throttling.iops-read=50 ;; esac

rm -rf "$WORK/shm" "$WORK/nvme0.img" "$WORK/qmp.sock"
[ -n "${QEMU_CRASHED:-}" ] || rm -f "$LOG.qemu-crash"
mkdir -p "$WORK/shm"
truncate -s 16M "$WORK/shm/ivshmem-switch" "$WORK/shm/ivshmem-root" "$WORK/shm/ivshmem-dmabuf" \
	"$WORK/shm/ivshmem-vfio" "$WORK/shm/ivshmem-pages"
truncate -s 64M "$WORK/nvme0.img"

if [ "$ACCEL" = kvm ]; then
	ACCELOPT=(-accel kvm)
else
	ACCELOPT=(-accel tcg)
fi

: >"$LOG"
python3 "$(dirname "$0")/qmp-relay.py" "$WORK/qmp.sock" "$LOG" $DEADLINE >"$WORK/qmp.log" 2>&1 &
RELAY=$!
trap 'kill $RELAY 2>/dev/null || true' EXIT

set +e
# TCG cannot offer every feature of a CPU model such as EPYC; it says so per vCPU.
exec 2> >(grep -v "TCG doesn.t support requested feature" >&2)
timeout -k 10 "$TIMEOUT" qemu-system-x86_64 \
	-M q35 "${ACCELOPT[@]}" -cpu "$CPU" -smp 2 -m "$MEM" \
	-global ICH9-LPC.acpi-pci-hotplug-with-bridge-support=off \
	-display none -monitor none -no-reboot \
	-serial "file:$LOG" \
	-qmp "unix:$WORK/qmp.sock,server=on,wait=off" \
	-kernel "$KERNEL" -initrd "$INITRD" -append "$APPEND" \
	-object "memory-backend-file,id=shm0,size=16M,share=on,mem-path=$WORK/shm/ivshmem-switch" \
	-object "memory-backend-file,id=shm1,size=16M,share=on,mem-path=$WORK/shm/ivshmem-root" \
	-object "memory-backend-file,id=shm2,size=16M,share=on,mem-path=$WORK/shm/ivshmem-dmabuf" \
	-object "memory-backend-file,id=shm3,size=16M,share=on,mem-path=$WORK/shm/ivshmem-vfio" \
	-object "memory-backend-file,id=shm4,size=16M,share=on,mem-path=$WORK/shm/ivshmem-pages" \
	-device pcie-root-port,id=rp0,chassis=1,slot=1 \
	-device x3130-upstream,id=sw0,bus=rp0 \
	-device xio3130-downstream,id=dn0,bus=sw0,chassis=2,slot=0 \
	-device xio3130-downstream,id=dn1,bus=sw0,chassis=3,slot=1 \
	-device xio3130-downstream,id=dn2,bus=sw0,chassis=4,slot=2 \
	-device xio3130-downstream,id=dn3,bus=sw0,chassis=5,slot=3 \
	-device xio3130-downstream,id=dn4,bus=sw0,chassis=6,slot=4 \
	-device xio3130-downstream,id=dn5,bus=sw0,chassis=7,slot=5 \
	-drive "file=$WORK/nvme0.img,if=none,id=nv0,format=raw$THROTTLE" \
	-device nvme,id=nvme0,serial=p2p0,drive=nv0,cmb_size_mb=16,bus=dn0 \
	-device ivshmem-plain,id=ivshmem0,memdev=shm0,bus=dn1 \
	-device ivshmem-plain,id=ivshmem1,memdev=shm1 \
	-device ivshmem-plain,id=ivshmem2,memdev=shm2,bus=dn2 \
	-device pcie-pci-bridge,id=br0,bus=dn3 \
	-device edu,id=edu1,dma_mask=0xffffffffffffffff,bus=br0,addr=1 \
	-device ivshmem-plain,id=ivshmem3,memdev=shm3,bus=dn4 \
	-device ivshmem-plain,id=ivshmem4,memdev=shm4,bus=dn5 \
	-device edu,id=edu0,dma_mask=0xffffffffffffffff \
	-device pci-testdev,id=testdev0,membar=32M
rc=$?
set -e
# How QEMU ended, for results.py: 0, the time limit, or a signal of its own (a
# QEMU crash, which no guest should be able to cause: QEMU 7.2 under TCG has
# died of SIGSEGV in about one check boot in twenty). A crashed boot is run
# once more, from the start; its log is kept as LOG.qemu-crash, and results.py
# reports it.
echo $rc >"$WORK/qemu-exit"
if [ $rc = 124 ] || [ $rc = 137 ]; then
	echo "qemu: killed after ${TIMEOUT}s (guest did not finish)" >&2
elif [ $rc -gt 128 ]; then
	echo "qemu: died of signal $((rc - 128)) (a QEMU crash)" >&2
	if [ -z "${QEMU_CRASHED:-}" ]; then
		mv "$LOG" "$LOG.qemu-crash"
		echo "qemu: booting once more; the crashed boot's log is $LOG.qemu-crash" >&2
		kill $RELAY 2>/dev/null || true
		QEMU_CRASHED=$rc exec "$0" "$KERNEL" "$INITRD" "$WORK" "$LOG" "$@"
	fi
fi
exit $rc
