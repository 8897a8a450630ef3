"""RESULTS.md and latency.png from the results dict of benches/run.py.

Re-render a past run without running it again:
``benches/.cache/venv/bin/python benches/report.py benches/.cache/results-quick.json [OUT_DIR]``
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

MIB = 1 << 20
GIB = 1 << 30

DUR_FSYNC = "fsync before ack"
DUR_TMPFS = "no fsync (tmpfs)"
DUR_NA = "(fsync row's broker)"


def get(d, *path):
    for p in path:
        if not isinstance(d, dict) or p not in d:
            return None
        d = d[p]
    return d


def run_of(results: dict, kind: str, row: str) -> dict:
    for r in results["runs"]:
        if r["kind"] == kind and r["row"] == row:
            return r
    return {}


def fmt(v, digits=1, unit=""):
    if v is None:
        return "—"
    if isinstance(v, float):
        if abs(v) >= 1000:
            return f"{v:,.0f}{unit}"
        return f"{v:.{digits}f}{unit}"
    if isinstance(v, int):
        return f"{v:,}{unit}"
    return f"{v}{unit}"


class Table:
    def __init__(self):
        self.rows: list[str] = []

    def add(self, n, workload, durability, k, s, *, better="higher", target=None,
            target_ok=None, limit="", digits=1, unit=""):
        """k, s: numbers (or None); ratio = sluice ÷ Kafka."""
        ratio = "—"
        if isinstance(k, (int, float)) and isinstance(s, (int, float)) and k:
            ratio = f"{s / k:.2f}×" if s / k >= 0.1 else f"{s / k:.3f}×"
        arrow = "↑" if better == "higher" else "↓"
        tgt = ""
        if target:
            verdict = "" if target_ok is None else (" — **met**" if target_ok else " — missed")
            tgt = target + verdict
        self.rows.append(f"| {n} | {workload} {arrow} | {durability} | {fmt(k, digits, unit)} | "
                         f"{fmt(s, digits, unit)} | {ratio} | {tgt} | {limit} |")

    def render(self) -> str:
        head = ("| # | workload (↑ higher is better, ↓ lower) | durability | Kafka | sluice | "
                "sluice ÷ Kafka | target (issue 6) | machine limit (sluice as % of it) |\n"
                "|---|---|---|---:|---:|---:|---|---|")
        return head + "\n" + "\n".join(self.rows)


def ratio_ok(k, s, want, higher=True):
    if not isinstance(k, (int, float)) or not isinstance(s, (int, float)) or not k:
        return None
    return s / k >= want if higher else s / k <= want


def pct(x, limit):
    if not isinstance(x, (int, float)) or not limit:
        return ""
    return f" (sluice {100 * x / limit:.0f}%)"


def table(res: dict) -> str:
    kf, sf = run_of(res, "kafka", "fsync"), run_of(res, "sluice", "fsync")
    kt, st = run_of(res, "kafka", "tmpfs"), run_of(res, "sluice", "tmpfs")
    lo = get(res, "loopback", "mib_per_s")
    fs = get(res, "fsync_1m", "mib_per_s")
    f16 = get(res, "fsync_16k", "fsync_ms")
    t = Table()

    k, s = get(kf, "w1", "mib_per_s"), get(sf, "w1", "mib_per_s")
    t.add(1, "peak produce, 16 partitions, 1 KiB, acks=all, idempotent, linger 5 ms (MiB/s)",
          DUR_FSYNC, k, s, target="≥ 1.5× and ≥ 80% of fsync'd write bw",
          target_ok=(ratio_ok(k, s, 1.5) and s >= 0.8 * fs)
          if ratio_ok(k, s, 1.5) is not None and fs else None,
          limit=f"fsync'd 1 MiB writes {fmt(fs, 0)} MiB/s{pct(s, fs)}"
          + client_note(get(kf, "w1"), get(sf, "w1")))
    k, s = get(kt, "w1", "mib_per_s"), get(st, "w1", "mib_per_s")
    t.add("1b", "same, no fsync (MiB/s)", DUR_TMPFS, k, s, target="≥ 1.5×",
          target_ok=ratio_ok(k, s, 1.5), limit=f"loopback TCP {fmt(lo, 0)} MiB/s{pct(s, lo)}"
          + client_note(get(kt, "w1"), get(st, "w1")))
    for n, row_k, row_s, dur, lim, limit_name in (
            ("1e", kf, sf, DUR_FSYNC, fs, "fsync'd 1 MiB writes"),
            ("1f", kt, st, DUR_TMPFS, lo, "loopback TCP")):
        k, s = get(row_k, "w1r", "mib_per_s"), get(row_s, "w1r", "mib_per_s")
        t.add(n, "same with a librdkafka client (benches/loadgen; librdkafka's batch.size of "
              "1 MB, other settings as above) (MiB/s)", dur, k, s, target="≥ 1.5×",
              target_ok=ratio_ok(k, s, 1.5),
              limit=f"{limit_name} {fmt(lim, 0)} MiB/s{pct(s, lim)}"
              + client_note(get(row_k, "w1r"), get(row_s, "w1r")))
    k, s = get(kf, "w1", "broker_cpu_s_per_gib"), get(sf, "w1", "broker_cpu_s_per_gib")
    t.add("1c", "broker CPU seconds per GiB produced (workload 1)", DUR_FSYNC, k, s,
          better="lower", target="≤ 0.5×", target_ok=ratio_ok(k, s, 0.5, higher=False), digits=2)
    k, s = get(kt, "w1", "broker_cpu_s_per_gib"), get(st, "w1", "broker_cpu_s_per_gib")
    t.add("1d", "broker CPU seconds per GiB produced (workload 1b)", DUR_TMPFS, k, s,
          better="lower", target="≤ 0.5×", target_ok=ratio_ok(k, s, 0.5, higher=False), digits=2)

    rate = get(kf, "w2_rate") or get(sf, "w2_rate")
    for key, name, want in (("p50_ms", "p50", None), ("p99_ms", "p99", 0.5),
                            ("p999_ms", "p99.9", 1 / 3), ("max_ms", "max", None)):
        k, s = get(kf, "w2", "co", key), get(sf, "w2", "co", key)
        t.add(2, f"produce latency at a fixed {fmt(rate, 0)} rec/s, {name}, coordinated "
              f"omission corrected (ms)", DUR_FSYNC, k, s, better="lower",
              target=(f"≤ {want:.2f}×" if want else None),
              target_ok=ratio_ok(k, s, want, higher=False) if want else None, digits=2,
              limit=f"one 16 KiB write+fsync {fmt(f16, 2)} ms" if name == "p50"
              else disk_probe_note(kf, sf, key) if key in ("p999_ms", "max_ms") else "")

    k, s = get(kf, "w3", "mib_per_s"), get(sf, "w3", "mib_per_s")
    gib = get(kf, "w3", "bytes") or get(sf, "w3", "bytes")
    nrec = get(kf, "w3", "records") or get(sf, "w3", "records")
    t.add(3, f"catch-up read of {fmt(nrec)} records = {fmt(gib / GIB if gib else None, 2)} GiB "
          f"(same count for both) from topic {get(kf, 'w3', 'topic') or get(sf, 'w3', 'topic')},"
          f" assign(), no group (MiB/s of payload)",
          "(data written with fsync)", k, s, target="≥ 1.5×",
          target_ok=ratio_ok(k, s, 1.5), limit=f"loopback TCP {fmt(lo, 0)} MiB/s{pct(s, lo)}"
          + read_client_note(get(kf, "w3"), get(sf, "w3")))
    k, s = get(kf, "w3r", "mib_per_s"), get(sf, "w3r", "mib_per_s")
    gib = get(kf, "w3r", "bytes") or get(sf, "w3r", "bytes")
    nrec = get(kf, "w3r", "records") or get(sf, "w3r", "records")
    t.add("3b", f"same read with a librdkafka consumer (benches/loadgen, settings below): "
          f"{fmt(nrec)} records = {fmt(gib / GIB if gib else None, 2)} GiB, same count for "
          f"both (MiB/s of payload)", "(data written with fsync)", k, s, target="≥ 1.5×",
          target_ok=ratio_ok(k, s, 1.5), limit=f"loopback TCP {fmt(lo, 0)} MiB/s{pct(s, lo)}"
          + read_client_note(get(kf, "w3r"), get(sf, "w3r")))
    k, s = cpu_per_gib_read(get(kf, "w3r")), cpu_per_gib_read(get(sf, "w3r"))
    t.add("3c", "broker CPU seconds per GiB read (row 3b)", "(data written with fsync)", k, s,
          better="lower", digits=2)

    k, s = get(kf, "w4", "produce", "mib_per_s"), get(sf, "w4", "produce", "mib_per_s")
    t.add(4, "produce to one topic of 1,000 partitions, same producer (MiB/s)", DUR_FSYNC, k, s,
          limit=f"fsync'd 1 MiB writes {fmt(fs, 0)} MiB/s{pct(s, fs)}"
          + client_note(get(kf, "w4", "produce"), get(sf, "w4", "produce")))
    k, s = get(kf, "w4", "create", "seconds"), get(sf, "w4", "create", "seconds")
    t.add("4a", "create the 1,000-partition topic until every partition has a leader (s; "
          "from CreateTopics sent by a connected Admin client, metadata polled every 10 ms)", "(fsync row's broker)", k, s,
          better="lower", digits=2)
    k = get(kf, "w4", "peak_rss", "VmRSS")
    s = get(sf, "w4", "peak_rss", "VmRSS")
    t.add("4b", "peak broker RSS while producing to 1,000 partitions (MiB)", DUR_FSYNC,
          k / MIB if k else None, s / MIB if s else None, better="lower",
          target="< 128 MiB", target_ok=(s < 128 * MIB) if s else None)

    k, s = get(kf, "idle_rss", "VmRSS"), get(sf, "idle_rss", "VmRSS")
    t.add(5, "idle RSS after start, empty (MiB)", DUR_NA, k / MIB if k else None,
          s / MIB if s else None, better="lower", target="≤ 0.1× (aim < 20 MiB)",
          target_ok=ratio_ok(k, s, 0.1, higher=False))
    k, s = get(kf, "start_empty_s"), get(sf, "start_empty_s")
    t.add("5b", "process start → first answered ApiVersions, empty data dir (ms)", DUR_NA,
          k * 1000 if k else None, s * 1000 if s else None, better="lower", target="< 100 ms",
          target_ok=(s < 0.1) if s else None, digits=0)
    kr, sr = run_of(res, "kafka", "restart"), run_of(res, "sluice", "restart")
    for n, k_run, s_run, what in (("5c", kr, sr, "data of its own"),
                                  ("5c′", kf, sf, "everything workloads 1-3 wrote")):
        k, s = get(k_run, "w5_restart", "start_s"), get(s_run, "w5_restart", "start_s")
        on_disk = get(s_run, "w5_restart", "data_dir_bytes")
        k_disk = get(k_run, "w5_restart", "data_dir_bytes")
        judged = n == "5c" and (on_disk or 0) >= 2 * GIB
        t.add(n, f"restart after kill -9 → first ApiVersions, {what} on disk: Kafka "
              f"{fmt(k_disk / GIB if k_disk else None, 2)} GiB, sluice "
              f"{fmt(on_disk / GIB if on_disk else None, 2)} GiB (ms)", DUR_NA,
              k * 1000 if k else None, s * 1000 if s else None, better="lower",
              target=("< 2 s with 2 GiB" + ("" if judged else " (not judged: less data on disk)"))
              if n == "5c" else None,
              target_ok=(s < 2.0) if s and judged else None, digits=0)
    k, s = get(kf, "stop", "stop_s"), get(sf, "stop", "stop_s")
    killed = [f"{kind} did not exit and was killed after {get(r, 'stop', 'killed_after_s')} s"
              for kind, r in (("Kafka", kf), ("sluice", sf)) if get(r, "stop", "killed_after_s")]
    t.add("5d", "graceful stop (SIGTERM → exit) at the end, after workload 4 (s)"
          + (f" — {'; '.join(killed)}" if killed else ""), DUR_NA, k, s, better="lower",
          digits=2)
    return t.render()


def disk_probe_note(kf: dict | None, sf: dict | None, key: str) -> str:
    """The disk's own fsync latency at `key` beside each broker's fixed-rate run
    (benches/machine.py FsyncProbe): a broker figure near its probe's is the disk's."""
    k, s = get(kf, "w2", "disk_probe", key), get(sf, "w2", "disk_probe", key)
    if k is None and s is None:
        return ""
    ks, ss = get(kf, "w2", "disk_probe", "stalls"), get(sf, "w2", "disk_probe", "stalls")
    return (f"the disk alone (a 4 KiB fsync every 10 ms beside the run), Kafka's / sluice's "
            f"window: {fmt(k, 1)} / {fmt(s, 1)} ms; fsyncs ≥ 20 ms: {fmt(ks)} / {fmt(ss)}")


def latency_detail(res: dict) -> str:
    lines = ["| broker | rate asked (rec/s) | rate achieved | errors | measured records | "
             "p50 CO / raw | p99 CO / raw | p99.9 CO / raw | p99.99 CO / raw | max CO / raw |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for kind in ("kafka", "sluice"):
        w2 = get(run_of(res, kind, "fsync"), "w2")
        if not w2:
            lines.append(f"| {kind} | — | — | — | — | — | — | — | — | — |")
            continue
        cells = [f"{w2['co'][k]:.2f} / {w2['raw'][k]:.2f}"
                 for k in ("p50_ms", "p99_ms", "p999_ms", "p9999_ms", "max_ms")]
        lines.append(f"| {kind} | {w2['target_rate']:,.0f} | {w2['achieved_rate']:,.0f} | "
                     f"{w2['errors']} | {w2['co']['count']:,} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def perf_detail(res: dict) -> str:
    lines = ["| broker / row | workload | records | rec/s | MiB/s | ProducerPerformance "
             "avg / p50 / p99 / p99.9 / max latency (ms) | broker CPU s | load generator "
             "CPU s (share of its core) | wall s |",
             "|---|---|---:|---:|---:|---|---:|---:|---:|"]
    for r in res["runs"]:
        for name, w in (("1", get(r, "w1")), ("4", get(r, "w4", "produce"))):
            if not w:
                continue
            stopped = (f" (time cap: stopped at {w['stopped_at_s']:.0f} s)"
                       if w.get("stopped_at_s") else "")
            lines.append(
                f"| {r['kind']} / {r['row']} | {name}{stopped} | {w['records']:,} | "
                f"{w['records_per_s']:,.0f} | {w['mib_per_s']:.1f} | {fmt(w['avg_ms'])} / "
                f"{fmt(w['p50_ms'])} / {fmt(w['p99_ms'])} / {fmt(w['p999_ms'])} / "
                f"{fmt(w['max_ms'], 0)} | {w['broker_cpu_s']:.1f} | "
                f"{fmt(w.get('client_cpu_s'))} ({client_share(w)}) | {w['wall_s']:.1f} |")
    return "\n".join(lines)


def rdkafka_detail(res: dict) -> str:
    lines = ["| broker / row | records acked | seconds (first produce → flushed) | rec/s | MiB/s | "
             "broker CPU s | broker CPU s per GiB | client CPU s (share of its core) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in res["runs"]:
        w = get(r, "w1r") or get(r, "produce")   # the restart run's fill (5c)
        if w:
            lines.append(f"| {r['kind']} / {r['row']} | {w['records']:,} | {w['seconds']:.1f} | "
                         f"{w['records_per_s']:,.0f} | {w['mib_per_s']:.1f} | "
                         f"{w['broker_cpu_s']:.1f} | {fmt(w.get('broker_cpu_s_per_gib'), 2)} | "
                         f"{fmt(w.get('client_cpu_s'))} ({client_share(w)}) |")
    return "\n".join(lines)


def client_share(w: dict | None) -> str:
    share = get(w, "client_cpu_share")
    return f"{100 * share:.0f}%" if isinstance(share, (int, float)) else "?"


def client_note(kw: dict | None, sw: dict | None) -> str:
    """Flags a produce row whose load generator was near the end of its core."""
    busy = [f"{who} {client_share(w)}" for who, w in (("Kafka", kw), ("sluice", sw))
            if isinstance(get(w, "client_cpu_share"), (int, float))
            and w["client_cpu_share"] > 0.85]
    return f"; load generator CPU-bound ({', '.join(busy)} of its core)" if busy else ""


def read_client_note(kw: dict | None, sw: dict | None) -> str:
    """Flags a read row whose consumer used most of its core (process start included)."""
    busy = []
    for who, w in (("Kafka", kw), ("sluice", sw)):
        cpu, wall = get(w, "client_cpu_s"), get(w, "client_wall_s")
        if isinstance(cpu, (int, float)) and wall and cpu / wall > 0.85:
            busy.append(f"{who} {100 * cpu / wall:.0f}%")
    return f"; consumer CPU-bound ({', '.join(busy)} of its core)" if busy else ""


def cpu_per_gib_read(w: dict | None) -> float | None:
    cpu, nbytes = get(w, "broker_cpu_s"), get(w, "bytes")
    return cpu / (nbytes / GIB) if isinstance(cpu, (int, float)) and nbytes else None


def read_detail(res: dict) -> str:
    lines = ["| broker / consumer | records | payload GiB | read s | MiB/s | broker CPU s "
             "(share of read s) | broker CPU s per GiB | consumer CPU s (process start "
             "included) | consumer process wall s |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for step, client in (("w3", "Java (3)"), ("w3r", "librdkafka (3b)")):
        for kind in ("kafka", "sluice"):
            w = get(run_of(res, kind, "fsync"), step)
            if w:
                share = w["broker_cpu_s"] / w["seconds"] if w.get("broker_cpu_s") is not None \
                    and w.get("seconds") else None
                lines.append(f"| {kind} / {client} | {w['records']:,} | {w['bytes'] / GIB:.3f} | "
                             f"{w['seconds']:.2f} | {w['mib_per_s']:.1f} | "
                             f"{fmt(w.get('broker_cpu_s'), 2)}"
                             f"{f' ({100 * share:.0f}%)' if share is not None else ''} | "
                             f"{fmt(cpu_per_gib_read(w), 2)} | "
                             f"{fmt(w.get('client_cpu_s'), 2)} | "
                             f"{fmt(w.get('client_wall_s'), 2)} |")
    return "\n".join(lines)


def memory_detail(res: dict) -> str:
    lines = ["| broker | when | VmRSS | RssAnon | RssFile (mapped files, incl. shared libs) |",
             "|---|---|---:|---:|---:|"]
    for kind in ("kafka", "sluice"):
        r, rr = run_of(res, kind, "fsync"), run_of(res, kind, "restart")
        for when, d in (("idle after start", get(r, "idle_rss")),
                        ("peak, 1,000 partitions under load", get(r, "w4", "peak_rss")),
                        ("after restart (kill -9), 5c", get(rr, "w5_restart", "rss_after_restart")),
                        ("after restart (kill -9), 5c′", get(r, "w5_restart", "rss_after_restart"))):
            if d:
                lines.append(f"| {kind} | {when} | {d.get('VmRSS', 0) / MIB:.1f} MiB | "
                             f"{d.get('RssAnon', 0) / MIB:.1f} MiB | "
                             f"{d.get('RssFile', 0) / MIB:.1f} MiB |")
    return "\n".join(lines)


def errors(res: dict) -> str:
    out = []
    for r in res["runs"]:
        for name, e in r.get("errors", {}).items():
            out.append(f"- **{r['kind']} / {r['row']} / {name}**: `{e.splitlines()[0][:300]}`")
    return "\n".join(out) if out else "None."


def write(res: dict, out_dir: Path) -> None:
    out_dir = Path(out_dir)
    chart = out_dir / "latency.png"
    chart_note = plot(res, chart)
    cfg = res["config"]
    m = res["machine"]
    sl = res["sluice"]
    text = f"""# sluice vs Apache Kafka — benchmark results

Generated by `python3 benches/run.py --{res['mode']}` on {res['date']} in {res.get('total_s', 0):.0f} s
(see [README.md](README.md) for the method). **Mode: {res['mode']}** — sizes: {cfg['w1_records']:,}
records in workload 1, {cfg['w1b_records']:,} in 1b, {cfg['w2_warmup_s']} s warm-up + {cfg['w2_measure_s']} s
measured in workload 2, {cfg['w4_records']:,} records in workload 4.

Machine: {m.get('cpu', '?')}, {m.get('cores')} cores, {m.get('mem_gib')} GiB, Linux {m.get('kernel')};
data dirs on {res['fs']}. Load average (1/5/15 min) at the start
{loadavg(res, 'loadavg_start')}, at the end {loadavg(res, 'loadavg_end')} (the harness itself keeps about
one core busy; much above 2 means something else shared the cores). Each broker alone, on an empty data dir, pinned to CPU 0; load
generators on CPU 1. Apache Kafka: `{res['kafka_jar']}` (KRaft, one node, `-Xmx1G -Xms1G`, G1 — the
start script's defaults), Java {java_version()}. sluice: `{sl['binary']}` built {sl['built']}, commit
{sl['commit']} ({sl['uncommitted_src_files']} uncommitted file(s) under src/ at run time).

## Results

{table(res)}

**Durability.** *fsync before ack*: Kafka with `log.flush.interval.messages=1` — in Kafka
4.x `UnifiedLog.append` flushes the log (fsync of the segment, msync of its indexes) after
every append whose unflushed message count reaches 1, i.e. once per partition per produce
request, synchronously in the request handler thread, before the response; sluice with its
default — `fdatasync` group commit before the ack (flusher threads; all requests
waiting on one partition share one fdatasync, partitions are synced one file each). *no fsync (tmpfs)*: sluice has no setting
that skips fsync, so both brokers ran with their data dir on tmpfs, where fsync returns at
once; Kafka with its default flush policy (never fsyncs on the write path). Both put the
data in RAM, so this row measures the broker, not the disk.

**Coordinated omission.** Workload 2 uses `benches/java/BenchClient.java fixed-rate`, an
open-loop generator: record *i* is due at t0 + i/rate and is sent as soon as it is due
(bursts catch up after a stall); latency is measured from the **due time** to the ack
callback, so a stall is charged to every record that should have been sent during it
(CO-corrected, "CO" below). The same run also records latency from the moment `send()`
was called ("raw"), which is what Kafka's ProducerPerformance reports: its throttle sleeps
when ahead but does not backdate records when behind, and `send()` blocking on a full
buffer or on metadata hides the wait, so its percentiles under-report stalls. Both are
recorded with HdrHistogram (3 significant digits). Records due in the warm-up are not
recorded.

**The disk beside it.** While each broker runs workload 2, the harness appends 4 KiB and
fdatasyncs it every 10 ms in the same filesystem (`benches/machine.py` `FsyncProbe`). Every
ack in this row waits on an fsync, so one slow fsync lands in the tail of whichever broker
was running: the p99.9 and max rows show the probe's own figures for each broker's window.
On a virtual disk whose fsyncs stall now and then, the p99.9 of one 30 s run is close to a
coin toss between the brokers; the probe shows when that happened.

![latency percentiles]({chart.name})

{chart_note}

### Workload 2 in detail (ms; CO = from due time, raw = from send())

{latency_detail(res)}

### Producer runs (Kafka's ProducerPerformance; its latency is from send(), not CO-corrected)

rec/s and MiB/s: records acknowledged in ProducerPerformance's whole 1-second progress
windows, the first one left out, divided by their time (steady state: no JVM start,
ramp-up or drain; its summary line when a run has fewer than 5 windows). The latency
percentiles are from its summary line, absent when the run hit its time cap.

{perf_detail(res)}

### Peak produce with librdkafka (rows 1e, 1f: `sluice-loadgen produce`, benches/loadgen)

Throughput from the first `produce()` to the end of the final flush (ramp-up and drain
included), acks=all, idempotent, linger.ms=5, delivery reports for errors only; the
client is Rust over librdkafka (the `rdkafka` crate), one `send()` per record.

{rdkafka_detail(res)}

### Catch-up read (workloads 3, 3b)

Both read the librdkafka produce run's topic (16 partitions) with `assign()` from the log
start up to the end offsets taken at the start, no group membership; sluice reads as many
records as Kafka did. Row 3 is `benches/java/BenchClient.java consume` (Java consumer,
default settings: `fetch.max.bytes` 50 MiB, `max.partition.fetch.bytes` 1 MiB,
`max.poll.records` 500, `check.crcs=true`). Row 3b is `sluice-loadgen consume`
(benches/loadgen: Rust over librdkafka), the same settings for both brokers: `fetch.max.bytes`
16 MiB, `max.partition.fetch.bytes` 8 MiB, `receive.message.max.bytes` 17 MiB,
`queued.max.messages.kbytes` 1 GiB, `queued.min.messages` 1,000,000,
`fetch.wait.max.ms` 100, `check.crcs` false (librdkafka's default), records taken in batches
of 10,000 (`rd_kafka_consume_batch_queue`) with only their lengths summed; its time runs
from the first batch call to the last record. Broker CPU share is broker CPU seconds over read seconds:
near 100% means the broker's core was the limit, a consumer near 100% of its core means
the client was.

{read_detail(res)}

### Memory

{memory_detail(res)}

### Machine limits, this run

- Loopback TCP, one stream, 1 MiB sends, receiver on CPU 0, sender on CPU 1:
  **{fmt(get(res, 'loopback', 'mib_per_s'), 0)} MiB/s**.
- Sequential 1 MiB `write` + `fdatasync` in the data-dir filesystem:
  **{fmt(get(res, 'fsync_1m', 'mib_per_s'), 0)} MiB/s** ({fmt(get(res, 'fsync_1m', 'fsync_ms'), 2)} ms per fsync).
- 16 KiB `write` + `fdatasync`: **{fmt(get(res, 'fsync_16k', 'fsyncs_per_s'), 0)} fsyncs/s**
  ({fmt(get(res, 'fsync_16k', 'fsync_ms'), 2)} ms each, {fmt(get(res, 'fsync_16k', 'mib_per_s'), 1)} MiB/s) — the price
  of one fsync per batch.

### Errors in this run

{errors(res)}

Raw numbers: `benches/.cache/results-{res['mode']}.json` (not committed).
"""
    (out_dir / "RESULTS.md").write_text(text)


def loadavg(res: dict, key: str) -> str:
    v = res.get(key)
    return " / ".join(f"{x:.2f}" for x in v) if v else "?"


def java_version() -> str:
    import subprocess
    try:
        out = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr
        return out.splitlines()[0].split('"')[1]
    except (OSError, IndexError):
        return "?"


def plot(res: dict, path: Path) -> str:
    """Percentile curves (x: 1/(1-p) on a log scale) of both brokers, CO and raw."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "(matplotlib missing: no chart)"
    fig, ax = plt.subplots(figsize=(9, 5.5), dpi=110)
    drew = False
    colors = {"kafka": "#d62728", "sluice": "#1f77b4"}
    for kind in ("kafka", "sluice"):
        w2 = get(run_of(res, kind, "fsync"), "w2")
        if not w2:
            continue
        for series, style in (("co", "-"), ("raw", "--")):
            curve = [(p, v) for p, v in w2[series]["curve"] if p < 100.0]
            if not curve:
                continue
            xs = [1 / (1 - p / 100) for p, _ in curve]
            ys = [max(v, 0.001) for _, v in curve]
            label = f"{kind} ({'CO-corrected' if series == 'co' else 'from send(), raw'})"
            ax.plot(xs, ys, style, color=colors[kind], label=label, linewidth=1.8)
            ax.plot([xs[-1] * 1.6], [max(w2[series]['max_ms'], 0.001)], "o" if series == "co"
                    else "x", color=colors[kind])
            drew = True
    if not drew:
        plt.close(fig)
        return "(no latency data: no chart)"
    ticks = [2, 10, 100, 1000, 10000, 100000]
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(ticks)
    ax.set_xticklabels(["50%", "90%", "99%", "99.9%", "99.99%", "99.999%"])
    ax.set_xlabel("percentile (markers at the right: max)")
    ax.set_ylabel("produce latency, ms (log)")
    rate = get(run_of(res, "kafka", "fsync"), "w2_rate") or get(run_of(res, "sluice", "fsync"),
                                                                "w2_rate")
    ax.set_title(f"Produce latency at a fixed {rate:,.0f} rec/s (1 KiB, acks=all, fsync before "
                 f"ack) — {res['mode']} run")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return ""


if __name__ == "__main__":
    data = json.loads(Path(sys.argv[1]).read_text())
    write(data, Path(sys.argv[2]) if len(sys.argv) > 2 else Path(__file__).parent)
