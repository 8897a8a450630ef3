"""A private network of Linux network namespaces for cluster tests (``ip netns``, veth,
a bridge), so a node can be cut off from every other node and from the clients.

Layout for ``Netns(size)`` (tag ``snt<pid><letter>``, one letter per network this
process creates):
  * a bridge ``<tag>b`` in the root namespace with ``10.<x>.0.254/24`` (``x`` picked
    among 200..254 so that no route of the root namespace overlaps it), so clients in
    the root namespace reach every node;
  * per node ``i`` (1..size) a namespace ``<tag>-n<i>`` with ``lo`` and ``eth0`` =
    ``10.<x>.0.<i>/24``, the peer of the veth ``<tag>v<i>`` plugged into the bridge.

``isolate(i)`` takes ``<tag>v<i>`` down (the namespace's ``eth0`` loses its carrier):
node ``i`` reaches nobody and nobody reaches it, in both directions, connections stay
open but their packets are lost, as in a real partition; a process inside the
namespace still reaches the node itself. ``heal(i)`` brings it back up.

Processes run inside with ``ip netns exec <ns> CMD``, which execs CMD (same pid, so
signals sent to the Popen reach the program itself).

Interface names stay within Linux's 15 characters (``snt`` + pid up to 7 digits +
letter + ``v<i>``). ``close()`` (also run at exit) kills what still runs inside the
namespaces and deletes them and the bridge; creating a network first deletes the
leftovers of runs whose process is gone (a crashed or killed pytest).

Needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN) and iproute2: ``available()`` says why not.
"""

from __future__ import annotations

import atexit
import ipaddress
import os
import re
import signal
import subprocess
import time

PREFIX = "snt"
_NAME = re.compile(rf"^{PREFIX}(\d+)([a-z])")
_counter = 0
_OPEN: list["Netns"] = []


class NetnsError(RuntimeError):
    pass


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    res = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and res.returncode != 0:
        raise NetnsError(f"ip {' '.join(args)} failed ({res.returncode}): "
                         f"{res.stderr.strip() or res.stdout.strip()}")
    return res


def available() -> str | None:
    """None when namespaces, veth pairs and bridges can be made here, else the reason."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    try:
        _ip("-V")
    except FileNotFoundError:
        return "iproute2 (`ip`) is not installed"
    probe = f"{PREFIX}{os.getpid()}z"
    try:
        _ip("netns", "add", probe + "-probe")
        try:
            _ip("link", "add", probe + "b", "type", "bridge")
            _ip("link", "del", probe + "b")
            _ip("link", "add", probe + "v", "type", "veth", "peer", "name", "eth0",
                "netns", probe + "-probe")
            _ip("link", "del", probe + "v")
        finally:
            _ip("netns", "del", probe + "-probe", check=False)
    except NetnsError as e:
        return f"cannot create network namespaces / veth / bridges: {e}"
    return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _kill_inside(ns: str) -> None:
    """SIGKILL every process still in namespace ``ns`` (all started by a test in it)."""
    res = _ip("netns", "pids", ns, check=False)
    for pid in res.stdout.split():
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass


def remove_stale() -> list[str]:
    """Deletes namespaces and links of this prefix whose creating process is gone;
    returns their names."""
    removed = []
    for line in _ip("netns", "list", check=False).stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        m = _NAME.match(name)
        if m and not _alive(int(m.group(1))):
            _kill_inside(name)
            _ip("netns", "del", name, check=False)
            removed.append(name)
    for line in _ip("-o", "link", "show", check=False).stdout.splitlines():
        parts = line.split(":")
        if len(parts) < 2:
            continue
        name = parts[1].strip().split("@")[0]
        m = _NAME.match(name)
        if m and not _alive(int(m.group(1))):
            _ip("link", "del", name, check=False)
            removed.append(name)
    return removed


def _free_subnet() -> int:
    """``x`` of a 10.x.0.0/24 that overlaps no route in the root namespace (another
    run's bridge included)."""
    routes = []
    for line in _ip("-4", "route", "show", "table", "all", check=False).stdout.splitlines():
        dst = line.split()[0] if line.split() else ""
        if dst in ("default", "broadcast", "local", "unreachable", "blackhole"):
            dst = line.split()[1] if len(line.split()) > 1 else ""
        try:
            routes.append(ipaddress.ip_network(dst, strict=False))
        except ValueError:
            continue
    start = os.getpid() % 55
    for k in range(55):
        x = 200 + (start + k) % 55
        net = ipaddress.ip_network(f"10.{x}.0.0/24")
        if not any(net.overlaps(r) for r in routes if r.prefixlen > 0):
            return x
    raise NetnsError("no free 10.x.0.0/24 (x in 200..254) in the root namespace")


class Netns:
    def __init__(self, size: int):
        global _counter
        if not 1 <= size <= 9:
            raise ValueError("1..9 nodes")
        remove_stale()
        self.size = size
        self.tag = f"{PREFIX}{os.getpid()}{chr(ord('a') + _counter % 26)}"
        _counter += 1
        self.bridge = self.tag + "b"
        self.x = _free_subnet()
        self.isolated: set[int] = set()
        self._created: list[tuple[str, str]] = []  # ("netns"|"link", name), for close()
        _OPEN.append(self)
        try:
            self._build()
        except BaseException:
            self.close()
            raise

    # -- names ----------------------------------------------------------------------------
    def ns(self, i: int) -> str:
        return f"{self.tag}-n{i}"

    def veth(self, i: int) -> str:
        return f"{self.tag}v{i}"

    def ip(self, i: int) -> str:
        return f"10.{self.x}.0.{i}"

    @property
    def gateway(self) -> str:
        return f"10.{self.x}.0.254"

    def exec_prefix(self, i: int) -> list[str]:
        """Prepend to a command to run it inside node ``i``'s namespace."""
        return ["ip", "netns", "exec", self.ns(i)]

    # -- lifecycle ------------------------------------------------------------------------
    def _build(self) -> None:
        _ip("link", "add", self.bridge, "type", "bridge")
        self._created.append(("link", self.bridge))
        _ip("addr", "add", f"{self.gateway}/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        for i in range(1, self.size + 1):
            ns, veth = self.ns(i), self.veth(i)
            _ip("netns", "add", ns)
            self._created.append(("netns", ns))
            _ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
            self._created.append(("link", veth))
            _ip("-n", ns, "addr", "add", f"{self.ip(i)}/24", "dev", "eth0")
            _ip("-n", ns, "link", "set", "lo", "up")
            _ip("-n", ns, "link", "set", "eth0", "up")
            _ip("link", "set", veth, "master", self.bridge)
            _ip("link", "set", veth, "up")
        # The bridge forwards at once (no STP), but give the links a moment to report
        # carrier before anything connects.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if all("LOWER_UP" in _ip("-n", self.ns(i), "link", "show", "eth0").stdout
                   for i in range(1, self.size + 1)):
                return
            time.sleep(0.05)
        raise NetnsError("veth links did not come up within 5 s")

    def close(self) -> None:
        """Kill what still runs inside, delete the namespaces (their veths go with
        them) and the bridge. Idempotent."""
        for kind, name in reversed(self._created):
            if kind == "netns":
                _kill_inside(name)
                _ip("netns", "del", name, check=False)
            else:
                _ip("link", "del", name, check=False)  # already gone with its peer: fine
        self._created.clear()
        if self in _OPEN:
            _OPEN.remove(self)

    def __enter__(self) -> "Netns":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- faults ---------------------------------------------------------------------------
    def isolate(self, i: int) -> None:
        """Cut node ``i`` off from every other node and the root namespace."""
        _ip("link", "set", self.veth(i), "down")
        self.isolated.add(i)

    def heal(self, i: int) -> None:
        _ip("link", "set", self.veth(i), "up")
        self.isolated.discard(i)


def _close_all_at_exit() -> None:
    for n in list(_OPEN):
        n.close()


atexit.register(_close_all_at_exit)
