"""Start, kill and restart a single broker for the compat suite (and benchmarks).

Two kinds, same interface:
  * ``SluiceBroker``: the sluice binary
    (``sluice --listen H:P --advertise H:P --data-dir DIR --node-id 1 [--override k=v]...``).
  * ``KafkaBroker``: the real Apache Kafka from ``compat/.cache/kafka-lib`` (installed by
    ``compat/install.sh``), KRaft combined mode (broker+controller), one node, formatted
    with ``StorageTool format --standalone``, replication factor 1 for internal topics.

Both listen on a free loopback port chosen once, so ``restart()`` / ``kill9()`` +
``start()`` keep the same address and data dir. The broker's output (stderr for sluice,
log4j for Kafka) goes to ``<work_dir>/broker.log`` (appended across restarts);
``log_tail()`` returns its end for failure reports.

Readiness = a TCP connect succeeds AND a raw ApiVersions v0 request gets a well-formed
answer (client independent; see ``api_versions``).
"""

from __future__ import annotations

import atexit
import base64
import os
import signal
import socket
import struct
import subprocess
import time
import uuid
from pathlib import Path

COMPAT_DIR = Path(__file__).resolve().parent.parent
REPO_ROOT = COMPAT_DIR.parent
KAFKA_LIB = COMPAT_DIR / ".cache" / "kafka-lib"
KAFKA_DEPS = COMPAT_DIR / "kafka-deps"
HOST = "127.0.0.1"

_LIVE: set["Broker"] = set()


def _stop_all_at_exit() -> None:
    for b in list(_LIVE):
        b.stop()


atexit.register(_stop_all_at_exit)


_handed_out: set[int] = set()


def free_port() -> int:
    """A loopback port that was free a moment ago, and never handed out before in this
    run: the kernel may offer a just-released port again, and a cluster given the same
    port twice (a node's client and another's controller port) cannot start."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((HOST, 0))
            port = s.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError(f"connection closed after {len(buf)}/{n} bytes")
        buf += chunk
    return buf


def api_versions(host: str, port: int, timeout_s: float = 2.0) -> dict[int, tuple[int, int]]:
    """One raw ApiVersions v0 round trip; returns {api_key: (min, max)}.

    Request v0: header (api_key=18, api_version=0, correlation_id, client_id) and an
    empty body. Response v0: correlation_id, error_code, [api_key, min, max]. Error 35
    (UNSUPPORTED_VERSION) still carries the ranges (KIP-511), so it counts as an answer.
    """
    correlation_id = 0x5C0FFEE
    client_id = b"compat-ready"
    header = struct.pack(">hhih", 18, 0, correlation_id, len(client_id)) + client_id
    with socket.create_connection((host, port), timeout=timeout_s) as sock:
        sock.settimeout(timeout_s)
        sock.sendall(struct.pack(">i", len(header)) + header)
        (size,) = struct.unpack(">i", _recv_exact(sock, 4))
        if not 6 <= size <= 1 << 20:
            raise ValueError(f"ApiVersions response size {size} out of range")
        body = _recv_exact(sock, size)
    corr, error_code, count = struct.unpack_from(">ihi", body, 0)
    if corr != correlation_id:
        raise ValueError(f"ApiVersions correlation id {corr:#x} != {correlation_id:#x}")
    if error_code not in (0, 35):
        raise ValueError(f"ApiVersions error_code {error_code}")
    if not 0 < count <= 1000 or len(body) < 10 + 6 * count:
        raise ValueError(f"ApiVersions bad api count {count} for {len(body)} bytes")
    out = {}
    for i in range(count):
        key, lo, hi = struct.unpack_from(">hhh", body, 10 + 6 * i)
        out[key] = (lo, hi)
    if 18 not in out:
        raise ValueError("ApiVersions response does not list ApiVersions (18)")
    return out


class BrokerError(RuntimeError):
    pass


class Broker:
    """Common lifecycle. Subclasses provide ``_command()`` and optionally ``_prepare()``."""

    kind = "?"

    def __init__(self, work_dir: Path, overrides: dict[str, str] | None = None,
                 start_timeout_s: float = 60.0):
        self.work_dir = Path(work_dir)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir = self.work_dir / "data"
        self.log_path = self.work_dir / "broker.log"
        self.overrides = dict(overrides or {})
        self.start_timeout_s = start_timeout_s
        self.host = HOST
        self.port = free_port()
        self.bootstrap = f"{self.host}:{self.port}"
        self.node_id = 1
        self.proc: subprocess.Popen | None = None
        self._prepared = False

    # -- subclass hooks ----------------------------------------------------------------
    def _prepare(self) -> None:
        """One-time setup before the first start (e.g. formatting storage)."""

    def _command(self) -> list[str]:
        raise NotImplementedError

    def _env(self) -> dict[str, str]:
        return dict(os.environ)

    # -- lifecycle -------------------------------------------------------------------------
    def start(self, wait: bool = True) -> None:
        """Spawn the process; with ``wait`` (default) return once it answers ApiVersions
        (``wait_ready()`` otherwise: a cluster spawns every node before waiting, as a
        KRaft node may not open its client listener before the quorum has a leader)."""
        if self.proc is not None and self.proc.poll() is None:
            raise BrokerError(f"{self.kind} broker already running (pid {self.proc.pid})")
        if not self._prepared:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self._prepare()
            self._prepared = True
        cmd = self._command()
        with open(self.log_path, "ab") as log:
            log.write(f"\n===== compat: starting {self.kind}: {' '.join(cmd)}\n".encode())
            log.flush()
            # Own session: a Ctrl-C in the terminal must not kill it behind our back.
            self.proc = subprocess.Popen(cmd, cwd=self.work_dir, env=self._env(),
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         start_new_session=True)
        _LIVE.add(self)
        if wait:
            self._wait_ready()

    def wait_ready(self) -> None:
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout_s
        last_err: Exception | None = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BrokerError(f"{self.kind} broker exited with {self.proc.returncode} "
                                  f"during startup\n{self.log_tail()}")
            try:
                api_versions(self.host, self.port, timeout_s=2.0)
                return
            except (OSError, ValueError, struct.error) as e:
                last_err = e
                time.sleep(0.1)
        raise BrokerError(f"{self.kind} broker not ready on {self.bootstrap} after "
                          f"{self.start_timeout_s}s (last error: {last_err!r})\n{self.log_tail()}")

    def kill9(self) -> None:
        """SIGKILL, no shutdown path at all; waits until the process is gone."""
        if self.proc is None or self.proc.poll() is not None:
            raise BrokerError(f"{self.kind} broker is not running")
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        self._note(f"killed with SIGKILL (pid {self.proc.pid})")

    def stop(self, timeout_s: float = 30.0) -> None:
        """Graceful stop (SIGTERM), SIGKILL if it does not exit in time."""
        _LIVE.discard(self)
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=30)
        self._note(f"stopped, exit code {self.proc.returncode}")

    def restart(self) -> None:
        """Graceful stop, then start on the same port and data dir."""
        self.stop()
        self.start()

    def is_running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return f"(no broker log at {self.log_path})"
        return f"--- last {min(lines, len(text))} lines of {self.log_path} ---\n" + \
            "\n".join(text[-lines:])

    def _note(self, msg: str) -> None:
        with open(self.log_path, "a") as log:
            log.write(f"===== compat: {msg}\n")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.bootstrap} data={self.data_dir}>"


class SluiceBroker(Broker):
    kind = "sluice"

    def __init__(self, work_dir: Path, binary: str | os.PathLike | None = None, **kw):
        super().__init__(work_dir, **kw)
        binary = Path(binary or os.environ.get("SLUICE_BIN", "target/release/sluice"))
        self.binary = binary if binary.is_absolute() else REPO_ROOT / binary
        if not self.binary.is_file():
            raise BrokerError(f"sluice binary not found at {self.binary} "
                              f"(build it with `cargo build --release` or set SLUICE_BIN)")

    def _command(self) -> list[str]:
        cmd = [str(self.binary), "--listen", self.bootstrap, "--advertise", self.bootstrap,
               "--data-dir", str(self.data_dir), "--node-id", str(self.node_id)]
        # As for KafkaBroker below: groups form without Kafka's 3 s initial delay.
        overrides = {"group.initial.rebalance.delay.ms": "0", **self.overrides}
        for k, v in overrides.items():
            cmd += ["--override", f"{k}={v}"]
        return cmd


def java_command(main: str, *args: str, heap: str = "256m", broker: bool = False,
                 fast_start: bool = True, jvm_opts: tuple[str, ...] = ()) -> list[str]:
    """``java -cp 'compat/.cache/kafka-lib/*' MAIN ARGS`` with the compat log4j2 config.

    ``main`` is a class name or a single-file source program (``.java``, Java's source
    launcher). ``fast_start`` (C1 only) shortens the JVM start of short-lived tools.
    """
    if not any(KAFKA_LIB.glob("kafka-clients-*.jar")):
        raise BrokerError(f"no Kafka jars in {KAFKA_LIB}: run compat/install.sh")
    log_cfg = KAFKA_DEPS / ("log4j2-broker.properties" if broker else "log4j2-tools.properties")
    cmd = ["java", f"-Xmx{heap}", "-Djava.awt.headless=true",
           f"-Dlog4j2.configurationFile={log_cfg}"]
    if fast_start:
        cmd += ["-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC"]
    return cmd + list(jvm_opts) + ["-cp", f"{KAFKA_LIB}/*", main, *args]


def new_cluster_id() -> str:
    """A Kafka cluster id: a base64url UUID without padding (22 chars); like Kafka's
    own Uuid.randomUuid(), never with a leading '-' (it reads as an option)."""
    cid = "-"
    while cid.startswith("-"):
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    return cid


class KafkaBroker(Broker):
    kind = "kafka"

    def __init__(self, work_dir: Path, heap: str = "512m", **kw):
        super().__init__(work_dir, **kw)
        self.heap = heap
        self.controller_port = free_port()
        self.config_path = self.work_dir / "server.properties"

    def _config(self) -> dict[str, str]:
        cfg = {
            "process.roles": "broker,controller",
            "node.id": str(self.node_id),
            "listeners": f"PLAINTEXT://{self.host}:{self.port},"
                         f"CONTROLLER://{self.host}:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{self.bootstrap}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "controller.quorum.bootstrap.servers": f"{self.host}:{self.controller_port}",
            "log.dirs": str(self.data_dir),
            # One node: every internal topic at replication factor 1.
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            # After a SIGKILL the restarted node's broker registration is refused with
            # DUPLICATE_BROKER_REGISTRATION until the dead incarnation's session expires
            # (default 9 s); a short session keeps crash-restart tests fast.
            "broker.session.timeout.ms": "2000",
            "broker.heartbeat.interval.ms": "500",
        }
        cfg.update(self.overrides)
        return cfg

    def _format_args(self) -> list[str]:
        """StorageTool ``format`` arguments besides the config: a fresh cluster id, and
        ``--standalone`` (this node alone is the controller quorum)."""
        return ["--standalone", "-t", new_cluster_id()]

    def start_format(self) -> tuple[list[str], subprocess.Popen]:
        """Write the config and start formatting the storage (a JVM start: a cluster
        formats its nodes in parallel); ``finish_format`` waits for it."""
        self.config_path.write_text(
            "".join(f"{k}={v}\n" for k, v in self._config().items()))
        cmd = java_command("kafka.tools.StorageTool", "format", *self._format_args(),
                           "-c", str(self.config_path))
        return cmd, subprocess.Popen(cmd, cwd=self.work_dir, text=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def finish_format(self, cmd: list[str], proc: subprocess.Popen) -> None:
        out, _ = proc.communicate(timeout=180)
        with open(self.log_path, "a") as log:
            log.write(f"===== compat: {' '.join(cmd)}\n{out}")
        if proc.returncode != 0:
            raise BrokerError(f"kafka storage format failed on node {self.node_id} "
                              f"({proc.returncode}):\n{out}")

    def _prepare(self) -> None:
        self.finish_format(*self.start_format())

    def _command(self) -> list[str]:
        return java_command("kafka.Kafka", str(self.config_path), heap=self.heap,
                            broker=True, fast_start=False,
                            jvm_opts=(f"-Xms{self.heap}", "-XX:+UseG1GC",
                                      "-XX:MaxGCPauseMillis=20"))


def overrides_from_env() -> dict[str, str]:
    """Extra broker configs from ``COMPAT_OVERRIDES="k=v k2=v2"`` (sluice ``--override``s;
    for Kafka, lines appended to server.properties)."""
    out = {}
    for item in os.environ.get("COMPAT_OVERRIDES", "").split():
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"COMPAT_OVERRIDES item {item!r} is not key=value")
        out[key] = value
    return out


def make_broker(kind: str, work_dir: Path, **kw) -> Broker:
    kind = kind.lower()
    if kind == "sluice":
        return SluiceBroker(work_dir, **kw)
    if kind == "kafka":
        return KafkaBroker(work_dir, **kw)
    raise BrokerError(f"unknown broker kind {kind!r} (expected 'sluice' or 'kafka')")


def private_broker(tmp_path_factory, label: str, overrides: dict[str, str]):
    """Generator for a module fixture: a broker of its own (kind from COMPAT_BROKER)
    with ``overrides``, for tests that need background tasks to run within seconds.
    Kafka also gets ``log.initial.task.delay.ms=0``: its first retention and cleaner
    passes otherwise wait 30 s after start."""
    kind = os.environ.get("COMPAT_BROKER", "sluice")
    if kind == "kafka":
        overrides = {"log.initial.task.delay.ms": "0", **overrides}
    b = make_broker(kind, tmp_path_factory.mktemp(f"{kind}-{label}"), overrides=overrides)
    b.start()
    yield b
    b.stop()
