"""The compiled UDP drain loop (responder.net._udploop) against the Python loop it replaces.

The compiled loop sends two kinds of reply: what the handler returns, and,
for an exact repeat, ID + the bytes a fast path stored for that datagram.
These tests show both kinds equal what the Python loop and the general
paths give, on real loopback sockets and on both event loops.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import subprocess
import sys
import tomllib
from collections.abc import Callable

import dns.edns
import dns.message
import dns.rdatatype
import pytest

from protocols.netbios.names import NetbiosName
from protocols.netbios.nbns import NameQueryRequest, NmFlags, NodeStatusRequest
from protocols.netbios.nbns_encode import encode_packet
from protocols.netbios.node import NbnsIdentity, NbnsNode
from responder.config import parse_config
from responder.net import udp
from responder.net.udp import Address, UdpListener, bind_udp
from responder.services.dns import DnsAnswers
from tests.helpers import BASE_CONFIG, REPO, run_on

HOST = "127.0.0.78"
Handler = Callable[[bytes, Address], bytes | None]


def test_compiled_loop_is_built_and_chosen_by_default():
    # The install builds it wherever a C compiler exists, as it does here; the
    # benchmarks' figures are for this loop.
    assert udp.COMPILED_AVAILABLE
    assert udp.COMPILED_DEFAULT


def test_environment_switch_selects_the_python_loop():
    code = "import responder.net.udp as u; print(u.COMPILED_AVAILABLE, u.COMPILED_DEFAULT)"
    for value, expected in (("1", "True False"), ("0", "True True"), ("", "True True")):
        env = {**os.environ, "COZEN_PURE_PYTHON": value}
        out = subprocess.run(
            [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True
        )
        assert out.returncode == 0, out.stderr
        assert out.stdout.split() == expected.split()


class Counting:
    """Wraps a handler and counts the datagrams it was asked about."""

    def __init__(self, inner: Handler) -> None:
        self.inner = inner
        self.calls: list[tuple[bytes, Address]] = []

    def __call__(self, data: bytes, source: Address) -> bytes | None:
        self.calls.append((data, source))
        return self.inner(data, source)


async def exchange(sock: socket.socket, payload: bytes) -> bytes:
    sock.send(payload)  # a loopback datagram never waits (and uvloop's sendall skips b"")
    return await asyncio.wait_for(asyncio.get_running_loop().sock_recv(sock, 65535), 5.0)


def client_for(listener: UdpListener, family: int = socket.AF_INET) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.setblocking(False)
    sock.connect(listener.local_address)
    return sock


@pytest.mark.parametrize("compiled", [False, True], ids=["python", "compiled"])
def test_both_loops_answer_alike_and_survive_handler_bugs(loop_kind, compiled, caplog):
    def reverse(data: bytes, source: Address) -> bytes | None:
        if data == b"bug":
            raise RuntimeError("handler bug")
        return None if data == b"quiet" else data[::-1]

    async def scenario() -> None:
        handler = Counting(reverse)
        listener = UdpListener(
            asyncio.get_running_loop(), bind_udp(HOST, 0), handler, compiled=compiled
        )
        client = client_for(listener)
        try:
            client.send(b"bug")
            client.send(b"quiet")
            assert await exchange(client, b"abc") == b"cba"
            assert await exchange(client, b"") == b""  # empty datagrams reach the handler too
            big = bytes(range(256)) * 200
            assert await exchange(client, big) == big[::-1]
            assert [data for data, _ in handler.calls] == [b"bug", b"quiet", b"abc", b"", big]
            assert {source for _, source in handler.calls} == {client.getsockname()}
            counters = listener.counters
            assert (counters.received, counters.answered, counters.handler_bugs) == (5, 3, 1)
        finally:
            client.close()
            await listener.close()

    with caplog.at_level(logging.ERROR, logger="responder.net.udp"):
        run_on(loop_kind, scenario)
    [record] = [r for r in caplog.records if "handler failed on 3 bytes" in r.getMessage()]
    assert record.exc_info is not None and "handler bug" in str(record.exc_info[1])


@pytest.mark.parametrize("compiled", [False, True], ids=["python", "compiled"])
def test_ipv6_source_is_the_socket_module_tuple(loop_kind, compiled):
    async def scenario() -> None:
        handler = Counting(lambda data, source: data)
        listener = UdpListener(
            asyncio.get_running_loop(), bind_udp("::1", 0), handler, compiled=compiled
        )
        client = client_for(listener, socket.AF_INET6)
        try:
            assert await exchange(client, b"six") == b"six"
            assert handler.calls == [(b"six", client.getsockname())]
        finally:
            client.close()
            await listener.close()

    run_on(loop_kind, scenario)


def test_compiled_loop_counts_a_non_bytes_reply_as_a_handler_bug(loop_kind):
    async def scenario() -> None:
        replies: dict[bytes, object] = {b"str": "text", b"ok": b"fine"}
        listener = UdpListener(
            asyncio.get_running_loop(),
            bind_udp(HOST, 0),
            lambda data, source: replies[data],  # type: ignore[return-value]
            compiled=True,
        )
        client = client_for(listener)
        try:
            client.send(b"str")
            assert await exchange(client, b"ok") == b"fine"
            assert listener.counters.handler_bugs == 1
        finally:
            client.close()
            await listener.close()

    run_on(loop_kind, scenario)


def test_compiled_loop_answers_repeats_without_the_handler(loop_kind):
    table: dict[bytes, bytes] = {b"\x00\x00known": b"STORED", b"\x00\x00odd": 42}  # type: ignore[dict-item]

    async def scenario() -> None:
        handler = Counting(lambda data, source: b"handler:" + data)
        listener = UdpListener(
            asyncio.get_running_loop(),
            bind_udp(HOST, 0),
            handler,
            repeats=lambda: table,
            compiled=True,
        )
        client = client_for(listener)
        try:
            assert await exchange(client, b"\x12\x34\x00\x00known") == b"\x12\x34STORED"
            assert await exchange(client, b"\xab\xcd\x00\x00known") == b"\xab\xcdSTORED"
            assert handler.calls == []
            # Not in the table, or stored as something other than bytes: the handler decides.
            assert (
                await exchange(client, b"\x12\x34\x00\x00other") == b"handler:\x12\x34\x00\x00other"
            )
            assert await exchange(client, b"\x12\x34\x00\x00odd") == b"handler:\x12\x34\x00\x00odd"
            assert await exchange(client, b"\x12") == b"handler:\x12"  # shorter than an ID
            assert len(handler.calls) == 3
            assert listener.counters.answered == 5
        finally:
            client.close()
            await listener.close()

    run_on(loop_kind, scenario)


def test_drain_stops_at_its_limit_and_when_empty():
    from responder.net import _udploop

    server = bind_udp(HOST, 0)
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        client.connect(server.getsockname())
        for index in range(8):
            client.send(bytes([index]))
        seen: list[bytes] = []

        def handler(data: bytes, source: Address) -> None:
            seen.append(data)

        assert _udploop.drain(server.fileno(), None, handler, 5) == (5, 0, 0, None)
        assert _udploop.drain(server.fileno(), {}, handler, 5) == (3, 0, 0, None)
        assert _udploop.drain(server.fileno(), None, handler, 5) == (0, 0, 0, None)
        assert seen == [bytes([i]) for i in range(8)]
        with pytest.raises(TypeError, match="repeats"):
            _udploop.drain(server.fileno(), [], handler, 5)
        with pytest.raises(TypeError, match="callable"):
            _udploop.drain(server.fileno(), None, 42, 5)
        # A closed descriptor is an empty socket to the loop, never a crash.
        assert _udploop.drain(-1, None, handler, 5) == (0, 0, 0, None)
    finally:
        client.close()
        server.close()


# ------------------------------------------------------ the services' tables


def dns_queries() -> list[bytes]:
    """Typical and odd queries: every one is sent twice through the compiled loop."""
    out = []
    names = [
        "sql01-cz1.corp.example.",
        "SQL01-Cz2.CORP.example.",
        "nobody.corp.example.",
        "11.0.0.127.in-addr.arpa.",
        "corp.example.",
        "sql01.corp.example.",
        "example.org.",
    ]
    for name in names:
        for rdtype in ("A", "AAAA", "PTR", "SOA", "NS", "TXT"):
            plain = dns.message.make_query(name, rdtype, use_edns=False)
            edns = dns.message.make_query(name, rdtype, use_edns=0, want_dnssec=True)
            cookie = dns.message.make_query(
                name,
                rdtype,
                use_edns=0,
                options=[dns.edns.GenericOption(10, bytes(range(8)))],
            )
            out += [m.to_wire() for m in (plain, edns, cookie)]
    out += [b"\x00\x01\x81\x00" + bytes(8), b"\x00" * 13, b"garbage"]
    return out


def test_dns_repeats_through_the_compiled_loop_equal_the_general_path(loop_kind):
    async def scenario() -> None:
        config = parse_config(tomllib.loads(BASE_CONFIG), "test")
        answers = await DnsAnswers.compile(config, serial=7)
        assert answers.table is not None
        handler = Counting(lambda data, source: answers.answer_udp(data))
        listener = UdpListener(
            asyncio.get_running_loop(),
            bind_udp(HOST, 0),
            handler,
            repeats=lambda: answers.table.repeats if answers.table else None,
            compiled=True,
        )
        client = client_for(listener)
        queries = dns_queries()
        try:
            for query in queries:
                for trn_id in (b"\x00\x01", b"\xbe\xef"):
                    datagram = trn_id + query[2:]
                    expected = answers.authority.respond(datagram, udp=True)
                    if expected is None:
                        client.send(datagram)
                    else:
                        assert await exchange(client, datagram) == expected, datagram
            await exchange(client, queries[0])  # the unanswered ones have been handled
            asked = [data[2:] for data, _ in handler.calls]
            remembered = set(answers.table.repeats)
            assert remembered  # the fast path stored replies, so the second sends were repeats
            for query in queries:
                assert asked.count(query[2:]) == (1 if query[2:] in remembered else 2)
        finally:
            client.close()
            await listener.close()

    run_on(loop_kind, scenario)


def test_nbns_repeats_never_outlive_a_conflict(loop_kind):
    identity = NbnsIdentity(
        cozen_name="SQL01-CZ1",
        workgroup="CORP",
        ipv4="127.0.0.78",
        mac=bytes(6),
        public_name="SQL01",
    )
    name = NetbiosName("SQL01-CZ1")
    query = encode_packet(NameQueryRequest(0x0101, name, NmFlags.RD))
    status = encode_packet(NodeStatusRequest(0x0202, NetbiosName("*")))

    async def scenario() -> None:
        node = NbnsNode(identity)
        handler = Counting(lambda data, source: node.receive_datagram(data, broadcast=False, now=0))
        listener = UdpListener(
            asyncio.get_running_loop(),
            bind_udp(HOST, 0),
            handler,
            repeats=lambda: node.repeats,
            compiled=True,
        )
        client = client_for(listener)
        try:
            for packet in (query, status):
                expected = NbnsNode(identity).fast_answer(packet, broadcast=False)
                assert expected is not None
                assert await exchange(client, packet) == expected
                assert (
                    await exchange(client, b"\x77\x77" + packet[2:]) == b"\x77\x77" + expected[2:]
                )
            assert len(handler.calls) == 2  # the repeats never reached Python
            node.mark_conflict(name.key())
            assert node.repeats == {}
            client.send(query)
            reply = await exchange(client, status)  # the name query now gets no answer
            assert reply == node.receive_datagram(status, broadcast=False, now=0)
            assert len(handler.calls) == 4
        finally:
            client.close()
            await listener.close()

    run_on(loop_kind, scenario)
