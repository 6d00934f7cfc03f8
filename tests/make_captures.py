"""Write the foreign captures under tests/data/captures/: run once, commit the output.

    sudo .venv/bin/python -m tests.make_captures [DIRECTORY]

Runs in a private network namespace of its own (so it needs root), starts a
server, has tshark (not our recorder) capture on loopback while the client
session of tests/interop/capture_clients.py runs, and stops. Four files:

- ``cozen-lo.pcapng``: our daemon, tshark's pcapng on ``lo`` (Ethernet link type);
- ``cozen-lo.pcap``: the same session as classic pcap (``-F pcap``);
- ``cozen-any.pcapng``: on the ``any`` interface (Linux cooked SLL2 link type);
- ``samba-knot-lo.pcapng``: Knot (DNS), Samba nmbd and smbd (NBNS, NBSS/SMB)
  serving SQL01-CZ1 on the same addresses (benchmarks/servers.py configures them).

The sessions repeat the dig 5 times instead of 50, so each file stays far
under 100 KB. tests/interop/test_foreign_captures.py replays them.
"""

from __future__ import annotations

import ctypes
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks import servers
from benchmarks.records import make_cluster
from tests.helpers import BASE_CONFIG, DATA, DaemonProcess
from tests.interop.capture_clients import Targets, run_clients
from tests.interop.tshark import Capture

FILTER = "port 53 or port 137 or port 139 or port 445"
REPEATS = 5
DCERPCD = "/usr/libexec/samba/samba-dcerpcd"  # as in tests/interop/test_probe_tools.py
OURS = Targets("127.0.0.10", ("SQL01-CZ1", "127.0.0.11"), ("SQL01-CZ2", "127.0.0.12"), "127.0.0.12")
# One Samba instance serves SQL01-CZ1 only: every client asks it.
FOREIGN = Targets(
    "127.0.0.10", ("SQL01-CZ1", "127.0.0.11"), ("SQL01-CZ1", "127.0.0.11"), "127.0.0.11"
)


def _private_namespace() -> None:
    if ctypes.CDLL(None, use_errno=True).unshare(0x40000000) != 0:
        raise SystemExit("make_captures: needs root to create a network namespace")
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)


def _record(path: Path, interface: str, work: Path, targets: Targets) -> None:
    with Capture(interface, path, FILTER):
        run_clients(work, targets, repeats=REPEATS)
    print(f"{path}: {path.stat().st_size} bytes")


def _with_daemon(work: Path, action: Callable[[], None]) -> None:
    config = work / "cozen.toml"
    config.write_text(BASE_CONFIG)
    daemon = DaemonProcess(config)
    try:
        daemon.wait_for_log("ready")
        action()
    finally:
        daemon.stop()


def _to_pcap(source: Path, target: Path) -> None:
    subprocess.run(["editcap", "-F", "pcap", str(source), str(target)], check=True)
    print(f"{target}: {target.stat().st_size} bytes")


def _smbd(ctx: servers.Context) -> list[servers.RunningServer]:
    """smbd, and the samba-dcerpcd that smbclient -L needs, both started (and ended) by us.

    Left to start it on demand, smbd would spawn helpers nobody ends.
    """
    cluster = make_cluster(2)
    for d in ("private", "lock", "state", "cache", "pid"):
        (ctx.workdir / d).mkdir(exist_ok=True)
    text = servers.samba_config(cluster, ctx.workdir).replace(
        "smb ports = 445", "smb ports = 445 139\n    rpc start on demand helpers = no"
    )
    conf = ctx.workdir / "smbd.conf"
    conf.write_text(text)
    common = ["--foreground", "--no-process-group", f"--configfile={conf}"]
    rpc = [DCERPCD, "--libexec-rpcds", *common]
    started = [servers.RunningServer("samba-dcerpcd", "smb", rpc, ctx.workdir / "dcerpcd.log")]
    server = servers.RunningServer("smbd", "smb", ["smbd", *common], ctx.workdir / "smbd.log")
    started.append(server)
    deadline = time.monotonic() + servers.READY_TIMEOUT
    while not servers.probe_smb(cluster, ("127.0.0.11", 445)):
        if time.monotonic() > deadline or server.proc.poll() is not None:
            for process in started:
                process.stop()
            raise SystemExit(f"smbd did not start: {server.log_tail()}")
        time.sleep(0.2)
    return started


def _foreign(work: Path, target: Path) -> None:
    ctx = servers.Context(sys.executable, work, work)
    cluster = make_cluster(2)
    started = [
        servers.start(ctx, "knot", "dns", cluster),
        servers.start(ctx, "nmbd", "nbns", cluster),
    ]
    try:
        started += _smbd(ctx)
        _record(target, "lo", work, FOREIGN)
    finally:
        for server in started:
            server.stop()


def main(argv: list[str]) -> int:
    out = Path(argv[0]) if argv else DATA / "captures"
    out.mkdir(parents=True, exist_ok=True)
    _private_namespace()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        _with_daemon(work, lambda: _record(out / "cozen-lo.pcapng", "lo", work, OURS))
        _to_pcap(out / "cozen-lo.pcapng", out / "cozen-lo.pcap")
        _with_daemon(work, lambda: _record(out / "cozen-any.pcapng", "any", work, OURS))
        _foreign(work, out / "samba-knot-lo.pcapng")
    for log in out.glob("*.tshark.log"):
        log.unlink()
    for capture in out.iterdir():
        capture.chmod(0o644)  # tshark writes 0600; the repository wants them readable
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
