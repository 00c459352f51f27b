#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Pass the guest's QMP requests to QEMU.

The guest cannot reach QEMU's monitor, so a test that needs the host (PCIe
hot-unplug with device_del) prints a line

    @@QMP {"execute": "device_del", "arguments": {"id": "ivshmem2"}}

on the serial console. This relay follows the console log, sends each such
command to the QMP socket and prints QEMU's answers (and events) to stdout.

If DEADLINE (seconds) passes before the guest says its kselftests ended
("@@P2PDMA END kselftest"), the relay injects an NMI: the guest boots with
unknown_nmi_panic, so a guest that hangs, even one whose CPUs spin with
interrupts off, panics and prints its blocked tasks, the stack of the CPU that
took the NMI and its whole kernel log before the host kills it.

Usage: qmp-relay.py QMP_SOCKET CONSOLE_LOG [DEADLINE]   (ends when QEMU closes QMP)
"""
import json
import socket
import sys
import time


def connect(path, tries=600):
    for _ in range(tries):
        try:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(path)
            return s
        except OSError:
            time.sleep(0.1)
    sys.exit("qmp-relay: no QMP socket at %s" % path)


def main():
    sock = connect(sys.argv[1])
    qmp = sock.makefile("rw")
    print(qmp.readline().strip(), flush=True)
    qmp.write(json.dumps({"execute": "qmp_capabilities"}) + "\n")
    qmp.flush()
    print(qmp.readline().strip(), flush=True)
    sock.setblocking(False)
    log = open(sys.argv[2], errors="replace")
    pending = ""
    deadline = time.monotonic() + float(sys.argv[3]) if len(sys.argv) > 3 else None
    while True:
        if deadline is not None and time.monotonic() > deadline:
            deadline = None
            print("-> inject-nmi (deadline passed)", flush=True)
            try:
                qmp.write(json.dumps({"execute": "inject-nmi"}) + "\n")
                qmp.flush()
            except OSError:
                return 0
        chunk = log.read()
        if chunk:
            pending += chunk
            *lines, pending = pending.split("\n")
            for line in lines:
                if "@@P2PDMA END kselftest" in line:
                    deadline = None
                at = line.find("@@QMP ")
                if at < 0:
                    continue
                cmd = line[at + 6:].strip()
                print("-> " + cmd, flush=True)
                qmp.write(cmd + "\n")
                qmp.flush()
        try:
            data = sock.recv(65536)
            if not data:
                return 0
            sys.stdout.write(data.decode(errors="replace"))
            sys.stdout.flush()
        except BlockingIOError:
            pass
        except OSError:
            return 0
        time.sleep(0.05)


if __name__ == "__main__":
    sys.exit(main())
