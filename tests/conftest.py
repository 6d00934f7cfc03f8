"""Suite-wide set-up: a private network namespace and daemon fixtures.

Before any test runs, the pytest process moves itself into a fresh network
namespace (``unshare(CLONE_NEWNET)``) and brings its loopback up. Every daemon,
client and peer the tests start inherits it, so the suite can use the standard
ports on any 127.x address without colliding with anything else on the
machine, and nothing it sends can leave. The namespace disappears with the
process: there is nothing to clean up, even after a crash.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.helpers import BASE_CONFIG, DaemonProcess

CLONE_NEWNET = 0x40000000


def _enter_private_network_namespace() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise pytest.UsageError(
            f"the suite runs in a private network namespace and needs root "
            f"(CAP_SYS_ADMIN) to create it: {os.strerror(err)}"
        )
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)


def pytest_configure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput"):  # once per process
        _enter_private_network_namespace()


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[[str], Path]:
    """Write TOML text to a fresh file and return its path."""
    counter = iter(range(1000))

    def write(text: str = BASE_CONFIG) -> Path:
        path = tmp_path / f"config-{next(counter)}.toml"
        path.write_text(text)
        return path

    return write


@pytest.fixture
def start_daemon() -> Iterator[Callable[..., DaemonProcess]]:
    """Start the daemon on a config file; every one started is stopped after the test."""
    started: list[DaemonProcess] = []

    def start(
        config_path: Path,
        loop: str = "uvloop",
        *extra: str,
        wait_ready: bool = True,
        env: dict[str, str] | None = None,
        preexec_fn: Callable[[], None] | None = None,
    ) -> DaemonProcess:
        daemon = DaemonProcess(config_path, loop, *extra, env=env, preexec_fn=preexec_fn)
        started.append(daemon)
        if wait_ready:
            daemon.wait_for_log("ready")
        return daemon

    yield start
    for daemon in started:
        with contextlib.suppress(Exception):
            daemon.stop()
