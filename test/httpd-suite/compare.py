#!/usr/bin/python3
"""Compares the junit XML files that run-httpd-suite.sh leaves in its
results directory (<run>-<suite>.xml, <run> being worker, perchild or
perchild-dispatch) and prints passed/failed/skipped per suite and run,
then every test that fails or is skipped in a perchild run but not in
the worker run (and the other way round).

In a dispatch run (perchild-dispatch: PerchildDispatchAll On, so the
dispatch pool alone accepts every listener) a TLS connection goes to
the pool of its server name's vhost before the handshake; a request on
it for a vhost of another pool gets 421 by design (PC0316: the TLS
session cannot move; earlier builds answered 503, PC0301 "TLS
connections are not passed on").  A failing test of such a run whose
body asked for https:// URLs (the 'schemes' property that
pcsuite_plugin.py records) while the run's error_log has one of those
lines is listed apart, as expected, and does not count as a regression.

Exit status: 0 if no perchild run fails a test that worker passes or
skips (other than those expected ones), 1 if one does, 2 if a result
file is missing or unreadable."""

import argparse
import os
import sys
import xml.etree.ElementTree as ET

BASELINE = "worker"


TLS_REFUSALS = ("TLS connections are not passed on", "PC0316")


def load(path):
    """Returns {test id: (outcome, message, schemes)}; outcome is passed,
    failed (failure or error) or skipped."""
    tests = {}
    root = ET.parse(path).getroot()
    for tc in root.iter("testcase"):
        tid = f"{tc.get('classname', '')}::{tc.get('name', '')}"
        outcome, msg = "passed", ""
        schemes = set()
        for prop in tc.iter("property"):
            if prop.get("name") == "schemes":
                schemes.update((prop.get("value") or "").split())
        for child in tc:
            if child.tag in ("failure", "error"):
                outcome = "failed"
                msg = (child.get("message") or "").strip()
                if child.tag == "error":
                    msg = "[error] " + msg
                break
            if child.tag == "skipped":
                outcome = "skipped"
                msg = (child.get("message") or "").strip()
        # a test that failed in its call and errored in teardown shows up
        # twice: keep the worse outcome
        if tid in tests and tests[tid][0] == "failed":
            continue
        tests[tid] = (outcome, msg, schemes)
    return tests


def tls_refused(results, run, suite):
    try:
        with open(os.path.join(results, f"{run}-{suite}.error_log"),
                  errors="replace") as fd:
            return any(m in line for line in fd for m in TLS_REFUSALS)
    except OSError:
        return False


def short(msg, width=110):
    msg = " ".join(msg.split())
    return msg if len(msg) <= width else msg[:width - 3] + "..."


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", required=True)
    ap.add_argument("--suites", nargs="+", required=True)
    ap.add_argument("--runs", nargs="+", required=True)
    args = ap.parse_args()

    data, missing = {}, []
    for run in args.runs:
        for suite in args.suites:
            path = os.path.join(args.results, f"{run}-{suite}.xml")
            try:
                data[(run, suite)] = load(path)
            except (OSError, ET.ParseError) as e:
                missing.append(f"{run}-{suite}: {e}")
                data[(run, suite)] = None

    # table
    hdr = f"{'suite':<8} {'run':<18} {'passed':>7} {'failed':>7} {'skipped':>8} {'total':>6}"
    print(hdr)
    print("-" * len(hdr))
    for suite in args.suites:
        for run in args.runs:
            t = data[(run, suite)]
            if t is None:
                print(f"{suite:<8} {run:<18} {'(no result: pytest did not finish)':>30}")
                continue
            n = {k: sum(1 for o, *_ in t.values() if o == k)
                 for k in ("passed", "failed", "skipped")}
            print(f"{suite:<8} {run:<18} {n['passed']:>7} {n['failed']:>7} "
                  f"{n['skipped']:>8} {len(t):>6}")
    print()

    regressions = 0
    expected = 0
    for run in args.runs:
        if run == BASELINE or not run.startswith("perchild"):
            continue
        for suite in args.suites:
            base, cur = data.get((BASELINE, suite)), data[(run, suite)]
            if cur is None:
                regressions += 1
                continue
            if base is None:
                base = {}
            new_fail = [t for t, (o, *_) in cur.items()
                        if o == "failed" and base.get(t, ("passed",))[0] != "failed"]
            new_skip = [t for t, (o, *_) in cur.items()
                        if o == "skipped" and base.get(t, ("passed",))[0] != "skipped"]
            fixed = [t for t, (o, *_) in base.items()
                     if o == "failed" and cur.get(t, ("",))[0] != "failed"]
            # a run cut short (timeout, crash) leaves tests out
            not_run = [t for t in base if t not in cur]
            tls = []
            if "dispatch" in run and tls_refused(args.results, run, suite):
                tls = [t for t in new_fail if "https" in cur[t][2]]
                new_fail = [t for t in new_fail if t not in tls]
            regressions += len(new_fail) + len(not_run)
            expected += len(tls)
            for title, ids in ((f"failed with {run}, not with {BASELINE}", new_fail),
                               (f"failed with {run} on https:// requests, expected "
                                f"(PC0316, 421; or PC0301, 503)", tls),
                               (f"ran with {BASELINE}, not with {run} (run cut short?)", not_run),
                               (f"skipped with {run}, not with {BASELINE}", new_skip),
                               (f"failed with {BASELINE}, not with {run}", fixed)):
                if not ids:
                    continue
                print(f"{suite}: {len(ids)} {title}:")
                for t in sorted(ids):
                    src = cur if t in cur else base
                    msg = short(src[t][1]) if t in cur else "(no result)"
                    print(f"  {t}\n      {msg}")
                print()
            if not (new_fail or new_skip or fixed or tls or not_run):
                print(f"{suite}: {run} has the same failures and skips as {BASELINE}")
    for m in missing:
        print(f"missing result: {m}")
    # the closing line counts what the perchild runs had
    tot = {"passed": 0, "failed": 0, "skipped": 0}
    for (run, suite), t in data.items():
        if t is None or not run.startswith("perchild"):
            continue
        for o, *_ in t.values():
            tot[o] += 1
    print()
    print(f"perchild runs: {tot['passed']} passed, {tot['failed']} failed "
          f"({expected} of them expected TLS 503s of a dispatch run), "
          f"{tot['skipped']} skipped; "
          f"{regressions} other failure(s) that {BASELINE} does not have")
    if regressions:
        return 1
    return 2 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
