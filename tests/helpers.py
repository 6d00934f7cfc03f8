"""What the tests share: base config, golden captures, loops, the daemon process, work counts.

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
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

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
    """The bytes of the captured message ``tests/data/NAME.hex`` (``#`` lines are comments)."""
    lines = (DATA / f"{name}.hex").read_text().splitlines()
    return bytes.fromhex("".join(line for line in lines if not line.startswith("#")))


def goldens(prefix: str) -> list[bytes]:
    """Every capture whose file name starts with ``prefix``, in name order."""
    return [golden(path.stem) for path in sorted(DATA.glob(f"{prefix}*.hex"))]


class _LineCounter:
    """A trace function that counts the Python lines executed below it."""

    def __init__(self) -> None:
        self.lines = 0

    def __call__(self, frame: FrameType, event: str, arg: object) -> _LineCounter:
        if event == "line":
            self.lines += 1
        return self


def count_lines(call: Callable[[], object]) -> tuple[object, int]:
    """Run ``call``; return its result (or the ProtocolError it raised) and the lines it ran.

    The count of Python lines executed is the suite's deterministic measure of
    work: the same input costs the same count on any machine. Work done inside
    one C call (a slice, ``bytes.find``, a codec) counts as one line, which is
    why a decoder keeps every loop over message content in budgeted Python or
    in a single C call. Wall time belongs to benchmarks/.
    """
    from protocols.errors import ProtocolError

    counter = _LineCounter()
    previous = sys.gettrace()  # coverage's tracer, when the suite runs under it
    sys.settrace(counter)
    try:
        outcome: object = call()
    except ProtocolError as exc:
        outcome = exc
    finally:
        sys.settrace(previous)
    return outcome, counter.lines


LINE_BUDGET = 20_000
"""Lines one worst input may cost: about 1 ms at the ~50 ns a line takes here (2 ms target)."""


@dataclass(frozen=True)
class WorstInput:
    """A worst input of one decoder: the call that decodes it and what must come out.

    ``expect`` is the exact :class:`~protocols.errors.ProtocolError` subclass
    the call must raise, or None when the input is accepted. The family
    modules ``tests/protocols/*/test_worst_inputs.py`` list them in ``WORST``,
    and ``python -m benchmarks.worst_inputs`` times the same calls.
    """

    decoder: str
    name: str
    size: int
    call: Callable[[], object]
    expect: type[Exception] | None
    budget: int = LINE_BUDGET

    @property
    def id(self) -> str:
        return f"{self.decoder}: {self.name}"


def check_worst(case: WorstInput) -> None:
    """Assert the outcome of ``case`` and that it ran within its line budget."""
    outcome, lines = count_lines(case.call)
    if case.expect is None:
        assert not isinstance(outcome, Exception), outcome
    else:
        assert type(outcome) is case.expect, outcome
    assert lines <= case.budget, f"{lines} lines, budget {case.budget}"


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
