"""Helpers shared by the NBNS interop tests: a private smb.conf for clients, client runs."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
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
