"""The compiled UDP drain loop (responder.net._udploop) against the Python loop it replaces.

The compiled loop sends two kinds of reply: what the handler returns, and,
for an exact repeat, ID + the bytes a fast path stored for that datagram.
These tests show both kinds equal what the Python loop and the general
paths give, on real loopback sockets and on both event loops; then that a
failure loses no more than its own datagram and no count.
"""

from __future__ import annotations

import asyncio
import collections
import errno
import gc
import logging
import os
import random
import shutil
import socket
import subprocess
import sys
import sysconfig
import tomllib
from array import array
from collections.abc import Callable
from pathlib import Path

import dns.edns
import dns.message
import dns.rdatatype
import pytest

from protocols.errors import MalformedMessage
from protocols.netbios.names import NetbiosName
from protocols.netbios.nbns import NameQueryRequest, NmFlags, NodeStatusRequest
from protocols.netbios.nbns_encode import encode_packet
from protocols.netbios.node import NbnsIdentity, NbnsNode
from responder.config import parse_config
from responder.net import udp
from responder.net.udp import Address, UdpListener, bind_udp
from responder.services.dns import DnsAnswers
from tests.helpers import BASE_CONFIG, REPO, goldens, run_on

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
            assert listener.counters.repeats_answered == 2  # the two table hits alone
        finally:
            client.close()
            await listener.close()

    run_on(loop_kind, scenario)


def drain(fd: int, repeats: dict[bytes, bytes] | None, handler: Handler, limit: int = 256):
    """One call of the compiled loop: (received, answered, dropped, errno, failures, errors).

    The fifth count (answered from ``repeats``) is checked where a test looks for it.
    """
    from responder.net import _udploop

    counts = array("q", udp.NO_COUNTS)
    failures, errors = _udploop.drain(fd, repeats, handler, limit, counts)
    return (*counts[:4], failures, errors)


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

        assert drain(server.fileno(), None, handler, 5) == (5, 0, 0, 0, None, None)
        assert drain(server.fileno(), {}, handler, 5) == (3, 0, 0, 0, None, None)
        assert drain(server.fileno(), None, handler, 5) == (0, 0, 0, 0, None, None)
        assert seen == [bytes([i]) for i in range(8)]
        counts = array("q", udp.NO_COUNTS)
        with pytest.raises(TypeError, match="repeats"):
            _udploop.drain(server.fileno(), [], handler, 5, counts)
        with pytest.raises(TypeError, match="callable"):
            _udploop.drain(server.fileno(), None, 42, 5, counts)
        with pytest.raises(TypeError, match="five int64"):
            _udploop.drain(server.fileno(), None, handler, 5, array("q", [0, 0, 0, 0]))
        with pytest.raises(TypeError):
            _udploop.drain(server.fileno(), None, handler, 5, bytes(32))  # not writable
        assert counts == array("q", udp.NO_COUNTS)
        # A descriptor that is no socket ends the loop with its errno, never a crash.
        assert drain(-1, None, handler, 5) == (0, 0, 0, errno.EBADF, None, None)
        read_end, write_end = os.pipe()
        try:
            assert drain(read_end, None, handler) == (0, 0, 0, errno.ENOTSOCK, None, None)
        finally:
            os.close(read_end)
            os.close(write_end)
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


# --------------------------------------------------------- hostile datagrams
#
# Thousands of mutated DNS and NBNS datagrams through the compiled loop with
# the services' handlers; the sanitized run below repeats this under ASan and
# UBSan. Every reply must be what the handler gives on its own (a reference
# copy of the same state), every datagram counted, no handler bug.

INTERESTING = (0x00, 0x01, 0x20, 0x3F, 0x40, 0x7F, 0x80, 0xC0, 0xC1, 0xFF)


def mutants(seeds: list[bytes], count: int, rng: random.Random) -> list[bytes]:
    """``count`` deterministic variants: flipped or interesting bytes, cuts, splices, junk."""
    out = []
    for _ in range(count):
        data = bytearray(rng.choice(seeds))
        kind = rng.randrange(5)
        if kind == 0 and data:
            for _ in range(rng.randint(1, 4)):
                data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        elif kind == 1 and data:
            for _ in range(rng.randint(1, 3)):
                data[rng.randrange(len(data))] = rng.choice(INTERESTING)
        elif kind == 2:
            del data[rng.randrange(len(data) + 1) :]
        elif kind == 3:
            other = rng.choice(seeds)
            data[rng.randrange(len(data) + 1) :] = other[rng.randrange(len(other) + 1) :]
        else:
            data = bytearray(rng.randbytes(rng.randrange(600)))
        out.append(bytes(data))
    return out


def extremes() -> list[bytes]:
    """Empty, shorter than an ID, and the largest datagrams IPv4 carries."""
    from tests.protocols.dns.test_worst_inputs import chain_flood, empty_options
    from tests.protocols.netbios.test_worst_inputs import largest_query_response

    largest = 65_507
    return [
        b"",
        b"\x00",
        b"\xff" * largest,
        bytes(largest),
        chain_flood(),
        empty_options(),
        largest_query_response(),
    ]


def nbns_handler(node: NbnsNode) -> Handler:
    """What the NBNS service does with a unicast datagram: answer, or count and drop."""

    def handle(data: bytes, source: Address) -> bytes | None:
        try:
            return node.receive_datagram(data, broadcast=False, now=0)
        except MalformedMessage:
            return None

    return handle


@pytest.mark.timeout(60)
def test_compiled_loop_under_mutated_dns_and_nbns_datagrams(loop_kind):
    rng = random.Random(11)
    dns_datagrams = mutants(dns_queries() + goldens("dns_"), 2000, rng) + extremes()
    nbns_datagrams = mutants(goldens("nbns_"), 1000, rng) + extremes()
    identity = NbnsIdentity(
        cozen_name="SQL01-CZ1", workgroup="CORP", ipv4=HOST, mac=bytes(6), public_name="SQL01"
    )

    async def scenario() -> None:
        config = parse_config(tomllib.loads(BASE_CONFIG), "test")
        answers = await DnsAnswers.compile(config, serial=7)
        reference = await DnsAnswers.compile(config, serial=7)
        state = NbnsNode(identity)
        loop = asyncio.get_running_loop()
        dns_listener = UdpListener(
            loop,
            bind_udp(HOST, 0),
            Counting(lambda data, source: answers.answer_udp(data)),
            repeats=lambda: answers.table.repeats if answers.table else None,
            compiled=True,
        )
        nbns_listener = UdpListener(
            loop,
            bind_udp(HOST, 0),
            nbns_handler(state),
            repeats=lambda: state.repeats,
            compiled=True,
        )
        name_query = encode_packet(NameQueryRequest(0x0101, NetbiosName("SQL01-CZ1"), NmFlags.RD))
        runs = [  # listener, datagrams, the reference handler, a probe that is answered
            (
                dns_listener,
                dns_datagrams,
                lambda data, source: reference.answer_udp(data),
                dns_queries()[0],
            ),
            (nbns_listener, nbns_datagrams, nbns_handler(NbnsNode(identity)), name_query),
        ]
        try:
            for listener, datagrams, expect, probe in runs:
                client = client_for(listener)
                try:
                    for datagram in datagrams:
                        expected = expect(datagram, ("127.0.0.1", 1))
                        if expected is None:
                            client.send(datagram)
                        else:
                            assert await exchange(client, datagram) == expected, datagram.hex()
                    assert await exchange(client, probe)  # every datagram before it was handled
                finally:
                    client.close()
                counters = listener.counters
                assert counters.received == len(datagrams) + 1
                assert counters.handler_bugs == 0
        finally:
            await dns_listener.close()
            await nbns_listener.close()

    run_on(loop_kind, scenario, timeout=50)


# ------------------------------------------------------------------ failures
#
# One datagram that cannot be handled (its source address, a lookup in the
# table that raises, memory) is counted as dropped and loses nothing else:
# neither the wake-up's counts nor the handler failures already collected.
# A receive error ends the loop and is logged as the Python loop logs it.


class PoisonedKey:
    """A table key that collides with b"poison" and whose comparison raises (a bug)."""

    def __hash__(self) -> int:
        return hash(b"poison")

    def __eq__(self, other: object) -> bool:
        raise LookupError("poisoned key")


def failing_handler(data: bytes, source: Address) -> bytes | None:
    if data == b"bug":
        raise RuntimeError("handler bug")
    if data == b"quiet":
        return None
    if data == b"text":
        return "text"  # type: ignore[return-value]
    return data[::-1]


def test_a_lost_datagram_loses_only_itself(loop_kind, caplog):
    table = {b"known": b"STORED", PoisonedKey(): b"never"}

    async def scenario() -> None:
        listener = UdpListener(
            asyncio.get_running_loop(),
            bind_udp(HOST, 0),
            failing_handler,
            repeats=lambda: table,  # type: ignore[arg-type,return-value]
            compiled=True,
        )
        client = client_for(listener)
        try:
            # One wake-up: the handler fails, then the lookup of "poison" raises.
            for datagram in (b"bug", b"\x00\x00poison", b"\x00\x01known"):
                client.send(datagram)
            assert await exchange(client, b"abc") == b"\x00\x01STORED"
            loop = asyncio.get_running_loop()
            assert await asyncio.wait_for(loop.sock_recv(client, 100), 5.0) == b"cba"
            counters = listener.counters
            assert (counters.received, counters.answered, counters.dropped_send) == (4, 2, 1)
            assert counters.handler_bugs == 1
        finally:
            client.close()
            await listener.close()

    with caplog.at_level(logging.DEBUG, logger="responder.net.udp"):
        run_on(loop_kind, scenario)
    [failed] = [r for r in caplog.records if "handler failed on 3 bytes" in r.getMessage()]
    assert failed.levelno == logging.ERROR and "handler bug" in str(failed.exc_info[1])
    [lost] = [r for r in caplog.records if "datagram lost" in r.getMessage()]
    assert lost.levelno == logging.WARNING and "poisoned key" in str(lost.exc_info[1])


def test_a_source_that_is_not_ipv4_or_ipv6_loses_only_that_datagram(tmp_path):
    # The loop is only given UDP sockets; any other family must not reach the
    # handler as a made-up (host, port) (glibc's getnameinfo prints AF_UNIX ones).
    table = {b"known": b"STORED"}
    handler = Counting(failing_handler)
    pair, served = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    named = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    named.bind(str(tmp_path / "client"))
    try:
        served.setblocking(False)
        for datagram in (b"\x00\x01known", b"miss", b"\x00\x02known"):
            pair.send(datagram)
        received, answered, dropped, error, failures, errors = drain(
            served.fileno(), table, handler
        )
        assert (received, answered, dropped, error, failures) == (3, 2, 1, 0, None)
        assert [str(e) for e in errors] == ["source address is not IPv4 or IPv6"]
        assert [pair.recv(100), pair.recv(100)] == [b"\x00\x01STORED", b"\x00\x02STORED"]

        served.close()
        served = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        served.bind(str(tmp_path / "server"))
        served.setblocking(False)
        named.sendto(b"miss", str(tmp_path / "server"))
        assert drain(served.fileno(), None, handler)[:5] == (1, 0, 1, 0, None)
        assert handler.calls == []
    finally:
        for sock in (pair, served, named):
            sock.close()


def test_no_failed_allocation_loses_a_count():
    # Fail each allocation of a drain call in turn (the datagram's key, its
    # copy, its source, the handler's exception, the lists): every datagram is
    # still taken and counted exactly once, answered, dropped or failed.
    from responder.net import _udploop

    testcapi = pytest.importorskip("_testcapi")
    table = {b"known": b"STORED"}
    server = bind_udp(HOST, 0)
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.connect(server.getsockname())
    outcomes = set()
    try:
        for nth in range(1, 100):
            for datagram in (b"\x00\x01known", b"bug", b"abc"):
                client.send(datagram)
            counts = array("q", udp.NO_COUNTS)
            result = None
            testcapi.set_nomemory(nth, nth + 1)
            try:
                result = _udploop.drain(server.fileno(), table, failing_handler, 256, counts)
            except MemoryError:  # only building the result may raise: counts are written
                pass
            finally:
                testcapi.remove_mem_hooks()
            received, answered, dropped, error, repeated = counts
            assert repeated <= answered
            assert (received, error) == (3, 0), (nth, counts)
            if result is not None:
                failures, errors = result
                assert answered + dropped + len(failures or ()) == 3, (nth, counts, result)
                assert len(errors or ()) <= dropped  # an error is kept whenever memory allows
                if dropped:
                    outcomes.add("a datagram lost")
                elif any(isinstance(e, MemoryError) for _, e in failures or ()):
                    outcomes.add("the handler out of memory")
                else:
                    outcomes.add("nothing failed")
        assert outcomes == {"a datagram lost", "the handler out of memory", "nothing failed"}
        assert counts == array("q", (3, 2, 0, 0, 1))  # the last runs fail nothing
    finally:
        client.close()
        server.close()


def test_counts_survive_a_drain_that_raises(loop_kind, monkeypatch):
    class OutOfMemory:
        @staticmethod
        def drain(fd, repeats, handler, limit, counts):
            counts[:] = array("q", (3, 1, 1, 0, 0))
            raise MemoryError

    async def scenario() -> None:
        listener = UdpListener(
            asyncio.get_running_loop(), bind_udp(HOST, 0), failing_handler, compiled=True
        )
        try:
            monkeypatch.setattr(udp, "_udploop", OutOfMemory)
            with pytest.raises(MemoryError):
                listener._drain_compiled()
            counters = listener.counters
            assert (counters.received, counters.answered, counters.dropped_send) == (3, 1, 1)
        finally:
            await listener.close()

    run_on(loop_kind, scenario)


@pytest.mark.parametrize("compiled", [False, True], ids=["python", "compiled"])
def test_both_loops_log_a_receive_error_alike(loop_kind, compiled, caplog):
    async def scenario() -> None:
        sock = bind_udp(HOST, 0)
        closed = bind_udp(HOST, 0)
        sock.connect(closed.getsockname())
        closed.close()
        listener = UdpListener(asyncio.get_running_loop(), sock, failing_handler, compiled=compiled)
        logged = asyncio.Event()
        seen = logging.Handler()
        seen.emit = lambda record: logged.set()  # type: ignore[method-assign]
        logging.getLogger("responder.net.udp").addHandler(seen)
        try:
            sock.send(b"x")  # port unreachable: the next receive reports ECONNREFUSED
            await logged.wait()
            assert listener.counters.received == 0
        finally:
            logging.getLogger("responder.net.udp").removeHandler(seen)
            await listener.close()

    with caplog.at_level(logging.DEBUG, logger="responder.net.udp"):
        run_on(loop_kind, scenario, timeout=5)
    [record] = [r for r in caplog.records if "receive error" in r.getMessage()]
    port = record.args[0][1]  # type: ignore[index]
    assert record.levelno == logging.DEBUG
    assert record.getMessage() == (
        f"udp ('{HOST}', {port}): receive error [Errno 111] Connection refused"
    )


EINTR_INTERPOSER = r"""
/* recvfrom, interrupted by a signal every other call (as if one had arrived). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stddef.h>
#include <sys/socket.h>

int cozen_interruptions = 0;
static int calls = 0;

ssize_t recvfrom(int fd, void *buf, size_t len, int flags, struct sockaddr *addr,
                 socklen_t *addr_len)
{
    static ssize_t (*real)(int, void *, size_t, int, struct sockaddr *, socklen_t *);
    if (calls++ % 2 == 0) {
        cozen_interruptions++;
        errno = EINTR;
        return -1;
    }
    if (real == NULL)
        real = (ssize_t (*)(int, void *, size_t, int, struct sockaddr *, socklen_t *))dlsym(
            RTLD_NEXT, "recvfrom");
    return real(fd, buf, len, flags, addr, addr_len);
}

/* What a build with _FORTIFY_SOURCE calls instead. */
ssize_t __recvfrom_chk(int fd, void *buf, size_t len, size_t buf_len, int flags,
                       struct sockaddr *addr, socklen_t *addr_len)
{
    (void)buf_len;
    return recvfrom(fd, buf, len, flags, addr, addr_len);
}
"""

EINTR_CHILD = f"""
import ctypes, socket
from array import array
from responder.net import _udploop
server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
server.bind(("{HOST}", 0))
server.setblocking(False)
client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
client.connect(server.getsockname())
for datagram in (b"a", b"b", b"c"):
    client.send(datagram)
counts = array("q", [0] * 5)
result = _udploop.drain(server.fileno(), None, lambda data, source: data, 256, counts)
interruptions = ctypes.c_int.in_dll(ctypes.CDLL(None), "cozen_interruptions").value
print((*counts, result, interruptions))
"""


def test_drain_retries_an_interrupted_receive(tmp_path):
    # A signal cannot interrupt a non-blocking recvfrom on demand, so an
    # LD_PRELOAD library makes every other call fail with EINTR, in a child.
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("no gcc to build the recvfrom interposer")
    source = tmp_path / "eintr.c"
    source.write_text(EINTR_INTERPOSER)
    library = tmp_path / "eintr.so"
    subprocess.run(
        [gcc, "-shared", "-fPIC", "-O2", "-Wall", "-o", library, source, "-ldl"], check=True
    )
    preload = " ".join(filter(None, [os.environ.get("LD_PRELOAD"), str(library)]))
    out = subprocess.run(
        [sys.executable, "-c", EINTR_CHILD],
        cwd=REPO,
        env={**os.environ, "LD_PRELOAD": preload},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    # 3 datagrams and the final EAGAIN, each after one interruption
    assert out.stdout.strip() == "(3, 3, 0, 0, 0, (None, None), 4)"


# ---------------------------------------------------------------- references


@pytest.mark.timeout(60)
def test_drain_leaks_nothing():
    # 10^5 drain calls over real datagrams, through every path: a hit, misses
    # answered or not, a handler that raises or returns text, a lookup that
    # raises, a source that is not IPv4, a refused reply, a receive error. A
    # reference leaked on any of them would leave over 10^4 blocks behind.
    from responder.net import _udploop

    if sys.getallocatedblocks() == 0:
        pytest.skip("no pymalloc blocks to count (PYTHONMALLOC=malloc, as in the sanitizer run)")
    table = {b"known": b"STORED", PoisonedKey(): b"never"}
    server = bind_udp(HOST, 0)
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.connect(server.getsockname())
    pair, served = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    served.setblocking(False)
    # No reply is read: the UDP ones overflow the client's buffer and the kernel
    # drops them; the AF_UNIX ones are soon refused, and drain counts them dropped.
    calls = [
        (client, server.fileno(), b"\x00\x01known"),
        (client, server.fileno(), b"abc"),
        (client, server.fileno(), b"quiet"),
        (client, server.fileno(), b"bug"),
        (client, server.fileno(), b"\x00\x00poison"),
        (client, server.fileno(), b"text"),
        (pair, served.fileno(), b"miss"),
        (pair, served.fileno(), b"\x00\x01known"),
        (None, -1, b""),
    ]
    counts = array("q", udp.NO_COUNTS)

    def run(rounds: int) -> collections.Counter[str]:
        seen: collections.Counter[str] = collections.Counter()
        for _ in range(rounds):
            for sender, fd, datagram in calls:
                if sender is not None:
                    sender.send(datagram)
                failures, errors = _udploop.drain(fd, table, failing_handler, 256, counts)
                seen.update(
                    received=counts[0],
                    answered=counts[1],
                    dropped=counts[2],
                    bad_fd=counts[3] == errno.EBADF,
                    failures=len(failures or ()),
                    errors=len(errors or ()),
                )
        return seen

    try:
        run(1000)  # warm up: caches, free lists
        gc.collect()
        before = sys.getallocatedblocks()
        rounds = 100_000 // len(calls) + 1
        seen = run(rounds)
        gc.collect()
        grown = sys.getallocatedblocks() - before
        assert (seen["received"], seen["bad_fd"]) == (8 * rounds, rounds)
        assert (seen["failures"], seen["errors"]) == (2 * rounds, 2 * rounds)
        assert seen["answered"] + seen["dropped"] == 5 * rounds  # "quiet" gets no reply
        assert seen["dropped"] > 2 * rounds  # some AF_UNIX replies were refused
        assert grown < 1000, f"{grown} more blocks after {len(calls) * rounds} drain calls"
    finally:
        for sock in (client, server, pair, served):
            sock.close()


# ---------------------------------------------------------------- sanitizers

SANITIZE = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-O1", "-g"]

SANITIZER_PROBE = r"""
/* One bug for each sanitizer: their silence on drain means something only
 * if they speak up here. */
#include <stdlib.h>

int heap_overflow(void)
{
    char *volatile p = malloc(8);
    int c = p[8];
    free(p);
    return c;
}

int shift_overflow(int by)
{
    return 1 << by;
}
"""


def sanitizer_runtime(gcc: str | None) -> str:
    """libasan's path; skips the test where gcc or the sanitizer runtimes are missing."""
    if gcc is None:
        pytest.skip("no gcc, so no sanitizer runtime")
    paths = []
    for name in ("libasan.so", "libubsan.so"):
        out = subprocess.run([gcc, f"-print-file-name={name}"], capture_output=True, text=True)
        path = out.stdout.strip()
        if not (os.path.isabs(path) and os.path.exists(path)):
            pytest.skip(f"gcc has no {name}: the sanitizer runtime is not installed")
        paths.append(path)
    return paths[0]


@pytest.mark.sanitize
@pytest.mark.timeout(120)
def test_compiled_loop_under_address_and_undefined_behaviour_sanitizers(tmp_path):
    # This file's tests, on a copy of the tree whose _udploop is built with
    # ASan and UBSan. The interpreter is not, so libasan is preloaded; Python
    # allocates with malloc, so ASan watches every object too; CPython's own
    # allocations at exit are not leaks of ours (detect_leaks=0). ASan reports
    # go to files under logs/, from whichever process made them. UBSan's go to
    # stderr once libasan is loaded (it ignores log_path then), so pytest runs
    # with -s. A report ends its process (halt_on_error), so a child's fails its test.
    gcc = shutil.which("gcc")
    libasan = sanitizer_runtime(gcc)
    assert gcc is not None
    logs = tmp_path / "logs"
    logs.mkdir()
    env = {
        **os.environ,
        "LD_PRELOAD": " ".join(filter(None, [libasan, os.environ.get("LD_PRELOAD")])),
        "PYTHONMALLOC": "malloc",
        "ASAN_OPTIONS": f"detect_leaks=0:halt_on_error=1:log_path={logs}/asan",
        "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1",
    }

    def build(output: Path, source: Path, *flags: str) -> subprocess.CompletedProcess[str]:
        command = [gcc, "-shared", "-fPIC", *SANITIZE, *flags, "-o", output, source]
        return subprocess.run(command, capture_output=True, text=True)

    def reports() -> str:
        return "".join(path.read_text(errors="replace") for path in sorted(logs.iterdir()))

    probe = tmp_path / "probe.c"
    probe.write_text(SANITIZER_PROBE)
    built = build(tmp_path / "probe.so", probe)
    if built.returncode != 0:
        pytest.skip(f"gcc cannot link the sanitizer runtimes: {built.stderr.strip()[-500:]}")
    for call, report in (
        ("heap_overflow()", "heap-buffer-overflow"),
        ("shift_overflow(40)", "shift exponent 40"),
    ):
        control = subprocess.run(
            [sys.executable, "-c", f"import ctypes; ctypes.CDLL('{tmp_path}/probe.so').{call}"],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        found = reports() + control.stderr
        assert control.returncode != 0 and report in found, (call, found)
        for path in logs.iterdir():
            path.unlink()

    tree = tmp_path / "tree"
    for name in ("responder", "protocols", "tests"):
        ignore = shutil.ignore_patterns("__pycache__", "*.so")
        shutil.copytree(REPO / name, tree / name, ignore=ignore)
    shutil.copy(REPO / "pyproject.toml", tree)
    module = tree / "responder" / "net" / f"_udploop{sysconfig.get_config_var('EXT_SUFFIX')}"
    include = sysconfig.get_paths()["include"]
    built = build(
        module, REPO / "responder" / "net" / "_udploop.c", "-Wall", "-Wextra", f"-I{include}"
    )
    assert built.returncode == 0, built.stderr
    loaded = subprocess.run(
        [sys.executable, "-c", "from responder.net import udp; print(udp._udploop.__file__)"],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert loaded.stdout.strip() == str(module), loaded.stderr

    pytest_args = ["-bb", "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider"]
    run = subprocess.run(
        [
            sys.executable,
            *pytest_args,
            "-m",
            "not sanitize",
            "tests/responder/net/test_udploop.py",
            "tests/responder/net/test_guard.py",  # the guard's C mirror
        ],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=100,
    )
    output = run.stdout + run.stderr
    assert reports() == ""
    assert run.returncode == 0, output[-6000:]
    assert "Sanitizer" not in output and "runtime error:" not in output, output[-6000:]
    assert " passed" in run.stdout
