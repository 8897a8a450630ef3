#!/usr/bin/env python3
"""Profile sluice under the workload-1 producer (benches/run.py's setup, one broker).

    python3 benches/profile.py [--partitions 16] [--seconds 12] [--tool perf|strace]
                               [--profile-create]

Starts target/release/sluice pinned to CPU 0 on an empty dir in benches/.cache/prof/,
creates a topic, and runs ProducerPerformance (1 KiB, acks=all, idempotent, linger 5 ms)
on CPU 1 for --seconds while recording the broker:
  perf   → benches/.cache/prof/perf.data (call graphs; `perf report -i ...`)
  strace → benches/.cache/prof/strace.txt (syscall counts and times, `strace -c`)
--profile-create also records topic creation into perf-create.data.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run  # noqa: E402  (re-runs this script in benches/.cache/venv if needed)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--partitions", type=int, default=16)
    ap.add_argument("--seconds", type=int, default=12)
    ap.add_argument("--tool", choices=["perf", "strace"], default="perf")
    ap.add_argument("--profile-create", action="store_true")
    ap.add_argument("--sluice-bin", default=str(run.REPO / "target/release/sluice"))
    args = ap.parse_args()
    run.os.sched_setaffinity(0, {int(run.LOADGEN_CPU)})
    run.compile_client()
    work = run.CACHE / "prof"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    b = run.BenchSluice(work, binary=Path(args.sluice_bin))
    b.start()
    pid = str(b.proc.pid)
    try:
        rec = None
        if args.profile_create:
            rec = subprocess.Popen(["perf", "record", "-F", "499", "-g", "-p", pid, "-o",
                                    str(work / "perf-create.data")],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(0.5)
        print(run.create_topic(b, "t", args.partitions), flush=True)
        if rec:
            rec.send_signal(signal.SIGINT)
            rec.wait(timeout=60)
        if args.tool == "perf":
            rec = subprocess.Popen(["perf", "record", "-F", "499", "-g", "--call-graph",
                                    "dwarf,16384", "-p", pid, "-o", str(work / "perf.data"),
                                    "--", "sleep", str(args.seconds)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        else:
            rec = subprocess.Popen(["timeout", "-s", "INT", str(args.seconds), "strace", "-f",
                                    "-c", "-o", str(work / "strace.txt"), "-p", pid],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        res = run.producer_perf(b, "t", 10_000_000, args.seconds)
        rec.wait(timeout=120)
        print(run.short(res))
        print(f"recorded: {work / ('perf.data' if args.tool == 'perf' else 'strace.txt')}")
    finally:
        b.stop(timeout_s=60)
    return 0


if __name__ == "__main__":
    sys.exit(main())
