"""franz-go (kgo + kadm) against the broker: topic creation, an idempotent producer
with every codec, and a group-less consumer reading back exactly what was acknowledged.
The checks run in compat/go/main.go; this test asserts its summary line and exit code."""

import re
import subprocess

from brokers import COMPAT_DIR
from util import describe_proc

FRANZGO = COMPAT_DIR / ".cache" / "franzgo"


def test_franz_go_round_trip_every_codec(broker, topic):
    assert FRANZGO.is_file(), "run compat/install.sh (it builds compat/go)"
    res = subprocess.run([str(FRANZGO), broker.bootstrap, topic, "500"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, describe_proc(res)
    m = re.search(r"RESULT produced=(\d+) consumed=(\d+) mismatches=(\d+)", res.stdout)
    assert m, describe_proc(res)
    assert (int(m[1]), int(m[2]), int(m[3])) == (500, 500, 0)
