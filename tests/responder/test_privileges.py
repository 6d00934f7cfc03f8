"""``run --user nobody --group nogroup``: root is dropped after binding, and reloads still bind.

The config lives in a directory anyone may read, as /etc/cozen-responder
does: after the drop the daemon re-reads it as ``nobody`` on SIGHUP.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import dns.message
import dns.query
import pytest

from protocols.netbios.names import NetbiosName
from protocols.netbios.nbns import NameQueryRequest, NameQueryResponse, decode_packet
from protocols.netbios.nbns_encode import encode_packet
from responder.privileges import CAP_NET_BIND_SERVICE
from tests.helpers import BASE_CONFIG, PATIENCE, REPO, workers_of

NOBODY, NOGROUP = 65534, 65534
AS_NOBODY = ("--user", "nobody", "--group", "nogroup")
THIRD_NODE = '\n[[node]]\ncozen_name = "SQL01-CZ3"\nmanagement_ip = "127.0.0.13"\n'


@pytest.fixture
def public_dir() -> Iterator[Path]:
    """A directory ``nobody`` can read (pytest's own tmp directories are root's alone)."""
    path = Path(tempfile.mkdtemp(prefix="cozen-privileges-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


def write_public(directory: Path, text: str) -> Path:
    path = directory / "config.toml"
    path.write_text(text)
    path.chmod(0o644)
    return path


def status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return dict(line.split(":\t", 1) for line in lines if ":\t" in line)


def assert_dropped(pid: int) -> None:
    fields = status(pid)
    assert fields["Uid"].split() == [str(NOBODY)] * 4
    assert fields["Gid"].split() == [str(NOGROUP)] * 4
    assert fields["Groups"].split() == [str(NOGROUP)]
    assert int(fields["CapEff"], 16) == 1 << CAP_NET_BIND_SERVICE
    assert int(fields["CapPrm"], 16) == 1 << CAP_NET_BIND_SERVICE
    assert int(fields["CapInh"], 16) == 0


def cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:  # a child that has already gone (the `ip` the NBNS service runs)
        return b""


def lookup(name: str, server: str = "127.0.0.10") -> list[str]:
    reply = dns.query.udp(dns.message.make_query(name, "A"), server, timeout=10)
    return [r.address for rrset in reply.answer for r in rrset]


def nbns_query(name: str, address: str) -> NameQueryResponse:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(10)
        sock.sendto(encode_packet(NameQueryRequest(0x2345, NetbiosName(name))), (address, 137))
        reply = decode_packet(sock.recv(1500))
    assert isinstance(reply, NameQueryResponse) and reply.rcode == 0
    return reply


def test_runs_as_nobody_and_still_binds_new_addresses_on_reload(public_dir, start_daemon):
    path = write_public(public_dir, BASE_CONFIG)
    daemon = start_daemon(path, "uvloop", *AS_NOBODY)
    assert_dropped(daemon.proc.pid)
    assert lookup("sql01-cz1.corp.example") == ["127.0.0.11"]
    assert nbns_query("SQL01-CZ2", "127.0.0.12").trn_id == 0x2345
    # a new node and a new DNS address: ports 53, 137, 139 and 445 below 1024, as nobody
    path.write_text(BASE_CONFIG.replace('"127.0.0.10"', '"127.0.0.10", "127.0.0.20"') + THIRD_NODE)
    daemon.signal(signal.SIGHUP)
    daemon.wait_for_log("reloaded")
    assert lookup("sql01-cz3.corp.example", "127.0.0.20") == ["127.0.0.13"]
    assert nbns_query("SQL01-CZ3", "127.0.0.13").trn_id == 0x2345
    for port in (139, 445):
        socket.create_connection(("127.0.0.13", port), timeout=10).close()
    assert_dropped(daemon.proc.pid)
    assert daemon.stop() == 0
    assert "Traceback" not in daemon.log()


def test_workers_drop_too(public_dir, start_daemon):
    path = write_public(public_dir, BASE_CONFIG + "\n[daemon]\nworkers = 2\n")
    daemon = start_daemon(path, "uvloop", *AS_NOBODY)
    daemon.wait_for_log("ready", count=2)  # the worker's own, after its own drop
    (worker,) = workers_of(daemon.proc.pid)
    assert_dropped(daemon.proc.pid)
    assert_dropped(worker)
    assert daemon.stop() == 0


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (("--user", "no-such-user-here"), "--user: no such user 'no-such-user-here'"),
        (("--user", "nobody", "--group", "no-such-group"), "--group: no such group"),
        (("--group", "nogroup"), "--group needs --user"),
    ],
)
def test_unknown_user_or_group_is_a_usage_error(options, message, write_config):
    result = subprocess.run(
        [sys.executable, "-m", "responder", "run", "--config", str(write_config()), *options],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=PATIENCE,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("cozen-responder: " + message)
    assert len(result.stderr.splitlines()) == 1
