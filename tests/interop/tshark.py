"""tshark for the interop tests: capture while a test runs, then read the file back."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path
from types import TracebackType

from tests.helpers import end_process

START_TIMEOUT = 15.0
# "Capturing on" is printed a moment before the capture filter is live.
SETTLE_S = 1.0
# Packets sent just before stop() still have to reach the file.
DRAIN_S = 0.3


class Capture:
    """tshark writing what ``capture_filter`` matches on one interface to ``path``.

    Started in its own session and stopped by PID (SIGINT, so the file is
    closed properly); usable as a context manager or stopped by hand.
    """

    def __init__(
        self, interface: str, path: Path, capture_filter: str, netns: str | None = None
    ) -> None:
        self.path = path
        self.log = path.with_suffix(".tshark.log")
        prefix = ["ip", "netns", "exec", netns] if netns else []
        argv = [*prefix, "tshark", "-q", "-n", "-i", interface, "-f", capture_filter]
        with self.log.open("wb") as err:
            self.proc = subprocess.Popen(
                [*argv, "-w", str(path)],
                stdout=subprocess.DEVNULL,
                stderr=err,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while "Capturing on" not in self.log.read_text(errors="replace"):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"tshark did not start: {self.log.read_text('utf-8')}")
            time.sleep(0.05)
        time.sleep(SETTLE_S)

    def stop(self) -> None:
        if self.proc.poll() is None:
            time.sleep(DRAIN_S)
            end_process(self.proc, signal.SIGINT)

    def __enter__(self) -> Capture:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()


def read(path: Path, *args: str) -> str:
    """tshark over a capture file; its standard output."""
    argv = ["tshark", "-n", "-r", str(path), *args]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def decode(path: Path, display_filter: str) -> str:
    """The verbose decode of every matching packet."""
    return read(path, "-Y", display_filter, "-V")


def fields(path: Path, display_filter: str, *names: str) -> list[list[str]]:
    """One row of field values per packet matching ``display_filter``."""
    out = read(path, "-Y", display_filter, "-T", "fields", *(a for n in names for a in ("-e", n)))
    return [line.split("\t") for line in out.splitlines() if line]


def expert_problems(path: Path) -> list[str]:
    """Expert-info summary lines of severity warning or error (malformed packets included)."""
    lines = read(path, "-q", "-z", "expert,warn").splitlines()
    return [
        line for line in lines if line.startswith(("Errors (", "Warns (")) or "Malformed" in line
    ]
