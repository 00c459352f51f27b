#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Check from the host what the guest's peer-to-peer tests left in the devices.

The selftests print lines such as

    HOSTCHECK ivshmem-switch offset=0x0 len=0x800000 seed=0x1234
    HOSTCHECK nvme offset=0x1000000 len=0x800000 seed=0x1234
    HOSTCHECK ivshmem-dmabuf offset=0x3000 len=0x1000 zero

after checking the data in the guest. Each names a backing file of the QEMU
topology (harness/qemu.sh) and a range that must now hold the pattern of that
seed (p2pdma_util.h: pattern_word), or, with "zero", nothing but zeros (no
write landed there). Usage as a program:

    hostcheck.py GUEST_LOG VM_DIR

prints one TAP line per check and exits non-zero on a failure or when the log
has no checks.
"""
import re
import struct
import sys

FILES = {
    "ivshmem-switch": "shm/ivshmem-switch",
    "ivshmem-root": "shm/ivshmem-root",
    "ivshmem-dmabuf": "shm/ivshmem-dmabuf",
    "ivshmem-vfio": "shm/ivshmem-vfio",
    "ivshmem-pages": "shm/ivshmem-pages",
    "nvme": "nvme0.img",
}
LINE = re.compile(r"HOSTCHECK (?P<dev>\S+) offset=(?P<off>\S+) len=(?P<len>\S+) (?:seed=(?P<seed>\S+)|(?P<zero>zero))")
M64 = (1 << 64) - 1


def pattern(seed, words):
    """The bytes of pattern_fill(buf, words * 8, seed)."""
    out = []
    for i in range(words):
        z = (seed + (i + 1) * 0x9E3779B97F4A7C15) & M64
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
        out.append(z ^ (z >> 31))
    return struct.pack("<%dQ" % words, *out)


def checks(lines, vm):
    """[(status, name)] for every HOSTCHECK line of the log."""
    results = []
    for line in lines:
        m = LINE.search(line)
        if not m:
            continue
        dev, off, n = m["dev"], int(m["off"], 0), int(m["len"], 0)
        if m["zero"]:
            name = "host: %s holds only zeros at %#x (+%d KiB)" % (dev, off, n >> 10)
        else:
            name = "host: %s holds the guest's pattern at %#x (+%d KiB)" % (dev, off, n >> 10)
        if dev not in FILES:
            results.append(("fail", name + ": unknown device"))
            continue
        try:
            with open("%s/%s" % (vm, FILES[dev]), "rb") as f:
                f.seek(off)
                data = f.read(n)
        except OSError as e:
            results.append(("fail", "%s: %s" % (name, e)))
            continue
        want = bytes(n) if m["zero"] else pattern(int(m["seed"], 0), n // 8)
        if data == want:
            results.append(("pass", name))
            continue
        bad = next((i for i in range(0, min(len(data), n), 8) if data[i:i + 8] != want[i:i + 8]), len(data))
        results.append(("fail", "%s: differs at byte %#x" % (name, off + bad)))
    return results


def main():
    lines = open(sys.argv[1], errors="replace").read().splitlines()
    res = checks(lines, sys.argv[2])
    for i, (status, name) in enumerate(res, 1):
        print("%s %d - %s" % ("ok" if status == "pass" else "not ok", i, name))
    if not res:
        print("not ok 1 - host: no HOSTCHECK lines in %s" % sys.argv[1])
        return 1
    return 0 if all(s == "pass" for s, _ in res) else 1


if __name__ == "__main__":
    sys.exit(main())
