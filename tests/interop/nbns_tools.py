"""Helpers shared by the NBNS interop tests: the daemon in a namespace, client smb.conf, runs."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from tests.helpers import PATIENCE, REPO


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


class NetnsDaemon:
    """``python -m responder run`` inside the network namespace ``netns``; ended by PID."""

    def __init__(self, netns: str, config: Path) -> None:
        self.log_path = config.with_suffix(".stderr")
        argv = ["ip", "netns", "exec", netns, sys.executable, "-m", "responder"]
        with self.log_path.open("wb") as err:
            self.proc = subprocess.Popen(
                [*argv, "run", "--config", str(config)],
                cwd=REPO,
                stdout=subprocess.DEVNULL,
                stderr=err,
                start_new_session=True,
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, text: str, count: int = 1) -> None:
        """Until ``text`` is logged ``count`` times; PATIENCE only guards against a hang."""
        deadline = time.monotonic() + PATIENCE
        while self.log().count(text) < count:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"no {text!r} in daemon log:\n{self.log()}")
            time.sleep(0.05)

    def end(self) -> int:
        """SIGTERM (SIGKILL if it lingers); the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(PATIENCE)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(5)
