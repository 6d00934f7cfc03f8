"""B-node behaviour on a real broadcast segment between two test namespaces.

The daemon runs in one namespace (management address 198.18.0.11/24), the
clients in another (198.18.0.22/24), joined by a veth pair. tshark captures
in the client namespace, so what it sees really crossed the segment.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import REPO
from tests.interop.nbns_tools import NetnsDaemon, client_smb_conf, run
from tests.interop.tshark import Capture, expert_problems, fields

pytestmark = pytest.mark.interop

SERVER_IP = "198.18.0.11"
CLIENT_IP = "198.18.0.22"
BROADCAST = "198.18.0.255"
CONFIG = f"""\
[cluster]
name = "SQL01"
dns_domain = "corp.example"
workgroup = "CORP"

[[node]]
cozen_name = "SQL01-CZ1"
management_ip = "{SERVER_IP}"
mac = "02:00:5e:10:00:11"

[health]
listen = "127.0.0.1:9137"
"""
STATUS_FETCH = (
    "import urllib.request; "
    "print(urllib.request.urlopen('http://127.0.0.1:9137/status', timeout=5).read().decode())"
)


class Segment:
    """Two named namespaces joined by a veth pair; deleted in the finalizer."""

    def __init__(self) -> None:
        tag = f"czt-nbint-{os.getpid()}-{time.monotonic_ns() % 100000}"
        self.server, self.client = f"{tag}-s", f"{tag}-c"
        self.veth = "nbint-c"  # the client side, where tshark listens

    def create(self) -> None:
        for ns in (self.server, self.client):
            _ip("netns", "add", ns)
            _ip("-n", ns, "link", "set", "lo", "up")
        _ip("link", "add", "nbint-s", "type", "veth", "peer", "name", self.veth)
        _ip("link", "set", "nbint-s", "netns", self.server)
        _ip("link", "set", self.veth, "netns", self.client)
        for ns, dev, addr in (
            (self.server, "nbint-s", SERVER_IP),
            (self.client, self.veth, CLIENT_IP),
        ):
            _ip("-n", ns, "addr", "add", f"{addr}/24", "brd", "+", "dev", dev)
            _ip("-n", ns, "link", "set", dev, "up")

    def delete(self) -> None:
        for ns in (self.server, self.client):
            subprocess.run(["ip", "netns", "delete", ns], capture_output=True, check=False)

    def in_client(self, *argv: str) -> list[str]:
        return ["ip", "netns", "exec", self.client, *argv]


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


@pytest.fixture
def segment() -> Iterator[Segment]:
    seg = Segment()
    try:
        seg.create()
        yield seg
    finally:
        seg.delete()


@pytest.fixture
def netns_daemon(write_config) -> Iterator[object]:
    started: list[NetnsDaemon] = []

    def start(segment: Segment) -> NetnsDaemon:
        daemon = NetnsDaemon(segment.server, write_config(CONFIG))
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        daemon.end()


def nmblookup_bcast(segment: Segment, conf: Path, name: str) -> str:
    done = run(segment.in_client("nmblookup", "-s", str(conf), "-B", BROADCAST, name), 15)
    return done.stdout + done.stderr


def test_claim_answer_defend_and_release_on_the_wire(segment, netns_daemon, tmp_path):
    conf = client_smb_conf(tmp_path, f"{CLIENT_IP}/24")
    with Capture(
        segment.veth, tmp_path / "bcast.pcapng", "udp port 137", netns=segment.client
    ) as cap:
        daemon = netns_daemon(segment)
        daemon.wait_for_log("ready")
        time.sleep(1.0)  # the claim: 3 broadcasts 250 ms apart
        out = nmblookup_bcast(segment, conf, "SQL01-CZ1")
        assert f"{SERVER_IP} SQL01-CZ1<00>" in out, out
        assert "SQL01<00>" not in nmblookup_bcast(segment, conf, "SQL01")
        peer = [sys.executable, "-m", "tests.interop.nbns_peer"]
        done = subprocess.run(
            segment.in_client(*peer, "register", "SQL01-CZ1", BROADCAST, CLIENT_IP),
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=15,
            check=False,
        )
        assert done.stdout.startswith(f"rcode=6 from={SERVER_IP}:137 trn=0x5151"), done
        out = nmblookup_bcast(segment, conf, "SQL01-CZ1")
        assert f"{SERVER_IP} SQL01-CZ1<00>" in out, out
        assert daemon.end() == 0
    registrations = fields(
        cap.path,
        f"ip.src == {SERVER_IP} && nbns.flags.opcode == 5 && nbns.flags.response == 0",
        "ip.dst",
        "nbns.name",
    )
    assert len(registrations) == 12, registrations  # 4 names x 3 tries
    assert {row[0] for row in registrations} == {BROADCAST}
    names = {row[1].split(",")[0] for row in registrations}
    assert {"SQL01-CZ1<00>", "SQL01-CZ1<20>", "CORP<00>", "CORP<1e>"} == names
    releases = fields(
        cap.path,
        f"ip.src == {SERVER_IP} && nbns.flags.opcode == 6 && nbns.flags.response == 0",
        "ip.dst",
        "nbns.name",
    )
    assert {row[1].split(",")[0] for row in releases} == names, releases
    assert {row[0] for row in releases} == {BROADCAST}
    assert expert_problems(cap.path) == []


def test_owner_present_before_start_puts_the_name_in_conflict(segment, netns_daemon, tmp_path):
    conf = client_smb_conf(tmp_path, f"{CLIENT_IP}/24")
    peer = [sys.executable, "-m", "tests.interop.nbns_peer", "defend", "SQL01-CZ1", CLIENT_IP, "8"]
    owner = subprocess.Popen(
        segment.in_client(*peer),
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert owner.stdout is not None
        assert owner.stdout.readline().strip() == "ready"
        daemon = netns_daemon(segment)
        daemon.wait_for_log("in conflict")
        line = next(x for x in daemon.log().splitlines() if "in conflict" in x)
        assert "WARNING" in line and "SQL01-CZ1<00>" in line and CLIENT_IP in line
        status = run(segment.in_client("nmblookup", "-s", str(conf), "-A", SERVER_IP), 15).stdout
        assert any(
            "SQL01-CZ1" in x and "<00>" in x and "<CONFLICT>" in x for x in status.splitlines()
        ), status
        assert f"{SERVER_IP} SQL01-CZ1<00>" not in nmblookup_bcast(segment, conf, "SQL01-CZ1")
        fetch = ["ip", "netns", "exec", segment.server, sys.executable, "-c", STATUS_FETCH]
        report = json.loads(run(fetch, 15).stdout)
        node = report["nbns"]["nodes"][0]
        assert node["conflicts"] == ["SQL01-CZ1<00>"]
        assert node["names"][0]["claim"] == "conflict"
        out = run(
            segment.in_client("nmblookup", "-s", str(conf), "-B", BROADCAST, "SQL01-CZ1#20"), 15
        )
        assert f"{SERVER_IP} SQL01-CZ1<20>" in out.stdout, out
        assert daemon.end() == 0
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(owner.pid, signal.SIGTERM)
        owner.wait(5)
        if owner.stdout is not None:
            owner.stdout.close()
