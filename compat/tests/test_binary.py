"""The sluice binary itself: flags, config errors, the no-argument default, SIGTERM.

These run the release binary directly (not the session broker), so they are
sluice-only: with COMPAT_BROKER=kafka they are skipped.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

import brokers

pytestmark = pytest.mark.skipif(os.environ.get("COMPAT_BROKER", "sluice") != "sluice",
                                reason="tests of the sluice binary")


def sluice_bin() -> Path:
    return brokers.SluiceBroker(Path("/tmp"), start_timeout_s=0).binary


def run(*args, cwd=None, timeout=20):
    return subprocess.run([str(sluice_bin()), *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("args,key", [
    (["--override", "num.partitions=zero"], "num.partitions"),
    (["--override", "auto.create.topics.enable=maybe"], "auto.create.topics.enable"),
    (["--override", "message.max.bytes=-1"], "message.max.bytes"),
    (["--listen", "127.0.0.1:notaport"], "--listen"),
    (["--no-such-flag"], "--no-such-flag"),
])
def test_bad_configuration_exits_nonzero_naming_the_key(tmp_path, args, key):
    res = run("--data-dir", str(tmp_path / "d"), *args)
    assert res.returncode != 0
    assert key in res.stderr, res.stderr
    # Refused before touching the data dir.
    assert not (tmp_path / "d").exists()


def test_config_file_in_server_properties_format(tmp_path):
    props = tmp_path / "server.properties"
    props.write_text("# comment\nnum.partitions = 4\nlog.segment.bytes=zzz\n")
    res = run("--config", str(props), "--data-dir", str(tmp_path / "d"))
    assert res.returncode != 0 and "log.segment.bytes" in res.stderr, res.stderr


def _wait_port(port: int, proc: subprocess.Popen, timeout_s: float = 20.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"sluice exited with {proc.returncode}"
        try:
            return brokers.api_versions("127.0.0.1", port)
        except (OSError, ValueError):
            time.sleep(0.05)
    raise AssertionError(f"nothing answered on port {port}")


def test_no_arguments_serves_localhost_9092_with_local_data_dir(tmp_path):
    with socket.socket() as s:
        if s.connect_ex(("127.0.0.1", 9092)) == 0:
            pytest.skip("port 9092 is already in use on this machine")
    proc = subprocess.Popen([str(sluice_bin())], cwd=tmp_path, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        versions = _wait_port(9092, proc)
        assert 0 in versions and 1 in versions  # Produce and Fetch are served
        assert (tmp_path / "sluice-data" / "meta.properties").is_file()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
    assert proc.returncode == 0


def test_sigterm_stops_cleanly_and_keeps_every_acknowledged_record(tmp_path):
    port = brokers.free_port()
    addr = f"127.0.0.1:{port}"
    cmd = [str(sluice_bin()), "--listen", addr, "--data-dir", str(tmp_path / "data")]
    log = open(tmp_path / "sluice.log", "w")
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    _wait_port(port, proc)
    p = Producer({"bootstrap.servers": addr, "acks": "all", "enable.idempotence": True})
    acked = []
    for i in range(500):
        p.produce("lifecycle", key=str(i), value=f"value-{i}", partition=0,
                  on_delivery=lambda err, m: acked.append(m.offset()) if err is None else None)
    assert p.flush(30) == 0
    assert sorted(acked) == list(range(500))

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 0
    text = (tmp_path / "sluice.log").read_text()
    assert "stopped cleanly" in text, text[-2000:]

    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    try:
        _wait_port(port, proc)
        c = Consumer({"bootstrap.servers": addr, "group.id": "unused", "enable.auto.commit": False})
        c.assign([TopicPartition("lifecycle", 0, 0)])
        got = []
        deadline = time.monotonic() + 30
        while len(got) < 500 and time.monotonic() < deadline:
            m = c.poll(1)
            if m is not None and m.error() is None:
                got.append((m.offset(), m.value().decode()))
        c.close()
        assert got == [(i, f"value-{i}") for i in range(500)]
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
