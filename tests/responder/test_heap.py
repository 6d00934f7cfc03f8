"""The collector policy: no collection while a config is built, then its tables frozen."""

from __future__ import annotations

import gc
import json
import subprocess
import sys

from responder import heap
from tests.helpers import BASE_CONFIG, PATIENCE, REPO


def test_building_pauses_collection_then_freezes_what_it_built():
    gc.collect()
    frozen = gc.get_freeze_count()
    try:
        with heap.building():
            assert not gc.isenabled()
            tables = [{"node": n} for n in range(1000)]  # containers: tracked by the collector
        assert gc.isenabled()
        assert gc.get_freeze_count() >= frozen + len(tables)
        gc.disable()
        with heap.building():
            pass
        assert not gc.isenabled()  # a collector someone switched off stays off
    finally:
        gc.enable()
        gc.unfreeze()


# In a process of its own: the test runner keeps objects (log records) that would count.
RELOADS = f"""
import asyncio, gc, json, tomllib
from responder import heap
from responder.app import Daemon
from responder.config import parse_config

BASE = {BASE_CONFIG!r}
THIRD = '[[node]]\\ncozen_name = "SQL01-CZ3"\\nmanagement_ip = "127.0.0.13"\\n'
configs = [parse_config(tomllib.loads(BASE + extra), "test") for extra in ("", THIRD)]

async def main():
    daemon = Daemon(configs[0], asyncio.get_running_loop())
    with heap.building():
        await daemon.start()
    counts = []
    for i in range(20):
        with heap.building():
            await daemon.reload(configs[(i + 1) % 2])
        await asyncio.sleep(0.05)  # what the reload set in motion (claims, timers) settles
        counts.append(gc.get_freeze_count())
    await daemon.stop()
    gc.unfreeze()
    print(json.dumps(counts))

asyncio.run(main())
"""


def test_reloads_back_and_forth_leave_nothing_frozen_behind():
    """What a reload replaces is freed by reference counting, frozen or not: no growth."""
    done = subprocess.run(
        [sys.executable, "-c", RELOADS], cwd=REPO, capture_output=True, text=True, timeout=PATIENCE
    )
    assert done.returncode == 0, done.stderr[-2000:]
    counts = json.loads(done.stdout.splitlines()[-1])
    # After the first round trip (thread pool, caches) the same config freezes the same
    # count, plus whatever happens to be in flight at that moment (a timer, a future): so
    # compare the least of the early and of the late reloads of each config. A leak of even
    # one object per reload would put the late ones 8 or more above.
    for same_config in (counts[2::2], counts[3::2]):
        early, late = min(same_config[1:5]), min(same_config[5:])
        assert late - early < 8, counts
    assert counts[3] > 0
