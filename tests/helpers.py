"""What the tests share: the base config, golden captures, loops, and the daemon process.

Fixtures live in ``conftest.py`` files; everything a test imports by name lives here.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# Seconds a daemon gets to log a line or to stop. Only a guard against a hang: a busy
# machine may be slow, and how fast the daemon is belongs to benchmarks/, not here.
PATIENCE = 60.0
DATA = Path(__file__).resolve().parent / "data"

BASE_CONFIG = """\
[cluster]
name = "SQL01"
dns_domain = "corp.example"
workgroup = "CORP"

[dns]
listen = ["127.0.0.10"]

[[node]]
cozen_name = "SQL01-CZ1"
management_ip = "127.0.0.11"

[[node]]
cozen_name = "SQL01-CZ2"
management_ip = "127.0.0.12"
"""


def golden(name: str) -> bytes:
    """The bytes of the captured message ``tests/data/NAME.hex``."""
    return bytes.fromhex((DATA / f"{name}.hex").read_text().strip())


def goldens(prefix: str) -> list[bytes]:
    """Every capture whose file name starts with ``prefix``, in name order."""
    return [golden(path.stem) for path in sorted(DATA.glob(f"{prefix}*.hex"))]


def loop_kinds() -> list[str]:
    """Event loops the in-process tests run on (both by default)."""
    return os.environ.get("COZEN_TEST_LOOPS", "uvloop,asyncio").split(",")


def run_on(loop_kind: str, scenario: Callable[[], Awaitable[None]], timeout: float = 20) -> None:
    """Run an async test scenario on a fresh loop of the given kind, bounded in time."""
    import uvloop

    factory = uvloop.new_event_loop if loop_kind == "uvloop" else asyncio.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(asyncio.wait_for(scenario(), timeout))


def end_process(
    proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 10.0
) -> None:
    """Stop a process the suite started, by its PID: ``sig``, then SIGKILL if it lingers."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


class DaemonProcess:
    """The real daemon as a subprocess, in its own session, ended by PID."""

    def __init__(
        self,
        config_path: Path,
        loop: str = "uvloop",
        *extra: str,
        env: dict[str, str] | None = None,
        preexec_fn: Callable[[], None] | None = None,
    ) -> None:
        self.config_path = config_path
        self.stderr_path = config_path.with_suffix(".stderr")
        self.stdout_path = config_path.with_suffix(".stdout")
        self._stderr = self.stderr_path.open("wb")
        # A file, not a pipe: nobody reads while it runs, and a big describe() would fill a pipe.
        self._stdout = self.stdout_path.open("wb")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "responder",
                "run",
                "--config",
                str(config_path),
                "--loop",
                loop,
                *extra,
            ],
            cwd=REPO,
            env=None if env is None else {**os.environ, **env},
            stdout=self._stdout,
            stderr=self._stderr,
            start_new_session=True,
            preexec_fn=preexec_fn,  # e.g. lower limits, as systemd or a shell would set them
        )

    def log(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def wait_for_log(self, text: str, timeout: float = PATIENCE, *, count: int = 1) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.log().count(text) >= count:
                return
            if self.proc.poll() is not None:
                raise AssertionError(f"daemon exited {self.proc.returncode}:\n{self.log()}")
            time.sleep(0.02)
        raise AssertionError(f"no {text!r} in daemon log within {timeout}s:\n{self.log()}")

    def signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    def stop(self, timeout: float = PATIENCE) -> int:
        end_process(self.proc, signal.SIGTERM, timeout)
        self._stderr.close()
        self._stdout.close()
        return self.proc.returncode


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rindex(")") + 2 :].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def workers_of(pid: int) -> list[int]:
    """The worker processes of the daemon ``pid``: the children of its fork server."""
    (server,) = children(pid)
    return children(server)
