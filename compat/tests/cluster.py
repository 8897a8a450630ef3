"""A multi-node cluster for the compat suite: ``size`` processes, each
``process.roles=broker,controller`` unless ``roles`` says otherwise (``broker``,
``controller``), one static metadata quorum (``controller.quorum.voters``: the nodes
with the controller role), own data dir, client port and controller port.

Two kinds, same interface (as brokers.py for one node):
  * ``"sluice"``: the sluice binary with ``--override``s (node i gets ``--node-id i``).
  * ``"kafka"``: real Apache Kafka KRaft, every node formatted with the same cluster id
    (``StorageTool format -t ID -c server.properties``; static voters, so no
    ``--standalone``), internal topics at replication factor ``size``.

With ``dynamic=True`` the quorum is dynamic (Kafka 4's KIP-853): every node gets
``controller.quorum.bootstrap.servers`` (the controllers' listeners) instead of
voters; the first controller starts as the only voter (Kafka: ``format --standalone``,
sluice: ``--standalone`` on its first start) and the other controllers as observers
(``--no-initial-controllers``), to be added with ``kafka-metadata-quorum
add-controller --command-config controller_properties(i)``.

Both kinds get the same fast failure-detection settings (``FAST_FAILURE``); tests add
their own with ``overrides``. Nodes are numbered 1..size (= their ``node.id``).

Faults: ``kill9(i)``, ``sigstop(i)`` / ``sigcont(i)``, ``sigterm(i)`` (graceful,
waits for exit), ``restart(i)`` (start again on the same ports and data dir),
``kill_quorum_leader`` (SIGKILL it, wait for the next, create a topic).
With ``netns=netns.Netns(size)`` every node runs in its own network namespace
(``ip netns exec``) on its own address (client and controller listeners, advertised
address and quorum voters), and ``isolate(i)`` / ``heal(i)`` partition the network;
``live()`` leaves an isolated node out, so observations ask the majority side.
Observations: ``describe(topic)`` (confluent-kafka AdminClient), ``describe_cli(topic)``
(Kafka's own ``TopicCommand --describe``), ``leader_of``, ``quorum_leader()``
(DescribeQuorum, API 55, raw socket).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import struct
import subprocess
import time
from pathlib import Path

import brokers
import netns as netns_mod
from brokers import BrokerError

# Failure detection in seconds rather than Kafka's defaults (9 s session, 30 s lag), for
# both kinds. Kafka: a broker whose heartbeats stop for broker.session.timeout.ms is
# fenced (out of every ISR, no longer a leader); a follower that has not caught up for
# replica.lag.time.max.ms leaves the ISR.
FAST_FAILURE = {
    "broker.session.timeout.ms": "6000",
    "broker.heartbeat.interval.ms": "1000",
    "replica.lag.time.max.ms": "6000",
    "group.initial.rebalance.delay.ms": "0",
}


def _internal_topics(size: int) -> dict[str, str]:
    """Internal topics replicated to every node (min ISR 2 when there are 3+)."""
    min_isr = str(min(2, size))
    return {
        "offsets.topic.replication.factor": str(size),
        "offsets.topic.num.partitions": "3",
        "transaction.state.log.replication.factor": str(size),
        "transaction.state.log.min.isr": min_isr,
        "transaction.state.log.num.partitions": "3",
        "share.coordinator.state.topic.replication.factor": str(size),
        "share.coordinator.state.topic.min.isr": min_isr,
    }


# -- DescribeQuorum (raw socket) --------------------------------------------------------

def _uvarint(n: int) -> bytes:
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def quorum_leader(host: str, port: int, timeout_s: float = 5.0) -> tuple[int, int, int]:
    """DescribeQuorum v0 for __cluster_metadata-0: (error_code, leader_id, leader_epoch).

    Kafka 4.4 answers it on the broker listener too (it forwards to the controller)."""
    topic = b"__cluster_metadata"
    client_id = b"compat-quorum"
    header = struct.pack(">hhih", 55, 0, 7, len(client_id)) + client_id + b"\x00"
    body = (_uvarint(2) + _uvarint(len(topic) + 1) + topic + _uvarint(2)
            + struct.pack(">i", 0) + b"\x00\x00\x00")
    frame = header + body
    with socket.create_connection((host, port), timeout=timeout_s) as s:
        s.settimeout(timeout_s)
        s.sendall(struct.pack(">i", len(frame)) + frame)
        (size,) = struct.unpack(">i", brokers._recv_exact(s, 4))
        data = brokers._recv_exact(s, size)
    # corr i32, header tags, error_code i16, topics (n+1), name (len+1) bytes, partitions
    # (n+1), partition_index i32, error_code i16, leader_id i32, leader_epoch i32 (all
    # single-byte varints here)
    pos = 4 + 1 + 2 + 1
    name_len = data[pos] - 1
    pos += 1 + name_len + 1 + 4
    err, leader, epoch = struct.unpack_from(">hii", data, pos)
    return err, leader, epoch


# -- nodes ----------------------------------------------------------------------------

def _wait_controller_port(node, host: str, port: int) -> None:
    """A controller-only node serves no Kafka clients: ready once its raft port accepts."""
    deadline = time.monotonic() + node.start_timeout_s
    while time.monotonic() < deadline:
        if node.proc.poll() is not None:
            raise BrokerError(f"controller exited with {node.proc.returncode} during startup\n"
                              f"{node.log_tail()}")
        try:
            socket.create_connection((host, port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise BrokerError(f"controller port {host}:{port} not open after {node.start_timeout_s}s\n"
                      f"{node.log_tail()}")


def _place(node: brokers.Broker, host: str, exec_prefix: list[str]) -> None:
    """Node on its own address (a network namespace's), started through ``exec_prefix``
    (``ip netns exec NS``); ports stay the ones picked on loopback (free there too)."""
    node.host = host
    node.bootstrap = f"{host}:{node.port}"
    node.exec_prefix = list(exec_prefix)


class _Roles:
    """``roles`` of a cluster node; a controller-only node is ready when its raft port is."""
    roles = "broker,controller"

    def wait_ready(self) -> None:
        if "broker" in self.roles:
            super().wait_ready()
        else:
            _wait_controller_port(self, self.host, self.controller_port)


class SluiceNode(_Roles, brokers.SluiceBroker):
    """One sluice process of a cluster; ``voters`` and ``roles`` are set by the Cluster.
    A broker-only sluice node still has a CONTROLLER listener: the quorum leader
    streams the metadata log to it there (it is a raft learner, an observer)."""

    def __init__(self, work_dir: Path, node_id: int, **kw):
        super().__init__(work_dir, **kw)
        self.node_id = node_id
        self.controller_port = brokers.free_port()
        self.voters = ""
        self.bootstrap_servers = ""  # dynamic quorum: set instead of voters
        self.initial_flag: list[str] = []  # dynamic quorum: --standalone etc.
        self.exec_prefix: list[str] = []

    def _command(self) -> list[str]:
        quorum = ({"controller.quorum.bootstrap.servers": self.bootstrap_servers}
                  if self.bootstrap_servers else {"controller.quorum.voters": self.voters})
        self.overrides = {
            "process.roles": self.roles,
            **quorum,
            "controller.listener.names": "CONTROLLER",
            "listeners": f"PLAINTEXT://{self.bootstrap},"
                         f"CONTROLLER://{self.host}:{self.controller_port}",
            **self.overrides,
        }
        return self.exec_prefix + super()._command() + self.initial_flag

    def controller_properties(self) -> Path:
        """This node as ``kafka-metadata-quorum add-controller --command-config`` reads
        it: node.id, roles, the controller listener and the data dir (meta.properties)."""
        path = self.work_dir / "controller.properties"
        path.write_text(f"node.id={self.node_id}\nprocess.roles={self.roles}\n"
                        f"listeners=CONTROLLER://{self.host}:{self.controller_port}\n"
                        f"controller.listener.names=CONTROLLER\nlog.dirs={self.data_dir}\n")
        return path


class KafkaNode(_Roles, brokers.KafkaBroker):
    """One Kafka KRaft node of a cluster; ``voters`` and ``cluster_id`` set by the Cluster."""

    def __init__(self, work_dir: Path, node_id: int, **kw):
        super().__init__(work_dir, **kw)
        self.node_id = node_id
        self.voters = ""
        self.bootstrap_servers = ""
        self.initial_flag: list[str] = []
        self.cluster_id = ""
        self.exec_prefix: list[str] = []

    def _config(self) -> dict[str, str]:
        cfg = super()._config()
        if self.bootstrap_servers:
            cfg["controller.quorum.bootstrap.servers"] = self.bootstrap_servers
        else:
            del cfg["controller.quorum.bootstrap.servers"]
            cfg["controller.quorum.voters"] = self.voters
        cfg["process.roles"] = self.roles
        if self.roles == "broker":
            cfg["listeners"] = f"PLAINTEXT://{self.host}:{self.port}"
        elif self.roles == "controller":
            cfg["listeners"] = f"CONTROLLER://{self.host}:{self.controller_port}"
            del cfg["advertised.listeners"]
            del cfg["inter.broker.listener.name"]
        return cfg

    def _command(self) -> list[str]:
        # C1 only and the serial collector: on a small, busy machine a node restarts in
        # about half the time of the default JIT (restarts dominate the fault tests).
        return self.exec_prefix + brokers.java_command(
            "kafka.Kafka", str(self.config_path), heap=self.heap, broker=True, fast_start=True,
            jvm_opts=(f"-Xms{self.heap}",))

    def _format_args(self) -> list[str]:
        # The cluster's id; with static voters no --standalone, with a dynamic quorum
        # the node's --standalone / --no-initial-controllers.
        return ["-t", self.cluster_id, *self.initial_flag]

    def controller_properties(self) -> Path:
        """The node's own server.properties, as Kafka's docs pass it to add-controller."""
        return self.config_path


# -- the cluster ------------------------------------------------------------------------

# Started and not yet stopped; conftest adds their log tails to a failing test's report.
ACTIVE: list["Cluster"] = []


class Cluster:
    def __init__(self, kind: str, work_dir: Path, size: int = 3,
                 overrides: dict[str, str] | None = None, kafka_heap: str = "384m",
                 start_timeout_s: float = 90.0, roles: dict[int, str] | None = None,
                 netns: "netns_mod.Netns | None" = None, dynamic: bool = False):
        self.kind = kind.lower()
        self.work_dir = Path(work_dir)
        self.size = size
        self.roles = {i: (roles or {}).get(i, "broker,controller") for i in range(1, size + 1)}
        n_brokers = sum("broker" in r for r in self.roles.values())
        overrides = {**FAST_FAILURE, **_internal_topics(n_brokers), **(overrides or {})}
        self.nodes: dict[int, brokers.Broker] = {}
        for i in range(1, size + 1):
            wd = self.work_dir / f"node{i}"
            if self.kind == "sluice":
                n = SluiceNode(wd, i, overrides=dict(overrides), start_timeout_s=start_timeout_s)
            elif self.kind == "kafka":
                n = KafkaNode(wd, i, heap=kafka_heap, overrides=dict(overrides),
                              start_timeout_s=start_timeout_s)
            else:
                raise BrokerError(f"unknown cluster kind {kind!r}")
            if netns is not None:
                _place(n, netns.ip(i), netns.exec_prefix(i))
            self.nodes[i] = n
        self.netns = netns
        voters = ",".join(f"{i}@{n.host}:{n.controller_port}" for i, n in self.nodes.items()
                          if "controller" in self.roles[i])
        cid = brokers.new_cluster_id()
        controllers = [i for i in self.nodes if "controller" in self.roles[i]]
        servers = ",".join(f"{self.nodes[i].host}:{self.nodes[i].controller_port}" for i in controllers)
        self.dynamic = dynamic
        for i, n in self.nodes.items():
            n.voters = voters
            n.cluster_id = cid
            n.roles = self.roles[i]
            if dynamic:
                n.bootstrap_servers = servers
                if i == controllers[0]:
                    n.initial_flag = ["--standalone"]
                elif i in controllers:
                    n.initial_flag = ["--no-initial-controllers"]
        self.stopped: set[int] = set()  # SIGSTOPped nodes

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> None:
        """Spawn every node, then wait until each answers (a lone KRaft node may not
        open its client listener before the quorum has elected a leader)."""
        if self.kind == "kafka":
            # Formatting is a JVM start per node: do it in parallel.
            pending = [n for n in self.nodes.values() if not n._prepared]
            for n in pending:
                n.data_dir.mkdir(parents=True, exist_ok=True)
            started = [(n, n.start_format()) for n in pending]
            for n, (cmd, proc) in started:
                n.finish_format(cmd, proc)
                n._prepared = True
        if self not in ACTIVE:
            ACTIVE.append(self)
        self.start_nodes(list(self.nodes))
        self.stopped.clear()

    def start_nodes(self, ids: list[int]) -> None:
        """Start the given (stopped) nodes together, then wait until each answers."""
        for i in ids:
            if not self.nodes[i].is_running():
                self.nodes[i].start(wait=False)
        for i in ids:
            self.nodes[i].wait_ready()

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM every node at once (one by one, the last ones would wait for a quorum
        that is gone), SIGKILL what has not exited after ``timeout_s``."""
        for i in list(self.stopped):
            self.sigcont(i)
        running = [n for n in self.nodes.values() if n.is_running()]
        for n in running:
            n.proc.terminate()
        deadline = time.monotonic() + timeout_s
        for n in running:
            try:
                n.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for n in running:
            if n.proc.poll() is not None:
                n._note(f"stopped with the cluster, exit code {n.proc.returncode}")
        for n in self.nodes.values():
            n.stop(timeout_s=1)  # SIGKILLs a straggler, notes the exit in its log
        if self in ACTIVE:
            ACTIVE.remove(self)

    def __enter__(self) -> "Cluster":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- nodes and faults ---------------------------------------------------------------
    def node(self, i: int) -> brokers.Broker:
        return self.nodes[i]

    def live(self) -> list[int]:
        """Running, not SIGSTOPped and not cut off by ``isolate``."""
        cut = self.netns.isolated if self.netns is not None else set()
        return [i for i, n in self.nodes.items()
                if n.is_running() and i not in self.stopped and i not in cut]

    def isolate(self, i: int) -> None:
        """Network partition (needs ``netns``): node ``i`` keeps running but reaches no
        other node and no client outside its namespace, nor they it."""
        self.netns.isolate(i)
        self.nodes[i]._note("network: isolated")

    def heal(self, i: int) -> None:
        self.netns.heal(i)
        self.nodes[i]._note("network: healed")

    def brokers(self) -> list[int]:
        """Nodes with the broker role (the ones clients talk to)."""
        return [i for i in self.nodes if "broker" in self.roles[i]]

    def live_brokers(self) -> list[int]:
        return [i for i in self.live() if i in self.brokers()]

    def kill9(self, i: int) -> None:
        if i in self.stopped:
            self.sigcont(i)
        self.nodes[i].kill9()

    def sigstop(self, i: int) -> None:
        os.kill(self.nodes[i].proc.pid, signal.SIGSTOP)
        self.stopped.add(i)
        self.nodes[i]._note("SIGSTOP")

    def sigcont(self, i: int) -> None:
        os.kill(self.nodes[i].proc.pid, signal.SIGCONT)
        self.stopped.discard(i)
        self.nodes[i]._note("SIGCONT")

    def sigterm(self, i: int, timeout_s: float = 60.0) -> float:
        """Graceful stop (SIGTERM; SIGKILL after ``timeout_s``); returns seconds to exit."""
        t0 = time.monotonic()
        self.nodes[i].stop(timeout_s=timeout_s)
        return time.monotonic() - t0

    def restart(self, i: int) -> None:
        """Start node ``i`` again (stopping it gracefully first if it still runs)."""
        if i in self.stopped:
            self.sigcont(i)
        n = self.nodes[i]
        if n.is_running():
            n.stop()
        # wait_ready, not start's own wait: a controller-only node serves no clients.
        n.start(wait=False)
        n.wait_ready()

    def kill_quorum_leader(self, bootstrap: str, topic_label: str, partitions: int = 2,
                           rf: int = 2, timeout_s: float = 60.0) -> tuple[int, int, str]:
        """SIGKILL the metadata quorum leader, wait until another node leads, and create
        a topic (``unique_topic(topic_label)``, through ``bootstrap``, tried until it
        succeeds): the new leader commits metadata. Returns (killed node, new leader,
        topic); the caller checks the topic's data and restarts the killed node."""
        from util import create_topic, unique_topic

        leader = self.quorum_leader()
        self.kill9(leader)
        new_leader = self.wait_for("a new quorum leader",
                                   lambda: ((l := self.quorum_leader()) != leader, l),
                                   timeout_s=timeout_s)
        print(f"quorum leader {leader} killed; {new_leader} leads")
        topic = unique_topic(topic_label)
        self.wait_for("topic created after the failover",
                      lambda: (create_topic(bootstrap, topic, partitions, rf) is None, None),
                      timeout_s=timeout_s)
        return leader, new_leader, topic

    @property
    def bootstrap(self) -> str:
        """Every broker's client address."""
        return ",".join(self.nodes[i].bootstrap for i in self.brokers())

    def live_bootstrap(self) -> str:
        return ",".join(self.nodes[i].bootstrap for i in self.live_brokers())

    def log_tails(self, lines: int = 40) -> str:
        return "\n".join(f"== node {i}\n{n.log_tail(lines)}" for i, n in self.nodes.items())

    # -- observations -------------------------------------------------------------------
    def quorum_leader(self) -> int:
        """The metadata quorum leader all live nodes agree on (waits up to 30 s)."""
        return self.quorum_state()[0]

    def quorum_state(self) -> tuple[int, int]:
        """(leader, epoch) of the metadata quorum as all live nodes agree on it (waits up
        to 30 s)."""
        deadline = time.monotonic() + 30
        seen: dict[int, object] = {}
        while time.monotonic() < deadline:
            seen.clear()
            for i in self.live_brokers():
                n = self.nodes[i]
                try:
                    err, leader, epoch = quorum_leader(n.host, n.port)
                    # Both forward DescribeQuorum to the leader (error 0); a node that
                    # cannot reach it answers NOT_LEADER_OR_FOLLOWER (6) naming it.
                    seen[i] = (leader, epoch) if err in (0, 6) and leader >= 0 else f"error {err}"
                except (OSError, ValueError, struct.error) as e:
                    seen[i] = repr(e)
            vals = set(map(str, seen.values()))
            if len(vals) == 1:
                state = next(iter(seen.values()))
                if isinstance(state, tuple) and state[0] in self.live():
                    return state
            time.sleep(0.2)
        raise AssertionError(f"no agreed metadata quorum leader among {self.live()}: {seen}")

    def describe(self, topic: str, timeout_s: float = 4.0) -> dict[int, dict]:
        """``{partition: {"leader": id|-1, "replicas": [..], "isr": [..]}}`` via
        confluent-kafka's AdminClient.describe_topics, asked of the live nodes."""
        from confluent_kafka import TopicCollection
        from confluent_kafka.admin import AdminClient

        from util import rdkafka_conf
        admin = AdminClient(rdkafka_conf(self.live_bootstrap()))
        fut = admin.describe_topics(TopicCollection([topic]), request_timeout=timeout_s)[topic]
        d = fut.result(timeout=timeout_s + 5)
        return {p.id: {"leader": p.leader.id if p.leader is not None else -1,
                       "replicas": sorted(r.id for r in p.replicas),
                       "isr": sorted(r.id for r in p.isr)} for p in d.partitions}

    def describe_cli(self, topic: str) -> dict[int, dict]:
        """The same through Kafka's ``kafka-topics.sh --describe``
        (org.apache.kafka.tools.TopicCommand)."""
        cmd = brokers.java_command("org.apache.kafka.tools.TopicCommand", "--bootstrap-server",
                                   self.live_bootstrap(), "--describe", "--topic", topic)
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=90)
        if res.returncode != 0:
            raise AssertionError(f"TopicCommand --describe failed:\n{res.stdout}\n{res.stderr}")
        out = {}
        for line in res.stdout.splitlines():
            m = re.search(r"Partition:\s*(\d+)\s+Leader:\s*(-?\d+|none)\s+Replicas:\s*([\d,]*)"
                          r"\s+Isr:\s*([\d,]*)", line)
            if m:
                ids = lambda s: sorted(int(x) for x in s.split(",") if x)  # noqa: E731
                out[int(m.group(1))] = {
                    "leader": -1 if m.group(2) == "none" else int(m.group(2)),
                    "replicas": ids(m.group(3)), "isr": ids(m.group(4))}
        if not out:
            raise AssertionError(f"no partitions in TopicCommand output:\n{res.stdout}")
        return out

    def leader_of(self, topic: str, partition: int) -> int:
        return self.describe(topic)[partition]["leader"]

    def wait_for(self, what: str, cond, timeout_s: float = 30.0):
        """Polls ``cond() -> (ok, last)`` (exceptions count as not ok) every 0.3 s."""
        deadline = time.monotonic() + timeout_s
        last = None
        while True:
            try:
                ok, last = cond()
                if ok:
                    return last
            except Exception as e:  # noqa: BLE001 - a node may be restarting
                last = repr(e)
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout_s}s waiting for {what}; "
                                     f"last: {last!r}")
            time.sleep(0.3)


def cluster_kind() -> str:
    return os.environ.get("COMPAT_BROKER", "sluice")


def quorum_tool(bootstrap: str, *args: str, config=None) -> subprocess.CompletedProcess:
    """kafka-metadata-quorum --bootstrap-server BOOTSTRAP [--command-config F] ARGS."""
    opts = ["--bootstrap-server", bootstrap] + (["--command-config", str(config)] if config else [])
    cmd = brokers.java_command("org.apache.kafka.tools.MetadataQuorumCommand", *opts, *args)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def quorum_replication(bootstrap: str) -> dict[int, tuple[str, str]]:
    """node id -> (directory id, Leader / Follower / Observer), from
    ``kafka-metadata-quorum describe --replication``."""
    res = quorum_tool(bootstrap, "describe", "--replication")
    if res.returncode != 0:
        raise AssertionError(f"describe --replication failed:\n{res.stdout}\n{res.stderr}")
    rows = {}
    for line in res.stdout.splitlines():
        m = re.match(r"\s*(\d+)\s+(\S+)\s+.*\b(Leader|Follower|Observer)\s*$", line)
        if m:
            rows[int(m.group(1))] = (m.group(2), m.group(3))
    return rows
