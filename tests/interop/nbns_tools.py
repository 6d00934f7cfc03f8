"""Helpers shared by the NBNS interop tests: a private smb.conf, client runs, tshark."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path


def client_smb_conf(directory: Path, interfaces: str = "127.0.0.1/8") -> Path:
    """An smb.conf for nmblookup that keeps the host's own config out of play."""
    state = directory / "samba-client"
    for sub in ("lock", "state", "cache", "private", "pid", "log"):
        (state / sub).mkdir(parents=True, exist_ok=True)
    conf = directory / "client-smb.conf"
    conf.write_text(
        "[global]\n"
        "  workgroup = CORP\n"
        "  netbios name = TESTCLIENT\n"
        f"  interfaces = {interfaces}\n"
        "  name resolve order = bcast\n"
        f"  lock directory = {state / 'lock'}\n"
        f"  state directory = {state / 'state'}\n"
        f"  cache directory = {state / 'cache'}\n"
        f"  private dir = {state / 'private'}\n"
        f"  pid directory = {state / 'pid'}\n"
        f"  log file = {state / 'log' / 'client.log'}\n"
    )
    return conf


def run(argv: Sequence[str], timeout: float = 20.0) -> subprocess.CompletedProcess[str]:
    """Run a client with a timeout; output captured as text."""
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False)


@contextlib.contextmanager
def capture(
    interface: str, path: Path, capture_filter: str = "udp port 137", netns: str | None = None
) -> Iterator[Path]:
    """Capture with tshark while the block runs; stopped by PID afterwards."""
    prefix = ["ip", "netns", "exec", netns] if netns else []
    argv = [*prefix, "tshark", "-q", "-n", "-i", interface, "-f", capture_filter, "-w", str(path)]
    log = path.with_suffix(".tshark.log")
    with log.open("wb") as err:
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
    try:
        deadline = time.monotonic() + 15
        while "Capturing on" not in log.read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"tshark did not start: {log.read_text(errors='replace')}")
            time.sleep(0.05)
        time.sleep(0.3)
        yield path
        time.sleep(0.3)  # let the last packets reach the capture
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGINT)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def decode(path: Path, display_filter: str = "nbns") -> str:
    """The verbose decode of every matching packet."""
    done = run(["tshark", "-n", "-r", str(path), "-Y", display_filter, "-V"], timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def fields(path: Path, display_filter: str, *names: str) -> list[list[str]]:
    """One row of field values per packet matching ``display_filter``."""
    argv = ["tshark", "-n", "-r", str(path), "-Y", display_filter, "-T", "fields"]
    for name in names:
        argv += ["-e", name]
    done = run(argv, timeout=60)
    assert done.returncode == 0, done.stderr
    return [line.split("\t") for line in done.stdout.splitlines() if line]


def expert_problems(path: Path) -> list[str]:
    """Expert-info summary lines of severity warning or error (malformed packets included)."""
    done = run(["tshark", "-n", "-r", str(path), "-q", "-z", "expert,warn"], timeout=60)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    return [
        line for line in lines if line.startswith(("Errors (", "Warns (")) or "Malformed" in line
    ]
