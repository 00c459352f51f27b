#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Read a guest console log and judge the run.

Counts every KUnit case (Rust doctests and #[kunit_tests] included) and every
kselftest case from their TAP, the host-side data checks of the
peer-to-peer tests (hostcheck.py, when the boot's VM directory is given),
prints each failure, quotes the first kernel
splat, prints a summary table and ends with the line
``N passed, N failed`` (``, N skipped`` when any).

Exit status is non-zero on any failed test, on a missing result (a test
binary that died, a suite that did not finish, a boot that did not reach the
end of the runner) and on any KASAN, lockdep, kmemleak, WARN or BUG report.
"""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hostcheck  # noqa: E402

TS = re.compile(r"^\[\s*\d+\.\d+\] ?")
RESULT = re.compile(r"^(?P<ind>\s*)(?P<not>not )?ok (?P<num>\d+)(?: (?:- )?(?P<name>[^#]*?))?\s*(?:#\s*(?P<dir>\S+)(?P<why>.*))?$")
PLAN = re.compile(r"^(?P<ind>\s*)1\.\.(?P<n>\d+)")
SPLAT = re.compile(
    r"(WARNING: CPU: \d+ PID|------------\[ cut here \]|\bBUG: |kernel BUG at|"
    r"Oops: |Kernel panic|KASAN: |KFENCE: |UBSAN: |"
    r"WARNING: .*(locking|lock held|lock state|recursive|suspicious RCU)|"
    r"INFO: task .* blocked|unreferenced object 0x|panicked at)"
)

# Kernel reports that are known upstream problems outside this project, with
# every line that must be in the report's first lines. Each is printed as a
# NOTE, not judged; anything else fails the run.
KNOWN = [
    (
        "pciehp (upstream 7.2) takes reset_lock and pci_rescan_remove_lock in both orders "
        "in pciehp_unconfigure_device() on every hot-unplug; lockdep is off after it",
        ["possible circular locking dependency", "-pciehp/", "&ctrl->reset_lock",
         "pci_rescan_remove_lock", "pciehp_unconfigure_device"],
    ),
]


def known_splat(src, i):
    """The KNOWN entry the report at src[i] matches, or None."""
    text = "\n".join(src[i:i + 16])
    for why, needles in KNOWN:
        if all(n in text for n in needles):
            return why
    return None


def parse_tap(lines, depth_unit):
    """Return [(status, name)] for the leaf results of a (nested) TAP stream.

    status is 'pass', 'fail' or 'skip'.  A result line is a leaf when no
    result line one level deeper was seen since the last result at its level
    or above.
    """
    leaves = []
    children = {}
    for line in lines:
        m = RESULT.match(line)
        if not m:
            continue
        depth = len(m.group("ind")) // depth_unit
        has_children = children.get(depth + 1, 0) > 0
        for d in list(children):
            if d > depth:
                children[d] = 0
        children[depth] = children.get(depth, 0) + 1
        if has_children and not m.group("not"):
            continue
        d = (m.group("dir") or "").upper()
        if d == "SKIP":
            status = "skip"
        elif m.group("not") and d != "TODO":
            status = "fail"
        else:
            status = "pass"
        name = (m.group("name") or "#%s" % m.group("num")).strip()
        if has_children:
            # A parent that failed while all its children passed (e.g. a
            # test binary with a bad exit code) counts once as a failure.
            if any(s == "fail" for s, n, dd in leaves_at(leaves, depth + 1)):
                continue
        leaves.append((status, name, depth))
    return [(s, n) for s, n, _ in leaves]


def leaves_at(leaves, depth):
    out = []
    for item in reversed(leaves):
        if item[2] < depth:
            break
        out.append(item)
    return out


def section(lines, name):
    begin, end = "@@P2PDMA BEGIN " + name, "@@P2PDMA END " + name
    out, inside, closed = [], False, False
    for line in lines:
        if line.startswith(begin):
            inside = True
            continue
        if line.startswith(end):
            inside, closed = False, True
            continue
        if inside:
            out.append(line)
    return out, closed


def main():
    log = sys.argv[1]  # the guest log; sys.argv[2]: the boot's VM directory
    raw = open(log, errors="replace").read().replace("\r", "").splitlines()
    lines = [TS.sub("", l) for l in raw]
    problems = []

    # KUnit: everything the kernel printed before the runner started.
    try:
        start = next(i for i, l in enumerate(lines) if l.startswith("@@P2PDMA BEGIN mode="))
    except StopIteration:
        start = len(lines)
        problems.append("the guest runner never started (boot failed?)")
    kunit = parse_tap(lines[:start], 4)
    if not kunit:
        problems.append("no KUnit results in the boot log")

    body, closed = section(lines, "kselftest")
    # The kselftest runner nests each program's TAP under "# " prefixes.
    nested = []
    for l in body:
        depth = 0
        while l.startswith("# "):
            l, depth = l[2:], depth + 1
        nested.append("    " * depth + l)
    ksft = parse_tap(nested, 4)
    if not closed:
        problems.append("the kselftest run did not finish")
    if not ksft:
        problems.append("no kselftest results")
    plans = [int(m.group("n")) for m in map(PLAN.match, body) if m and not m.group("ind")]
    tops = [l for l in body if re.match(r"^(not )?ok \d+ ", l)]
    if plans and len(tops) < plans[0]:
        problems.append("kselftest: %d of %d test programs reported" % (len(tops), plans[0]))

    if not any(l.startswith("@@P2PDMA DONE") for l in lines):
        problems.append("the guest did not reach the end of its runner")

    # Splats anywhere: the console during boot and the dmesg dumped at the end.
    dmesg, _ = section(lines, "dmesg")
    leak, _ = section(lines, "kmemleak")
    splat_at = None
    known = []
    for src in (lines[:start], dmesg, leak):
        for i, l in enumerate(src):
            if SPLAT.search(l):
                why = known_splat(src, i)
                if why:
                    if why not in known:
                        known.append(why)
                    continue
                splat_at = (src, i)
                break
        if splat_at:
            break

    results = [("KUnit", kunit), ("kselftest", ksft)]
    if len(sys.argv) > 2:
        host = hostcheck.checks(body, sys.argv[2])
        if not host:
            problems.append("no host-side checks (HOSTCHECK lines) in the kselftest output")
        results.append(("host", host))
    passed = failed = skipped = 0
    print("\n%-12s %8s %8s %8s" % ("suite", "passed", "failed", "skipped"))
    for label, res in results:
        p = sum(1 for s, _ in res if s == "pass")
        f = sum(1 for s, _ in res if s == "fail")
        s = sum(1 for s, _ in res if s == "skip")
        passed, failed, skipped = passed + p, failed + f, skipped + s
        print("%-12s %8d %8d %8d" % (label, p, f, s))
        for st, name in res:
            if st == "fail":
                print("  FAIL  %s: %s" % (label, name))
            elif st == "skip":
                print("  SKIP  %s: %s" % (label, name))
    for p in problems:
        print("  ERROR %s" % p)
    for why in known:
        print("  NOTE  known kernel report, not judged: %s" % why)
    if splat_at:
        src, i = splat_at
        print("  ERROR kernel report in the guest log; first one:")
        for l in src[max(0, i - 2):i + 30]:
            print("    | " + l)
    print("  guest log: %s" % log)
    bad = failed or problems or splat_at
    if (problems or splat_at) and not failed:
        failed = 1  # a broken run is never reported as all-passed
    tail = ", %d skipped" % skipped if skipped else ""
    print("%d passed, %d failed%s" % (passed, failed, tail))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
