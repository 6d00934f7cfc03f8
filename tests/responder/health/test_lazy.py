"""Without ``[health] listen`` the daemon never imports h11, prometheus_client or the probes."""

from __future__ import annotations

import subprocess
import sys

from tests.helpers import BASE_CONFIG, REPO

SCRIPT = f"""
import asyncio, sys, tomllib
from responder.app import Daemon
from responder.config import parse_config

async def main():
    config = parse_config(tomllib.loads({BASE_CONFIG!r}), "test")
    daemon = Daemon(config, asyncio.get_running_loop())
    await daemon.start()
    await daemon.stop()

asyncio.run(main())
heavy = ("h11", "prometheus_client", "responder.health.probes", "responder.health.http")
print(sorted(name for name in heavy if name in sys.modules))
"""


def test_daemon_without_health_imports_none_of_it():
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
