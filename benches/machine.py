"""The machine's own limits, measured in the same run as the brokers (benches/run.py).

* ``loopback_bandwidth``: one TCP connection over 127.0.0.1, the receiver pinned to the
  broker core and the sender to the load-generator core (like a broker and its client),
  1 MiB ``sendall`` / ``recv_into`` for a fixed time. Both brokers' produce and fetch
  bytes cross this path, so it bounds every no-fsync figure.
* ``fsync_write_bandwidth``: sequential 1 MiB ``write`` + ``fdatasync`` (what sluice's
  group commit calls) in the directory the brokers' data dirs live in: the ceiling for
  any produce that is acknowledged only after its bytes are on disk.
* ``fsync_rate``: small appends (default 16 KiB, about one producer batch) each followed
  by ``fdatasync``: the cost of one fsync per batch, which is what Kafka with
  ``flush.messages=1`` pays per partition append.

* ``FsyncProbe``: small write + ``fdatasync`` every 10 ms in a background thread while
  a broker runs the fixed-rate workload, in the same filesystem: how long the disk itself
  took to fsync during that broker's window. A produce latency spike at the same size
  as a probe stall is the disk's, not the broker's (on this machine's virtual disk, an
  idle probe alone sees stalls of 30-200 ms in most 30 s windows).

Every loop stops after its time budget or its byte budget, whichever comes first.
Run directly for a quick look: ``python3 benches/machine.py DIR``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

MIB = 1 << 20

# The receiver runs in its own process (pinned with taskset); it prints
# "<bytes> <seconds from first byte to EOF>" and exits.
_RECEIVER = r"""
import socket, sys, time
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(1)
print(srv.getsockname()[1], flush=True)
srv.settimeout(30)
conn, _ = srv.accept(); conn.settimeout(30)
buf = bytearray(1 << 20); view = memoryview(buf)
total = 0; t0 = None
while True:
    n = conn.recv_into(view)
    if n == 0:
        break
    if t0 is None:
        t0 = time.perf_counter()
    total += n
print(total, time.perf_counter() - (t0 or time.perf_counter()), flush=True)
"""


def loopback_bandwidth(seconds: float, receiver_cpu: str, max_bytes: int = 64 << 30) -> dict:
    """MiB/s of one loopback TCP stream; the caller runs pinned to the sender's core."""
    rx = subprocess.Popen(["taskset", "-c", receiver_cpu, sys.executable, "-c", _RECEIVER],
                          stdout=subprocess.PIPE, text=True)
    try:
        port = int(rx.stdout.readline())
        payload = memoryview(os.urandom(MIB))
        sent = 0
        with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
            deadline = time.perf_counter() + seconds
            while time.perf_counter() < deadline and sent < max_bytes:
                s.sendall(payload)
                sent += MIB
            s.shutdown(socket.SHUT_WR)
            total, elapsed = rx.stdout.readline().split()
        rx.wait(timeout=30)
    finally:
        if rx.poll() is None:
            rx.kill()
            rx.wait()
    total, elapsed = int(total), float(elapsed)
    return {"bytes": total, "seconds": elapsed, "mib_per_s": total / elapsed / MIB}


def fsync_write_bandwidth(directory: Path, seconds: float, block_bytes: int = MIB,
                          max_bytes: int = 4 << 30) -> dict:
    """Sequential appends of ``block_bytes``, each followed by fdatasync."""
    path = Path(directory) / "fsync-probe.bin"
    block = os.urandom(block_bytes)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    written = syncs = 0
    try:
        t0 = time.perf_counter()
        deadline = t0 + seconds
        while time.perf_counter() < deadline and written < max_bytes:
            os.write(fd, block)
            os.fdatasync(fd)
            written += block_bytes
            syncs += 1
        elapsed = time.perf_counter() - t0
    finally:
        os.close(fd)
        path.unlink(missing_ok=True)
    return {"block_bytes": block_bytes, "bytes": written, "seconds": elapsed,
            "mib_per_s": written / elapsed / MIB, "fsyncs_per_s": syncs / elapsed,
            "fsync_ms": elapsed / syncs * 1000}


def fsync_rate(directory: Path, seconds: float, block_bytes: int = 16 << 10) -> dict:
    """Small appends each followed by fdatasync: the per-fsync cost."""
    return fsync_write_bandwidth(directory, seconds, block_bytes=block_bytes)


class FsyncProbe:
    """Appends ``block_bytes`` and fdatasyncs it every ``period_s`` in a thread, from
    ``__enter__`` to ``__exit__``, recording how long each fdatasync took."""

    def __init__(self, directory: Path, period_s: float = 0.010, block_bytes: int = 4096):
        self.path = Path(directory) / "fsync-latency-probe.bin"
        self.period_s, self.block = period_s, os.urandom(block_bytes)
        self.samples: list[tuple[float, float]] = []  # (seconds since start, fsync ms)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fsync-probe", daemon=True)

    def _run(self) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
        try:
            t0 = time.perf_counter()
            while not self._stop.wait(self.period_s):
                os.write(fd, self.block)
                start = time.perf_counter()
                os.fdatasync(fd)
                self.samples.append((start - t0, (time.perf_counter() - start) * 1000))
        finally:
            os.close(fd)
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> "FsyncProbe":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def stats(self, skip_s: float = 0.0, stall_ms: float = 20.0) -> dict:
        """Percentiles of the fsyncs that started ``skip_s`` or later (the warm-up
        excluded), and how many took ``stall_ms`` or longer."""
        lat = sorted(ms for at, ms in self.samples if at >= skip_s)
        if not lat:
            return {"count": 0}
        pick = lambda q: lat[min(len(lat) - 1, int(len(lat) * q))]  # noqa: E731
        return {"count": len(lat), "p50_ms": pick(0.5), "p99_ms": pick(0.99),
                "p999_ms": pick(0.999), "max_ms": lat[-1],
                "stalls": sum(1 for ms in lat if ms >= stall_ms), "stall_ms": stall_ms}


def describe() -> dict:
    """CPU model, cores, kernel and memory, for the RESULTS.md header."""
    info = {"cores": os.cpu_count(), "kernel": os.uname().release}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                info["mem_gib"] = round(int(line.split()[1]) / (1 << 20), 1)
    except OSError:
        pass
    return info


def filesystem_of(directory: Path) -> str:
    """``fstype device`` of the mount holding ``directory`` (longest mount-point match)."""
    directory = str(Path(directory).resolve())
    best = ("", "?", "?")
    try:
        for line in Path("/proc/mounts").read_text().splitlines():
            dev, mnt, fstype = line.split()[:3]
            if (directory == mnt or directory.startswith(mnt.rstrip("/") + "/")) \
                    and len(mnt) > len(best[0]):
                best = (mnt, fstype, dev)
    except OSError:
        pass
    return f"{best[1]} on {best[2]} (mounted at {best[0]})"


if __name__ == "__main__":
    d = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    print(describe(), filesystem_of(d))
    print("loopback", loopback_bandwidth(2.0, "0"))
    print("fsync 1 MiB", fsync_write_bandwidth(d, 2.0))
    print("fsync 16 KiB", fsync_rate(d, 1.0))
