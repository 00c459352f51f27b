#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Judge the boots of `make check`.

Usage: results.py KSRC [SUITE=KTAP ...] LOG[:VMDIR] ...

For each guest console log: the KUnit results printed at boot (Rust doctests
and #[kunit_tests] included), the kselftests (their TAP, and the exit status
of run_kselftest.sh), the kernel's KASAN KUnit suite (run at the end of the
boot) and, when the boot's VM directory is given, the host-side data checks
of the peer-to-peer tests (hostcheck.py). All TAP/KTAP is read with the
kernel's own parser, tools/testing/kunit/kunit_parser.py. SUITE=KTAP adds
the results of a host-side suite (such as the compile-fail cases) once.

Prints a table per boot with every failed or skipped test and the first
kernel report quoted, and ends with one line ``N passed, N failed`` (``, N
skipped`` when any) over all boots. Exit status is non-zero on any failed
test, on a missing result (a test binary that died, a suite that did not
finish, a boot that did not reach the end of the runner, a non-zero exit of
run_kselftest.sh) and on any KASAN, lockdep, kmemleak, WARN or BUG report
outside the KASAN suite's own test cases.
"""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hostcheck  # noqa: E402

TS = re.compile(r"^\[\s*\d+\.\d+\] ?")
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

# Test cases that run but are not judged, each with the reason printed.
LEFT_OUT = {
    ("kasan", "kasan.kasan_strings"):
        "fails in 7.2.13 with gcc and clang alike (strscpy() over-read check), not a toolchain "
        "or project problem",
}

# Cases that must have run and passed: KASAN must catch a use-after-free in
# Rust code.
REQUIRED = [("kasan", "kasan.rust_uaf")]

# The KASAN suite provokes KASAN reports (and the WARNs of some of its cases)
# on purpose: in the kernel log they lie between its Subtest line and its
# result line, and only there are they expected.
KASAN_BEGIN = re.compile(r"^\s*# Subtest: kasan$")
KASAN_END = re.compile(r"^\s*(not )?ok \d+ kasan$")


def kunit_parser(ksrc):
    sys.path.insert(0, os.path.join(ksrc, "tools/testing/kunit"))
    import kunit_parser as kp  # noqa: E402
    from kunit_printer import null_printer  # noqa: E402
    return kp, null_printer


# The last lines a failed test case printed (its TH_LOG / KUNIT_EXPECT
# messages), by full name (unique within one log), shown under its FAIL line:
# CI prints only the summary. Cleared for each log.
DIAG = {}
DIAG_LINES = 8


def leaves(kp, test, prefix=None):
    """[(status, name)] of the test cases of a parsed KTAP tree.

    status is 'pass', 'fail' or 'skip' (with the reason). A parent that failed
    while all its cases passed (a test program with a bad exit code, a crash
    after the last case) counts once as a failure of its own. The root (the
    whole log) gives no part of the names.
    """
    name = test.name if not prefix else prefix + "." + test.name
    if not test.subtests:
        if test.status == kp.TestStatus.SUCCESS:
            return [("pass", name)]
        if test.status == kp.TestStatus.SKIPPED:
            why = getattr(test, "skip_reason", "")
            return [("skip", name + (" (%s)" % why if why else ""))]
        DIAG[name] = [l.strip() for l in test.log if l.strip()][-DIAG_LINES:]
        return [("fail", name)]
    out = []
    for sub in test.subtests:
        out += leaves(kp, sub, name if prefix is not None else "")
    if not test.ok_status() and test.status != kp.TestStatus.NO_TESTS and \
            not any(s == "fail" for s, _ in out):
        out.append(("fail", "%s (%s)" % (name or "the run", test.status.name)))
    return out


def parse(kp, printer, lines, what, problems):
    """Leaves of the KTAP in lines; parse errors and missing results are problems."""
    test = kp.parse_run_tests(lines, printer)
    if test.status in (kp.TestStatus.FAILURE_TO_PARSE_TESTS, kp.TestStatus.NO_TESTS):
        problems.append("%s: no results" % what)
        return []
    if test.counts.errors:
        problems.append("%s: %d KTAP error(s) (missing or malformed results)" %
                        (what, test.counts.errors))
    return leaves(kp, test)


def section(lines, name):
    """The lines of the runner's section NAME, without any other section nested in it
    (the watchdog's, printed while the kselftests run); and whether it ended."""
    begin, end = "@@P2PDMA BEGIN " + name, "@@P2PDMA END " + name
    out, inside, closed, nested = [], False, False, None
    for line in lines:
        if nested:
            if line.startswith("@@P2PDMA END " + nested):
                nested = None
            continue
        if line.startswith(begin):
            inside = True
            continue
        if line.startswith(end):
            inside, closed = False, True
            continue
        if inside and line.startswith("@@P2PDMA BEGIN "):
            nested = line.split()[2]
            continue
        if inside:
            out.append(line)
    return out, closed


def known_splat(src, i):
    """The KNOWN entry the report at src[i] matches, or None."""
    text = "\n".join(src[i:i + 16])
    for why, needles in KNOWN:
        if all(n in text for n in needles):
            return why
    return None


def first_splat(sources, known):
    """(src, index) of the first report not known and not provoked by the KASAN suite."""
    for src in sources:
        in_kasan = False
        for i, l in enumerate(src):
            if KASAN_BEGIN.match(l):
                in_kasan = True
            elif in_kasan and KASAN_END.match(l):
                in_kasan = False
            if in_kasan or not SPLAT.search(l):
                continue
            why = known_splat(src, i)
            if why:
                if why not in known:
                    known.append(why)
                continue
            return src, i
    return None


RUN = re.compile(r"^\s*#?\s*RUN\s+(\S+) \.\.\.")
END = re.compile(r"^\s*#?\s*(OK|FAIL|SKIP)\s+(\S+)")


def running_case(nested):
    """The kselftest case that started last and has no result, or a phrase."""
    last = None
    for l in nested:
        m = RUN.match(l)
        if m:
            last = m.group(1)
        m = END.match(l)
        if m and m.group(2) == last:
            last = None
    return last or "no case (between two programs)"


# Frames of a blocked task's stack that say nothing about where it waits.
DULL = re.compile(r"^(__schedule|schedule|schedule_timeout|schedule_preempt_disabled|"
                  r"__mutex_lock|mutex_lock|__ww_mutex_lock|ww_mutex_lock|do_syscall_64|"
                  r"entry_SYSCALL_64|x64_sys_call|io_schedule|__wait_for_common|"
                  r"wait_for_completion|do_nanosleep|hrtimer_nanosleep|"
                  # the NMI's and the panic's own frames
                  r"vpanic|panic|nmi_|unknown_nmi_error|exc_nmi|end_repeat_nmi|default_do_nmi|"
                  r"sys_info|dump_stack|show_stack)")
# The watchdog's own tools (harness/init), not worth naming.
TOOLS = {"sh", "sed", "tr", "cat", "cut", "sleep", "init"}


def rust_name(sym):
    """The last two names of the path of a Rust v0 symbol (_R...): enough to read a
    stack by (generic arguments may stand in for the function)."""
    if not sym.startswith("_R"):
        return sym
    s = re.sub(r"[CNM]s[0-9A-Za-z]*_", "C", sym[2:])  # disambiguators
    s = re.sub(r"B[0-9A-Za-z]*_", "", s)  # back references
    parts, i = [], 0
    while i < len(s):
        m = re.match(r"(\d+)_?", s[i:])
        if not m:
            i += 1
            continue
        n, j = int(m.group(1)), i + m.end()
        ident = s[j:j + n]
        if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", ident or "-"):
            parts.append(ident)
            i = j + n
        else:
            i = j
    return "::".join(parts[-2:]) or sym


def watchdog(lines):
    """One line per blocked task and per user process the guest's watchdog found
    (harness/init): name, pid, state and the telling frames of its kernel stack."""
    body, _ = section(lines, "watchdog")
    out, task = [], None
    for l in body + ["@@TASK"]:
        if l.startswith("@@TASK"):
            if task and (task[2] == "D" or (task[3] and task[0] not in TOOLS)):
                out.append("%s[%s] %s: %s" % (task[0], task[1], task[2],
                                              " < ".join(task[4][:8]) or "(no kernel stack)"))
            # "@@TASK PID STATE user|kernel COMM", COMM perhaps with spaces.
            f = l.split(None, 4)
            task = [f[4], f[1], f[2], f[3] == "user", []] if len(f) == 5 else None
        elif task is not None:
            frame = rust_name(re.sub(r"^\s*\[<[0-9a-f]+>\]\s*", "", l).split("+")[0].strip())
            if frame and not DULL.match(frame):
                task[4].append(frame)
    return out


STACK_HEAD = re.compile(r"(task:(\S+)\s+state:(\S).*?\spid:(\d+)|NMI backtrace for cpu (\d+)|"
                        r"CPU: (\d+) UID: \d+ PID: (\d+) Comm: (\S+))")
FRAME = re.compile(r"^\s+([A-Za-z_][\w.]*)\+0x[0-9a-f]+/0x[0-9a-f]+")


def panic_stacks(lines):
    """One line per stack a panic printed (an NMI at the deadline, harness/qemu.sh):
    each blocked task's and each CPU's, with their telling frames; once each."""
    out, head, frames = [], None, []
    for l in lines + ["task:end state:-  pid:0"]:
        m = STACK_HEAD.search(l)
        if m:
            if head and frames:
                line = "%s: %s" % (head, " < ".join(frames[:8]))
                if line not in out:
                    out.append(line)
            if m.group(2):
                head = "%s[%s] %s" % (m.group(2), m.group(4), m.group(3))
            elif m.group(5):
                head = "cpu %s" % m.group(5)
            else:
                head = "cpu %s, %s[%s]" % (m.group(6), m.group(8), m.group(7))
            frames = []
            continue
        f = FRAME.match(l)
        if head and f:
            name = rust_name(f.group(1))
            if not DULL.match(name):
                frames.append(name)
    return out


HEADER = "\n%-12s %8s %8s %8s" % ("suite", "passed", "failed", "skipped")


def tally(label, res):
    """Prints a suite's row, its failed and skipped cases (with what a failed one
    printed last); returns (passed, failed, skipped)."""
    p = sum(1 for st, _ in res if st == "pass")
    f = sum(1 for st, _ in res if st == "fail")
    s = sum(1 for st, _ in res if st == "skip")
    print("%-12s %8d %8d %8d" % (label, p, f, s))
    for st, name in res:
        if st != "pass":
            print("  %s  %s: %s" % (st.upper(), label, name or "(a result that never came)"))
        for line in DIAG.get(name, []) if st == "fail" else []:
            print("        | " + line)
    return p, f, s


def judge(kp, printer, log, vm):
    """Print one boot's table; return (passed, failed, skipped, ok)."""
    DIAG.clear()
    raw = open(log, errors="replace").read().replace("\r", "").splitlines()
    lines = [TS.sub("", l) for l in raw]
    problems, notes = [], []

    # KUnit at boot: everything the kernel printed before the runner started.
    try:
        start = next(i for i, l in enumerate(lines) if l.startswith("@@P2PDMA BEGIN mode="))
    except StopIteration:
        start = len(lines)
        problems.append("the guest runner never started (boot failed?)")
    kunit = parse(kp, printer, lines[:start], "KUnit at boot", problems)

    # kselftests: run_kselftest.sh nests each program's TAP under "# "
    # prefixes; KTAP nests by indentation.
    body, ksft_closed = section(lines, "kselftest")
    nested = []
    for l in body:
        depth = 0
        while l.startswith("# "):
            l, depth = l[2:], depth + 1
        nested.append("    " * depth + l)
    ksft = parse(kp, printer, nested, "kselftest", problems)
    if not ksft_closed:
        problems.append("the kselftest run did not finish")
    rc = [l.split()[-1] for l in lines if l.startswith("@@P2PDMA KSELFTEST-EXIT ")]
    if not rc:
        problems.append("run_kselftest.sh reported no exit status")
    elif rc[0] != "0":
        problems.append("run_kselftest.sh exited with status %s" % rc[0])

    # The KASAN suite, from its debugfs results file.
    kasan_lines, closed = section(lines, "kasan")
    kasan = parse(kp, printer, kasan_lines, "KASAN KUnit suite", problems) if closed else []
    if not closed:
        problems.append("the KASAN KUnit suite did not run")
    if not any("KernelAddressSanitizer initialized" in l for l in lines[:start]):
        problems.append("KASAN did not say it is initialized")

    # Reports anywhere: the console during boot and the dmesg dumped at the
    # end, or, when the runner never got there, the console up to its end
    # (a hung task's report among them).
    dmesg, _ = section(lines, "dmesg")
    leak, _ = section(lines, "kmemleak")
    sources = (lines[:start], dmesg, leak)
    if not any(l.startswith("@@P2PDMA DONE") for l in lines):
        problems.append("the guest did not reach the end of its runner")
        if not ksft_closed:
            problems.append("the kselftest run stopped in %s" % running_case(nested))
        sources = (lines,)
    known = []
    splat_at = first_splat(sources, known)

    results = [("KUnit", kunit), ("kselftest", ksft), ("kasan", kasan)]
    if vm:
        host = hostcheck.checks(body, vm)
        if not host:
            problems.append("no host-side checks (HOSTCHECK lines) in the kselftest output")
        results.append(("host", host))

    for label, name in REQUIRED:
        got = [st for l, res in results if l == label for st, n in res if n == name]
        if got != ["pass"]:
            problems.append("%s: %s did not pass (%s)" % (label, name, got or "missing"))

    passed = failed = skipped = 0
    print(HEADER)
    for label, res in results:
        kept = []
        for st, name in res:
            why = LEFT_OUT.get((label, name))
            if why:
                notes.append("%s: %s left out (was %s): %s" % (label, name, st, why))
            else:
                kept.append((st, name))
        p, f, s = tally(label, kept)
        passed, failed, skipped = passed + p, failed + f, skipped + s
    if os.path.exists(log + ".qemu-crash"):
        notes.append("QEMU crashed in a first boot (its log: %s.qemu-crash) and the boot ran "
                     "again; this is the second" % log)
    exit_file = os.path.join(vm, "qemu-exit") if vm else ""
    if os.path.exists(exit_file):
        rc = int(open(exit_file).read().strip() or 0)
        if rc in (124, 137):
            problems.append("QEMU was killed at the time limit")
        elif rc > 128:
            problems.append("QEMU itself crashed (signal %d), not the guest: the log ends where "
                            "it died" % (rc - 128))
    if vm and os.path.exists(os.path.join(vm, "qmp.log")):
        qmp = open(os.path.join(vm, "qmp.log"), errors="replace").read().splitlines()
        nmi = [i for i, l in enumerate(qmp) if l.startswith("-> inject-nmi")]
        if nmi:
            answered = any('"return"' in l for l in qmp[nmi[0] + 1:])
            problems.append("the guest ran into the deadline: NMI injected, %s" %
                            ("QEMU took it" if answered else "QEMU did not answer (QEMU hung?)"))
    for p in problems:
        print("  ERROR %s" % p)
    for n in notes:
        print("  NOTE  %s" % n)
    for why in known:
        print("  NOTE  known kernel report, not judged: %s" % why)
    if splat_at:
        src, i = splat_at
        print("  ERROR kernel report in the guest log; first one:")
        for l in src[max(0, i - 2):i + 30]:
            print("    | " + l)
    # Not judged: a slow run the watchdog saw may still have ended in time.
    for t in watchdog(lines):
        print("  WATCHDOG " + t)
    panic = next((i for i, l in enumerate(lines) if "Kernel panic - not syncing" in l), None)
    if panic is not None:
        for t in panic_stacks(lines[panic:])[:12]:
            print("  PANIC  " + t)
    ok = not (failed or problems or splat_at)
    if not ok and not failed:
        failed = 1  # a broken boot is never reported as all-passed
    tail = ", %d skipped" % skipped if skipped else ""
    print("  %s: %d passed, %d failed%s" % (log, passed, failed, tail))
    return passed, failed, skipped, ok


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    kp, printer = kunit_parser(sys.argv[1])
    total = [0, 0, 0]
    all_ok = True
    for arg in [a for a in sys.argv[2:] if "=" in a]:
        label, _, path = arg.partition("=")
        print("== %s (%s)" % (label, path))
        problems = []
        res = parse(kp, printer, open(path).read().splitlines(), label, problems) \
            if os.path.exists(path) else []
        if not os.path.exists(path):
            problems.append("%s did not run (no %s)" % (label, path))
        print(HEADER)
        p, f, s = tally(label, res)
        for pr in problems:
            print("  ERROR %s" % pr)
        f = f or len(problems)
        print("  %s: %d passed, %d failed%s" % (label, p, f, ", %d skipped" % s if s else ""))
        total = [total[0] + p, total[1] + f, total[2] + s]
        all_ok = all_ok and not f
    for arg in [a for a in sys.argv[2:] if "=" not in a]:
        log, _, vm = arg.partition(":")
        print("== %s" % log)
        p, f, s, ok = judge(kp, printer, log, vm or None)
        total = [total[0] + p, total[1] + f, total[2] + s]
        all_ok = all_ok and ok
    tail = ", %d skipped" % total[2] if total[2] else ""
    print("\n%d passed, %d failed%s" % (total[0], total[1], tail))
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
