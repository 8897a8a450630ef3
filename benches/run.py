#!/usr/bin/env python3
"""Apache Kafka vs sluice, same machine, same clients, same run (issue 6).

    python3 benches/run.py --quick     # under 5 minutes; writes benches/RESULTS.md + latency.png
    python3 benches/run.py --full      # the sizes the issue asks for (>= 2 GiB read, ...)
    python3 benches/run.py --smoke     # seconds; checks the harness; writes to benches/.cache/

Each broker runs alone, on an empty data dir, pinned to CPU 0 (``taskset -c 0``); every
load generator (and this script) runs on CPU 1. The brokers are started by
``compat/tests/brokers.py`` (``KafkaBroker``: KRaft single node from the Maven jars in
``compat/.cache/kafka-lib``, ``SluiceBroker``: ``target/release/sluice``). See
benches/README.md for the workloads, the durability rows and how to read the table.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import resource
import shutil
import struct
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
CACHE = BENCH_DIR / ".cache"
VENV = CACHE / "venv"
CLASSES = CACHE / "classes"
BROKER_CPU = "0"
LOADGEN_CPU = "1"
RECORD_BYTES = 1024
MIB = 1 << 20
GIB = 1 << 30


def ensure_venv() -> None:
    """Re-run the script inside benches/.cache/venv (with matplotlib), creating it once."""
    if Path(sys.prefix).resolve() == VENV.resolve():
        return
    py = VENV / "bin" / "python"
    if not py.exists() or subprocess.run([str(py), "-c", "import matplotlib"],
                                         capture_output=True).returncode != 0:
        print(f"[bench] creating {VENV} with matplotlib", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(VENV / "bin" / "pip"), "install", "-q", "matplotlib"], check=True)
    # The script being run (run.py, or profile.py which imports this module).
    os.execv(str(py), [str(py), str(Path(sys.argv[0]).resolve()), *sys.argv[1:]])


ensure_venv()

sys.path.insert(0, str(REPO / "compat" / "tests"))
sys.path.insert(0, str(BENCH_DIR))
import brokers  # noqa: E402  (compat/tests/brokers.py: start/stop/kill both brokers)
import machine  # noqa: E402
import report  # noqa: E402

# ------------------------------------------------------------------------------ sizes
MODES = {
    # Records are 1 KiB. Produce runs stop at *_records or *_max_s, whichever comes first.
    # The topic of workload 1 (+ 2) is what the catch-up read (3) reads back and what is
    # on disk for the kill -9 restart (5); full mode tops it up to w3_min_bytes first.
    "smoke": dict(w1_records=20_000, w1_max_s=10, w1b_records=20_000, w1b_max_s=10,
                  w2_warmup_s=1, w2_measure_s=3, w4_records=10_000, w4_max_s=10, idle_s=1,
                  loopback_s=0.5, fsync_s=0.5, w3_min_bytes=0, stop_max_s=10,
                  w1r_records=20_000, w1r_max_s=5, w3_max_records=None,
                  w3r_max_records=None, w5_bytes=16 * MIB),
    "quick": dict(w1_records=400_000, w1_max_s=15, w1b_records=400_000, w1b_max_s=12,
                  w2_warmup_s=2, w2_measure_s=10, w4_records=200_000, w4_max_s=15, idle_s=2,
                  loopback_s=2, fsync_s=2, w3_min_bytes=0, stop_max_s=20,
                  w1r_records=3_000_000, w1r_max_s=10, w3_max_records=400_000,
                  w3r_max_records=None, w5_bytes=256 * MIB),
    "full": dict(w1_records=2_400_000, w1_max_s=600, w1b_records=2_000_000, w1b_max_s=120,
                 w2_warmup_s=10, w2_measure_s=60, w4_records=1_000_000, w4_max_s=180,
                 idle_s=10, loopback_s=5, fsync_s=5, w3_min_bytes=2 * GIB, stop_max_s=60,
                 w1r_records=4_000_000, w1r_max_s=60, w3_max_records=None,
                 w3r_max_records=None, w5_bytes=2 * GIB),
}


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ------------------------------------------------------------------------------ brokers
class Pinned:
    """Mixin for the brokers.py classes: pin to the broker core and time the start.

    ``start_s`` is the time from just before the process is spawned to the first
    answered ApiVersions, polled every 2 ms (brokers.py polls every 100 ms, fine for
    tests but too coarse for a measured figure).
    """

    start_s: float | None = None

    def _command(self) -> list[str]:
        self._spawned_at = time.perf_counter()
        return ["taskset", "-c", BROKER_CPU] + super()._command()

    def _wait_ready(self) -> None:
        deadline = time.perf_counter() + self.start_timeout_s
        last_err = None
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                raise brokers.BrokerError(f"{self.kind} exited with {self.proc.returncode} "
                                          f"during startup\n{self.log_tail()}")
            try:
                brokers.api_versions(self.host, self.port, timeout_s=1.0)
                self.start_s = time.perf_counter() - self._spawned_at
                return
            except (OSError, ValueError, struct.error) as e:
                last_err = e
                time.sleep(0.002)
        raise brokers.BrokerError(f"{self.kind} not ready after {self.start_timeout_s}s "
                                  f"({last_err!r})\n{self.log_tail()}")


class BenchKafka(Pinned, brokers.KafkaBroker):
    pass


class BenchSluice(Pinned, brokers.SluiceBroker):
    def _prepare(self) -> None:
        # Kafka's timed start follows its storage format, which ran the same jars and
        # left them in the page cache; run the sluice binary once too, so both starts
        # are timed warm (a cold binary read from disk added ~70-90 ms here).
        super()._prepare()
        subprocess.run([str(self.binary), "--version"], check=True, capture_output=True)


# ------------------------------------------------------------------------------ /proc
def proc_status(pid: int) -> dict[str, int]:
    """VmRSS / VmHWM / RssAnon / RssFile in bytes."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
            out[key] = int(rest.split()[0]) * 1024
    return out


def cpu_seconds(pid: int) -> float:
    """utime + stime of the whole process (all threads)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class RssSampler:
    """Peak VmRSS (and its anon/file split) of a process, sampled every 100 ms."""

    def __init__(self, pid: int):
        self.pid, self.peak, self._stop = pid, {"VmRSS": 0}, threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            try:
                s = proc_status(self.pid)
            except OSError:
                return
            if s.get("VmRSS", 0) > self.peak["VmRSS"]:
                self.peak = s

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join(timeout=5)


def dir_bytes(path: Path) -> int:
    """Allocated bytes under path (sparse index files count what they use)."""
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.stat(os.path.join(root, f)).st_blocks * 512
            except OSError:
                pass
    return total


def topic_bytes(data_dir: Path, topic: str) -> int:
    """Allocated bytes of a topic's partition dirs (``<topic>-<n>``, at any depth <= 2:
    Kafka keeps them in the data dir, sluice under ``logs/``)."""
    dirs = list(data_dir.glob(f"{topic}-*")) + list(data_dir.glob(f"*/{topic}-*"))
    return sum(dir_bytes(d) for d in dirs if d.is_dir() and d.name.rsplit("-", 1)[1].isdigit())


# ------------------------------------------------------------------------------ clients
def java(main: str, *args: str, heap: str = "512m", fast_start: bool = False) -> list[str]:
    """brokers.java_command pinned to the load-generator core, with benches' classes."""
    cmd = brokers.java_command(main, *map(str, args), heap=heap, fast_start=fast_start)
    i = cmd.index("-cp")
    cmd[i + 1] = f"{cmd[i + 1]}:{CLASSES}"
    return ["taskset", "-c", LOADGEN_CPU] + cmd


def run_tool(cmd: list[str], timeout_s: float, what: str) -> str:
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s,
                         cwd=CACHE)
    if res.returncode != 0:
        raise RuntimeError(f"{what} failed ({res.returncode}):\n{res.stdout[-3000:]}\n"
                           f"{res.stderr[-3000:]}")
    return res.stdout


def last_json(stdout: str) -> dict:
    for line in reversed(stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise RuntimeError(f"no JSON line in output:\n{stdout[-2000:]}")


def compile_client() -> None:
    src = BENCH_DIR / "java" / "BenchClient.java"
    out = CLASSES / "BenchClient.class"
    if out.exists() and out.stat().st_mtime >= src.stat().st_mtime:
        return
    CLASSES.mkdir(parents=True, exist_ok=True)
    subprocess.run(["javac", "-nowarn", "-cp", f"{brokers.KAFKA_LIB}/*", "-d", str(CLASSES),
                    str(src)], check=True, timeout=300)


def create_topic(b: brokers.Broker, topic: str, partitions: int) -> dict:
    return last_json(run_tool(java("BenchClient", "create", b.bootstrap, topic, partitions,
                                   heap="256m", fast_start=True), 300, "create topic"))


PERF_FINAL = re.compile(
    r"(\d+) records sent, ([\d.]+) records/sec \(([\d.]+) MB/sec\), ([\d.]+) ms avg latency, "
    r"([\d.]+) ms max latency, (\d+) ms 50th, (\d+) ms 95th, (\d+) ms 99th, (\d+) ms 99.9th")
PERF_WINDOW = re.compile(
    r"^(\d+) records sent, ([\d.]+) records/sec \(([\d.]+) MB/sec\), ([\d.]+) ms avg latency, "
    r"([\d.]+) ms max latency\.?$")


def producer_perf(b: brokers.Broker, topic: str, records: int, max_s: float) -> dict:
    """Kafka's ProducerPerformance at full speed: 1 KiB records, acks=all, idempotent,
    linger.ms=5 (other producer settings at their defaults), for ``records`` records or
    ``max_s`` seconds, whichever comes first. When the time is up the tool is killed and
    the figures come from its 1-second progress lines (``"stopped_at_s"`` is set)."""
    cmd = java("org.apache.kafka.tools.ProducerPerformance",
               "--bootstrap-server", b.bootstrap, "--topic", topic,
               "--num-records", records, "--record-size", RECORD_BYTES, "--throughput", -1,
               "--reporting-interval", 1000,
               "--command-property", "acks=all", "enable.idempotence=true", "linger.ms=5",
               heap="1g")
    cpu0 = cpu_seconds(b.proc.pid)
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    lines: list[str] = []
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            cwd=CACHE)
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    stopped = None
    try:
        proc.wait(timeout=max_s)
    except subprocess.TimeoutExpired:
        stopped = time.perf_counter() - t0
        proc.kill()
        proc.wait(timeout=30)
    reader.join(timeout=10)
    wall = time.perf_counter() - t0
    cpu = cpu_seconds(b.proc.pid) - cpu0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    # The load generator's own CPU (it has one core): near 100% means the client, not
    # the broker, set the pace.
    client_cpu = (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)
    final = windows = None
    windows = [PERF_WINDOW.match(x.strip()) for x in lines]
    windows = [w for w in windows if w]
    for x in lines:
        final = PERF_FINAL.search(x) or final
    # Throughput: records acknowledged in whole 1 s progress windows / their time, the
    # first window (connection, metadata, JIT ramp-up) left out, the same rule whether the
    # run finished or hit the cap (the summary line of a finished run also counts the
    # ramp-up and the drain); the summary line when there are fewer than 5 windows.
    steady = windows[1:] if len(windows) >= 5 else windows
    w_sent = sum(int(w.group(1)) for w in steady)
    w_secs = sum(int(w.group(1)) / float(w.group(2)) for w in steady if float(w.group(2)))
    res: dict = {"windows": len(windows), "stopped_at_s": stopped}
    if final and proc.returncode == 0:
        sent = int(final.group(1))
        res.update({"summary_records_per_s": float(final.group(2)),
                    "avg_ms": float(final.group(4)), "max_ms": float(final.group(5)),
                    "p50_ms": int(final.group(6)), "p95_ms": int(final.group(7)),
                    "p99_ms": int(final.group(8)), "p999_ms": int(final.group(9))})
        rps = w_sent / w_secs if len(windows) >= 5 and w_secs else float(final.group(2))
    elif stopped and windows:
        sent = sum(int(w.group(1)) for w in windows)
        rps = w_sent / w_secs if w_secs else 0.0
        res.update({"avg_ms": sum(float(w.group(4)) * int(w.group(1)) for w in windows) / sent
                    if sent else 0.0, "max_ms": max(float(w.group(5)) for w in windows),
                    "p50_ms": None, "p95_ms": None, "p99_ms": None, "p999_ms": None})
    else:
        raise RuntimeError(f"ProducerPerformance failed (exit {proc.returncode}, "
                           f"stopped {stopped}):\n{''.join(lines)[-3000:]}")
    gib = sent * RECORD_BYTES / GIB
    res.update({"records": sent, "records_per_s": rps, "mib_per_s": rps * RECORD_BYTES / MIB,
                "broker_cpu_s": cpu, "wall_s": wall, "client_cpu_s": client_cpu,
                "client_cpu_share": client_cpu / wall if wall else None,
                "broker_cpu_s_per_gib": cpu / gib if gib else None})
    return res


LOADGEN_DIR = BENCH_DIR / "loadgen"
LOADGEN = CACHE / "loadgen-target" / "release" / "sluice-loadgen"


def ensure_loadgen() -> Path:
    """benches/loadgen (the librdkafka load generator), built once into benches/.cache."""
    print("[bench] building benches/loadgen (librdkafka; the first build takes a minute)",
          flush=True)
    subprocess.run(["cargo", "build", "--release", "--locked", "--quiet",
                    "--manifest-path", str(LOADGEN_DIR / "Cargo.toml")], check=True,
                   env={**os.environ, "CARGO_TARGET_DIR": str(CACHE / "loadgen-target")})
    return LOADGEN


def rdkafka_peak(b: brokers.Broker, topic: str, records: int, max_s: float,
                 batch_bytes: int | None = None) -> dict:
    """`sluice-loadgen produce` (librdkafka) on the load-generator core."""
    cmd = ["taskset", "-c", LOADGEN_CPU, str(LOADGEN), "produce", b.bootstrap, topic,
           str(records), str(max_s), *([str(batch_bytes)] if batch_bytes else [])]
    cpu0 = cpu_seconds(b.proc.pid)
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    res = last_json(run_tool(cmd, max_s + 120, "sluice-loadgen produce"))
    wall = time.perf_counter() - t0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = cpu_seconds(b.proc.pid) - cpu0
    client_cpu = (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)
    gib = res["records"] * RECORD_BYTES / GIB
    res.update({"broker_cpu_s": cpu, "broker_cpu_s_per_gib": cpu / gib if gib else None,
                "client_cpu_s": client_cpu, "wall_s": wall,
                "client_cpu_share": client_cpu / wall if wall else None})
    return res


def rdkafka_consume(b: brokers.Broker, topic: str, max_records: int | None) -> dict:
    """`sluice-loadgen consume` (librdkafka catch-up read) on the load-generator core."""
    cmd = ["taskset", "-c", LOADGEN_CPU, str(LOADGEN), "consume", b.bootstrap, topic, "900",
           *([str(max_records)] if max_records else [])]
    cpu0 = cpu_seconds(b.proc.pid)
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    res = last_json(run_tool(cmd, 1000, "sluice-loadgen consume"))
    wall = time.perf_counter() - t0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if res.get("keyed_records"):
        raise RuntimeError("records carry keys: the MiB/s of workload 1 would leave them out")
    res.update({"topic": topic, "broker_cpu_s": cpu_seconds(b.proc.pid) - cpu0,
                # Includes the client's start and the metadata look-ups.
                "client_cpu_s": (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime),
                "client_wall_s": wall})
    return res


# ------------------------------------------------------------------------------ one broker
def new_broker(kind: str, row: str, work: Path, sluice_bin: Path | None) -> brokers.Broker:
    """A broker of ``kind`` on the empty dir ``work``, configured for durability ``row``."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    if kind == "kafka":
        overrides = {"log.flush.interval.messages": "1"} if row == "fsync" else {}
        # Kafka's own start script's default heap (kafka-server-start.sh: -Xmx1G -Xms1G).
        return BenchKafka(work, heap="1g", overrides=overrides, start_timeout_s=120)
    return BenchSluice(work, binary=sluice_bin, start_timeout_s=60)


def run_restart(kind: str, cfg: dict, work: Path, sluice_bin: Path | None) -> dict:
    """Workload 5c on a data dir of its own: ``w5_bytes`` of 1 KiB records (2 GiB in full
    mode, as the target states) produced to 16 partitions by the librdkafka client in
    16 KiB batches with the fsync row's durability, then kill -9 and the time from the new process's spawn
    to its first answered ApiVersions."""
    b = new_broker(kind, "fsync", work, sluice_bin)
    r: dict = {"kind": kind, "row": "restart", "errors": {}}
    try:
        b.start()
        create_topic(b, "restart16", 16)
        # Java-sized batches (16 KiB), not librdkafka's 1 MB ones: recovery walks one
        # header per batch, so this is the harder of the two shapes.
        r["produce"] = rdkafka_peak(b, "restart16", cfg["w5_bytes"] // RECORD_BYTES, 1800,
                                    batch_bytes=16384)
        r["w5_restart"] = w = restart_after_kill9(b)
        log(f"{kind}/restart: {w['data_dir_bytes'] / GIB:.2f} GiB on disk, ready again in "
            f"{w['start_s'] * 1000:.0f} ms")
    except Exception as e:  # noqa: BLE001
        broker_failed(r, f"{kind}/restart", e)
    finally:
        b.stop()
        r["broker_log_tail"] = b.log_tail(15) if r["errors"] else ""
    return r


def restart_after_kill9(b: brokers.Broker) -> dict:
    """kill -9, start again on the same data: the time to the first ApiVersions."""
    on_disk = dir_bytes(b.data_dir)
    b.kill9()
    b.start_timeout_s = 180
    b.start()
    return {"data_dir_bytes": on_disk, "start_s": b.start_s,
            "rss_after_restart": proc_status(b.proc.pid)}


def broker_failed(r: dict, label: str, e: Exception) -> None:
    r["errors"]["broker"] = f"{type(e).__name__}: {e}"[:4000]
    log(f"{label}: FAILED: {e}")


def run_broker(kind: str, row: str, cfg: dict, work: Path, sluice_bin: Path | None,
               w2_rate: float | None, full_set: bool, w3_records: int | None = None,
               w3r_records: int | None = None, catch_up_only: bool = False) -> dict:
    """Start one broker on an empty dir and run the workloads of one durability row.

    row "fsync": Kafka with log.flush.interval.messages=1, sluice by default.
    row "tmpfs": both on tmpfs (fsync is a no-op there), Kafka with its default flush
    policy (never fsync on the write path); only the peak produce workload.
    catch_up_only: only what workloads 3/3b need (the librdkafka topic, then both reads).
    """
    b = new_broker(kind, row, work, sluice_bin)
    r: dict = {"kind": kind, "row": row, "errors": {}}

    def step(name: str, fn):
        log(f"{kind}/{row}: {name}")
        try:
            r[name] = fn()
            log(f"{kind}/{row}: {name} -> {short(r[name])}")
        except Exception as e:  # noqa: BLE001  (one failed workload must not stop the run)
            r["errors"][name] = f"{type(e).__name__}: {e}"[:4000]
            log(f"{kind}/{row}: {name} FAILED: {str(e)[:800]}")
            traceback.print_exc(limit=3)

    try:
        b.start()
        r["start_empty_s"] = b.start_s
        time.sleep(cfg["idle_s"])
        r["idle_rss"] = proc_status(b.proc.pid)
        log(f"{kind}/{row}: ready in {b.start_s * 1000:.0f} ms, idle RSS "
            f"{r['idle_rss']['VmRSS'] / MIB:.1f} MiB")
        topic = "bench16"
        step("create16", lambda: create_topic(b, topic, 16))
        n1, t1 = (cfg["w1_records"], cfg["w1_max_s"]) if row == "fsync" else \
            (cfg["w1b_records"], cfg["w1b_max_s"])
        if not catch_up_only:
            step("w1", lambda: producer_perf(b, topic, n1, t1))
        # Same workload, librdkafka client: its own topic so workload 3's data stays the
        # Java producer's alone.
        step("create16r", lambda: create_topic(b, "bench16r", 16))
        step("w1r", lambda: rdkafka_peak(b, "bench16r", cfg["w1r_records"], cfg["w1r_max_s"]))
        if not full_set:
            return r
        rate = w2_rate or (r["w1"]["records_per_s"] / 2 if "w1" in r else 1000)
        r["w2_rate"] = rate

        def fixed():
            # The disk's own fsync latency beside the run, from the same filesystem.
            with machine.FsyncProbe(work) as probe:
                out = run_tool(java("BenchClient", "fixed-rate", b.bootstrap, topic,
                                    f"{rate:.1f}", cfg["w2_warmup_s"], cfg["w2_measure_s"],
                                    RECORD_BYTES, heap="1g"),
                               (cfg["w2_warmup_s"] + cfg["w2_measure_s"]) * 3 + 120,
                               "fixed-rate")
            result = last_json(out)
            # The JVM start comes before the warm-up; skipping the warm-up alone keeps
            # a little more than the measured window.
            result["disk_probe"] = probe.stats(skip_s=cfg["w2_warmup_s"])
            return result
        if not catch_up_only:
            step("w2", fixed)

        # The catch-up read reads the librdkafka run's topic (the larger one) when there
        # is one.
        read_topic = "bench16r" if "w1r" in r else topic

        def top_up():
            # The catch-up read wants at least w3_min_bytes in its topic.
            have = topic_bytes(b.data_dir, read_topic)
            need = cfg["w3_min_bytes"] - have
            if need <= 0:
                return {"added_records": 0, "data_dir_bytes": have}
            n = need // RECORD_BYTES + 1
            added = rdkafka_peak(b, read_topic, n, 1800) if read_topic == "bench16r" \
                else producer_perf(b, read_topic, n, max_s=1800)
            return {"added_records": added["records"], "data_dir_bytes": dir_bytes(b.data_dir)}
        if cfg["w3_min_bytes"]:
            step("w3_top_up", top_up)
        # Same record count for both: Kafka runs first and sets it (its topic holds
        # fewer records when it produced more slowly); sluice reads that many. Quick mode
        # also caps the count.
        cap = min(x for x in (w3_records, cfg["w3_max_records"]) if x) \
            if (w3_records or cfg["w3_max_records"]) else None
        extra = [cap] if cap else []

        def catch_up():
            ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu0, t0 = cpu_seconds(b.proc.pid), time.perf_counter()
            res = last_json(run_tool(java("BenchClient", "consume", b.bootstrap, read_topic,
                                          900, *extra, heap="1g"), 1000, "consume"))
            res["topic"] = read_topic
            ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            wall = time.perf_counter() - t0
            res["broker_cpu_s"] = cpu_seconds(b.proc.pid) - cpu0
            # Includes the consumer JVM's start, so the share is a lower bound.
            res["client_cpu_s"] = (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)
            res["client_wall_s"] = wall
            return res
        step("w3", catch_up)
        # 3b: the same read with librdkafka (same count for both brokers: Kafka's).
        step("w3r", lambda: rdkafka_consume(
            b, read_topic, min((x for x in (w3r_records, cfg["w3r_max_records"]) if x),
                               default=None)))
        if catch_up_only:
            return r

        def restart():
            # 5c' (5c proper is run_restart's, with exactly 2 GiB): everything workloads
            # 1-3 wrote. Before the 1,000-partition topic exists, so this times recovery
            # of data, not the creation of 1,000 partition dirs.
            return restart_after_kill9(b)
        step("w5_restart", restart)

        def many():
            res = {"create": create_topic(b, "bench1000", 1000)}
            with RssSampler(b.proc.pid) as s:
                res["produce"] = producer_perf(b, "bench1000", cfg["w4_records"],
                                               cfg["w4_max_s"])
            res["peak_rss"] = s.peak
            res["rss_after"] = proc_status(b.proc.pid)
            return res
        step("w4", many)

        def stop():
            t0 = time.perf_counter()
            b.stop(timeout_s=cfg["stop_max_s"])
            return {"stop_s": time.perf_counter() - t0, "exit_code": b.proc.returncode,
                    "killed_after_s": cfg["stop_max_s"] if b.proc.returncode == -9 else None}
        step("stop", stop)
    except Exception as e:  # noqa: BLE001
        broker_failed(r, f"{kind}/{row}", e)
    finally:
        b.stop()
        r["broker_log_tail"] = b.log_tail(15) if r["errors"] else ""
        # tmpfs data is RAM: free it now. Disk data dirs stay until the end of the run
        # (see clean_disk_dirs).
        if row == "tmpfs":
            shutil.rmtree(b.data_dir, ignore_errors=True)
    return r


def proc_meminfo() -> dict:
    """MemFree, Cached and MemAvailable from /proc/meminfo, in bytes."""
    out = {}
    for line in Path("/proc/meminfo").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("MemFree", "Cached", "MemAvailable"):
            out[key] = int(rest.split()[0]) * 1024
    return out


def clean_disk_dirs(run_dir: Path) -> None:
    """Deletes the brokers' data dirs on disk, then syncs and waits 6 s.

    Deleting a data dir must not happen between the two brokers' runs: on this ext4
    (no journal) the inode allocator skips inodes deleted in the last 5 s (305 s while
    their inode-table block is still dirty), scanning past each of them for every new
    file, so the broker that runs after thousands of deletions pays for them when it
    creates its 1,000 partition dirs (measured: 0.5 s on a fresh dir, 8.8 s right after
    deleting one such dir). So the dirs go only at the start, before the tmpfs rows and at
    the end of a run, and the sync plus wait leaves both brokers the same clean file
    system.
    """
    for d in run_dir.glob("*-fsync"):
        shutil.rmtree(d, ignore_errors=True)
    os.sync()
    time.sleep(6)


def short(v) -> str:
    if isinstance(v, dict):
        keep = {k: (round(x, 3) if isinstance(x, float) else x) for k, x in v.items()
                if not isinstance(x, (dict, list))}
        return json.dumps(keep)[:300]
    return str(v)[:300]


# ------------------------------------------------------------------------------ main
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = ap.add_mutually_exclusive_group(required=True)
    for m in MODES:
        mode.add_argument(f"--{m}", dest="mode", action="store_const", const=m)
    ap.add_argument("--only", choices=["kafka", "sluice"], help="run one broker (dev aid)")
    ap.add_argument("--no-tmpfs", action="store_true", help="skip the tmpfs (no fsync) row")
    ap.add_argument("--catch-up-only", action="store_true",
                    help="only workloads 3 and 3b (and the produce run that fills their "
                    "topic), fsync row only (dev aid)")
    ap.add_argument("--sluice-bin", default=os.environ.get("SLUICE_BIN",
                                                          str(REPO / "target/release/sluice")))
    ap.add_argument("--w2-rate", type=float,
                    help="fixed rate (records/s) instead of half of Kafka's measured peak")
    ap.add_argument("--out", help="directory for RESULTS.md and latency.png "
                    "(default: benches/, or benches/.cache/smoke for --smoke)")
    args = ap.parse_args()
    cfg = MODES[args.mode]
    out_dir = Path(args.out) if args.out else (
        CACHE / "smoke" if args.mode == "smoke" else
        CACHE / "catch-up" if args.catch_up_only else BENCH_DIR)
    out_dir.mkdir(parents=True, exist_ok=True)
    os.sched_setaffinity(0, {int(LOADGEN_CPU)})
    sluice_bin = Path(args.sluice_bin)
    if not sluice_bin.is_file():
        sys.exit(f"no sluice binary at {sluice_bin}: run `cargo build --release` first")
    t_start = time.perf_counter()
    compile_client()
    ensure_loadgen()

    run_dir = CACHE / "run"
    run_dir.mkdir(parents=True, exist_ok=True)
    shm_dir = Path("/dev/shm") / f"sluice-bench-{os.getpid()}"
    results: dict = {
        "mode": args.mode, "config": cfg, "date": dt.datetime.now().astimezone().isoformat(
            timespec="seconds"),
        "machine": machine.describe(), "fs": machine.filesystem_of(run_dir),
        "sluice": sluice_info(sluice_bin), "kafka_jar": kafka_version(),
        "runs": [], "loadavg_start": os.getloadavg(),
    }
    clean_disk_dirs(run_dir)
    log(f"mode {args.mode}; machine limits")
    results["loopback"] = machine.loopback_bandwidth(cfg["loopback_s"], BROKER_CPU)
    results["fsync_1m"] = machine.fsync_write_bandwidth(run_dir, cfg["fsync_s"])
    results["fsync_16k"] = machine.fsync_rate(run_dir, cfg["fsync_s"] / 2)
    log(f"loopback {results['loopback']['mib_per_s']:.0f} MiB/s, fsync'd 1 MiB writes "
        f"{results['fsync_1m']['mib_per_s']:.0f} MiB/s, 16 KiB+fsync "
        f"{results['fsync_16k']['fsyncs_per_s']:.0f}/s")

    kinds = [args.only] if args.only else ["kafka", "sluice"]
    w2_rate = args.w2_rate
    w3_records = w3r_records = None
    try:
        for kind in kinds:
            r = run_broker(kind, "fsync", cfg, run_dir / f"{kind}-fsync", sluice_bin,
                           w2_rate, full_set=True, w3_records=w3_records,
                           w3r_records=w3r_records, catch_up_only=args.catch_up_only)
            results["runs"].append(r)
            if kind == "kafka" and w2_rate is None and "w2_rate" in r:
                w2_rate = r["w2_rate"]   # sluice gets the same rate: half of Kafka's peak
            if kind == "kafka" and get_records(r):
                w3_records = get_records(r)
            if kind == "kafka" and get_records(r, "w3r"):
                w3r_records = get_records(r, "w3r")
        if not args.catch_up_only:
            for kind in kinds:
                results["runs"].append(run_restart(kind, cfg, run_dir / f"{kind}-restart-fsync",
                                                   sluice_bin))
        if not args.no_tmpfs and not args.catch_up_only:
            # The disk rows are done: their data (and its page cache, most of the RAM
            # after a full run) goes before the tmpfs rows put theirs in RAM. Left in
            # place, the kernel reclaimed that cache inside the brokers' writes to tmpfs
            # and both spent 2.5x the CPU per GiB (run of 2026-11-30 17:08).
            clean_disk_dirs(run_dir)
            results["mem_before_tmpfs"] = proc_meminfo()
            shm_dir.mkdir(parents=True, exist_ok=True)
            for kind in kinds:
                results["runs"].append(run_broker(kind, "tmpfs", cfg, shm_dir / kind,
                                                  sluice_bin, None, full_set=False))
    finally:
        shutil.rmtree(shm_dir, ignore_errors=True)
        for d in run_dir.glob("*-fsync"):
            shutil.rmtree(d, ignore_errors=True)
        results["total_s"] = time.perf_counter() - t_start
        results["loadavg_end"] = os.getloadavg()
        (CACHE / f"results-{args.mode}{'-catch-up' if args.catch_up_only else ''}.json").write_text(json.dumps(results, indent=1))
        report.write(results, out_dir)
    log(f"done in {results['total_s']:.0f} s: {out_dir / 'RESULTS.md'}, "
        f"{out_dir / 'latency.png'}")
    return 0


def get_records(r: dict, step: str = "w3") -> int | None:
    w3 = r.get(step)
    return w3["records"] if isinstance(w3, dict) and w3.get("records") else None


def sluice_info(binary: Path) -> dict:
    def git(*a):
        return subprocess.run(["git", *a], cwd=REPO, capture_output=True, text=True).stdout
    return {"binary": str(binary), "built": dt.datetime.fromtimestamp(
                binary.stat().st_mtime).astimezone().isoformat(timespec="seconds"),
            "commit": git("rev-parse", "--short", "HEAD").strip(),
            "uncommitted_src_files": len(git("status", "--porcelain", "--", "src",
                                             "Cargo.toml").splitlines())}


def kafka_version() -> str:
    jars = sorted(brokers.KAFKA_LIB.glob("kafka_2.13-*.jar"))
    return jars[0].name if jars else "?"


if __name__ == "__main__":
    sys.exit(main())
