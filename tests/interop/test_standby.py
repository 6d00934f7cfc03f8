"""A VRRP standby: the management address arrives after start, goes, and comes back.

The daemon runs in a server namespace whose veth end starts without the
management address (198.18.0.11); a peer namespace (198.18.0.22/24) holds the
clients. The test plays keepalived with ``ip addr add`` / ``ip addr del`` and
checks, from the peer, that the daemon answers DNS, NBNS and SMB once the
address is there, claims its names by broadcast when it arrives, releases
them by broadcast when it goes (though the address is gone by then), and
that /status reports ``address_present`` all along. Client sockets are
opened inside the peer namespace (setns(2) around socket(2)), so everything
they send crosses the veth pair.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import socket
import subprocess
import time
from collections.abc import Callable, Iterator

import dns.message
import pytest

from protocols.netbios.names import NetbiosName
from protocols.netbios.nbns import (
    NameQueryRequest,
    NameQueryResponse,
    NameRegistrationRequest,
    NameReleaseRequest,
    decode_packet,
)
from protocols.netbios.nbns_encode import encode_packet
from tests.helpers import PATIENCE, golden
from tests.interop.nbns_tools import NetnsDaemon

pytestmark = pytest.mark.interop

SERVER_IP = "198.18.0.11"
PEER_IP = "198.18.0.22"
BROADCAST = "198.18.0.255"
NAMES = {"SQL01-CZ1<00>", "SQL01-CZ1<20>", "CORP<00>", "CORP<1e>"}
CLONE_NEWNET = 0x40000000
CONFIG = f"""\
[cluster]
name = "SQL01"
dns_domain = "corp.example"
workgroup = "CORP"

[[node]]
cozen_name = "SQL01-CZ1"
management_ip = "{SERVER_IP}"

[health]
listen = "127.0.0.1:9137"
"""


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


class Segment:
    """Server and peer namespaces joined by a veth pair; the server end has no address yet."""

    def __init__(self) -> None:
        tag = f"czt-sb-{os.getpid()}-{time.monotonic_ns() % 100000}"
        self.server, self.peer = f"{tag}-s", f"{tag}-p"
        self.dev = f"sb{os.getpid() % 100000}"

    def create(self) -> None:
        for ns in (self.server, self.peer):
            _ip("netns", "add", ns)
            _ip("-n", ns, "link", "set", "lo", "up")
        _ip("link", "add", self.dev, "type", "veth", "peer", "name", f"{self.dev}p")
        _ip("link", "set", self.dev, "netns", self.server)
        _ip("link", "set", f"{self.dev}p", "netns", self.peer)
        _ip("-n", self.peer, "addr", "add", f"{PEER_IP}/24", "brd", "+", "dev", f"{self.dev}p")
        for ns, dev in ((self.server, self.dev), (self.peer, f"{self.dev}p")):
            _ip("-n", ns, "link", "set", dev, "up")

    def delete(self) -> None:
        for ns in (self.server, self.peer):
            subprocess.run(["ip", "netns", "delete", ns], capture_output=True, check=False)

    def add_address(self) -> None:
        _ip("-n", self.server, "addr", "add", f"{SERVER_IP}/24", "brd", "+", "dev", self.dev)

    def del_address(self) -> None:
        _ip("-n", self.server, "addr", "del", f"{SERVER_IP}/24", "dev", self.dev)

    def socket(self, ns: str, kind: int = socket.SOCK_DGRAM) -> socket.socket:
        """A socket of namespace ``ns`` (it stays there; this thread comes back)."""
        libc = ctypes.CDLL(None, use_errno=True)
        with open("/proc/thread-self/ns/net") as home, open(f"/run/netns/{ns}") as there:
            if libc.setns(there.fileno(), CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns")
            try:
                return socket.socket(socket.AF_INET, kind)
            finally:
                if libc.setns(home.fileno(), CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns back")


def until(check: Callable[[], bool], what: str) -> None:
    """Poll ``check`` until it holds; PATIENCE only guards against a hang."""
    deadline = time.monotonic() + PATIENCE
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {PATIENCE} s: {what}")
        time.sleep(0.05)


class Listener:
    """The peer's UDP 137: every NBNS request the server broadcasts on the segment."""

    def __init__(self, segment: Segment) -> None:
        self.sock = segment.socket(segment.peer)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("0.0.0.0", 137))
        self.sock.setblocking(False)
        self.seen: list[object] = []

    def names(self, kind: type) -> set[str]:
        """The names of the ``kind`` requests from the server seen so far."""
        while True:
            try:
                data, (source, _) = self.sock.recvfrom(2048)
            except BlockingIOError:
                break
            if source == SERVER_IP:
                self.seen.append(decode_packet(data))
        return {str(m.name) for m in self.seen if isinstance(m, kind)}  # type: ignore[attr-defined]

    def wait_for(self, kind: type) -> None:
        until(lambda: self.names(kind) >= NAMES, f"{kind.__name__} of {NAMES} broadcast")
        self.seen.clear()


def exchange(sock: socket.socket, data: bytes, to: tuple[str, int]) -> bytes | None:
    sock.settimeout(0.5)
    try:
        sock.sendto(data, to)
        return sock.recv(4096)
    except (TimeoutError, OSError):
        return None


def answers_dns(segment: Segment) -> bool:
    with segment.socket(segment.peer) as sock:
        reply = exchange(
            sock, dns.message.make_query("sql01-cz1.corp.example", "A").to_wire(), (SERVER_IP, 53)
        )
    return reply is not None and bool(dns.message.from_wire(reply).answer)


def answers_nbns(segment: Segment) -> bool:
    query = encode_packet(NameQueryRequest(0x2222, NetbiosName("SQL01-CZ1")))
    with segment.socket(segment.peer) as sock:
        reply = exchange(sock, query, (SERVER_IP, 137))
    return reply is not None and isinstance(decode_packet(reply), NameQueryResponse)


def answers_smb(segment: Segment) -> bool:
    with segment.socket(segment.peer, socket.SOCK_STREAM) as sock:
        sock.settimeout(2)
        try:
            sock.connect((SERVER_IP, 445))
            sock.sendall(golden("smb_impacket_smb2_negotiate_req"))
            reply = sock.recv(8)
        except OSError:
            return False
    return reply[4:8] == b"\xfeSMB"


def answers_all(segment: Segment) -> bool:
    return answers_dns(segment) and answers_nbns(segment) and answers_smb(segment)


def presence(segment: Segment) -> set[bool]:
    """Every ``address_present`` of the DNS, NBNS and SMB listeners of 198.18.0.11."""
    with segment.socket(segment.server, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(("127.0.0.1", 9137))
        sock.sendall(b"GET /status HTTP/1.0\r\n\r\n")
        body = b""
        while chunk := sock.recv(65536):
            body += chunk
    report = json.loads(body.split(b"\r\n\r\n", 1)[1])
    listeners = [
        *report["dns"]["udp"],
        *report["dns"]["tcp"],
        *report["smb"]["listeners"],
        *(x for x in report["nbns"]["listeners"] if x["kind"] == "unicast"),
    ]
    assert len(listeners) == 5 and all(SERVER_IP in x["address"] for x in listeners), report
    return {x["address_present"] for x in listeners} | {
        n["address_present"] for n in report["nbns"]["nodes"]
    }


@pytest.fixture
def segment() -> Iterator[Segment]:
    seg = Segment()
    try:
        seg.create()
        yield seg
    finally:
        seg.delete()


@pytest.fixture
def start(segment, write_config) -> Iterator[Callable[[bool], NetnsDaemon]]:
    started: list[NetnsDaemon] = []

    def run(freebind: bool) -> NetnsDaemon:
        daemon = NetnsDaemon(
            segment.server,
            write_config(CONFIG + f"\n[daemon]\nfreebind = {str(freebind).lower()}\n"),
        )
        started.append(daemon)
        return daemon

    yield run
    for daemon in started:
        with contextlib.suppress(Exception):
            daemon.end()


def test_standby_starts_before_its_address_and_claims_when_it_arrives(segment, start):
    listener = Listener(segment)
    try:
        daemon = start(True)
        daemon.wait_for_log("ready")
        until(lambda: presence(segment) == {False}, "status: address not present")
        segment.add_address()
        listener.wait_for(NameRegistrationRequest)
        until(lambda: answers_all(segment), "DNS, NBNS and SMB answered")
        assert presence(segment) == {True}
        assert daemon.end() == 0
        assert listener.names(NameReleaseRequest) >= NAMES  # released at stop, as ever
    finally:
        listener.sock.close()


def test_without_freebind_a_missing_address_is_a_start_up_error(segment, start):
    daemon = start(False)
    assert daemon.proc.wait(PATIENCE) == 3
    lines = daemon.log().splitlines()
    assert [x for x in lines if "cannot bind" in x] == lines[-1:], lines
    assert f"{SERVER_IP}:53" in lines[-1] and "Traceback" not in daemon.log()


@pytest.mark.parametrize("freebind", [False, True], ids=["bound", "freebind"])
def test_address_moved_away_and_back_releases_then_claims_and_answers(segment, start, freebind):
    segment.add_address()
    listener = Listener(segment)
    try:
        daemon = start(freebind)
        daemon.wait_for_log("ready")
        listener.wait_for(NameRegistrationRequest)
        until(lambda: answers_all(segment), "DNS, NBNS and SMB answered")
        segment.del_address()  # the VRRP peer takes over
        listener.wait_for(NameReleaseRequest)
        until(lambda: presence(segment) == {False}, "status: address not present")
        segment.add_address()  # and hands it back
        listener.wait_for(NameRegistrationRequest)
        until(lambda: answers_all(segment), "DNS, NBNS and SMB answered again")
        assert presence(segment) == {True}
        assert daemon.end() == 0
        assert "Traceback" not in daemon.log()
    finally:
        listener.sock.close()
