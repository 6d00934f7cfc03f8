"""The guard in both drain loops: spoofed reflection sources get nothing, limits apply to repeats.

Datagrams with spoofed sources are written with a raw socket (IP_HDRINCL) on
loopback inside the suite's network namespace; what the listener sends is
read from a packet socket on lo, so "no answer leaves" is checked on the wire.
(The kernel fills in a zero source address of an IP_HDRINCL packet, so
0.0.0.0 is covered by the guard's own tests, not here.)
"""

from __future__ import annotations

import asyncio
import socket
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.ratelimit import NS, REFLECTION_PORTS, Guard, build_policy, rules_blob
from responder.net import _udploop
from responder.net.guard import ListenerGuard
from responder.net.udp import Address, UdpListener, bind_udp
from tests.helpers import run_on

HOST = "127.0.0.79"
SPOOFED = "127.0.0.80"
BROADCAST = "127.0.0.255"  # configured as a local subnet's broadcast address
REPEAT = b"\x00\x00repeat"
BAD_SOURCES = [
    ((SPOOFED, 7), "reflection_port"),
    ((SPOOFED, 19), "reflection_port"),
    ((SPOOFED, 11211), "reflection_port"),
    ((SPOOFED, 0), "port_zero"),
    ((BROADCAST, 5353), "bad_source"),
    (("255.255.255.255", 5353), "bad_source"),
    (("224.0.0.251", 5353), "bad_source"),
]


def _checksum(data: bytes) -> int:
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    return ~(total + (total >> 16)) & 0xFFFF


def spoof(source: Address, destination: Address, payload: bytes) -> None:
    """Send one UDP datagram claiming to come from ``source``."""
    udp = struct.pack("!HHHH", source[1], destination[1], 8 + len(payload), 0) + payload
    src, dst = socket.inet_aton(source[0]), socket.inet_aton(destination[0])
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0, src, dst)
    header = header[:10] + struct.pack("!H", _checksum(header)) + header[12:]
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW) as raw:
        raw.sendto(header + udp, (destination[0], 0))


class Capture:
    """Every UDP datagram leaving ``local`` on lo, as (destination, payload)."""

    def __init__(self, local: Address) -> None:
        self.local = local
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
        self.sock.bind(("lo", 0))
        self.sock.setblocking(False)
        self.seen: list[tuple[Address, bytes]] = []

    def read(self) -> list[tuple[Address, bytes]]:
        while True:
            try:
                frame, meta = self.sock.recvfrom(65535)
            except BlockingIOError:
                return self.seen
            if meta[2] != socket.PACKET_OUTGOING or frame[12:14] != b"\x08\x00":
                continue
            ip = frame[14:]
            header = (ip[0] & 0x0F) * 4
            if ip[9] != 17 or socket.inet_ntoa(ip[12:16]) != self.local[0]:
                continue
            sport, dport = struct.unpack("!HH", ip[header : header + 4])
            if sport == self.local[1]:
                self.seen.append(((socket.inet_ntoa(ip[16:20]), dport), ip[header + 8 :]))

    async def wait_for(self, destination: Address) -> list[tuple[Address, bytes]]:
        for _ in range(500):  # generous: a loaded machine
            if any(dest == destination for dest, _ in self.read()):
                return self.seen
            await asyncio.sleep(0.01)
        raise AssertionError(f"no datagram to {destination}: {self.seen}")

    def close(self) -> None:
        self.sock.close()


def make_guard(**overrides: object) -> ListenerGuard:
    options: dict[str, object] = {
        "reflection_ports": REFLECTION_PORTS,
        "service_port": 53,
        "broadcasts": [BROADCAST],
        "rate": 0,
        "burst": 1,
        "slip": 2,
    }
    options.update(overrides)
    return ListenerGuard(build_policy(**options), lambda reply: b"TC:" + reply)  # type: ignore[arg-type]


def serve(guard: ListenerGuard, compiled: bool, calls: list[bytes]) -> UdpListener:
    def handler(data: bytes, source: Address) -> bytes | None:
        calls.append(data)  # the Python loop asks about repeats too, as fast paths do
        return b"\x00\x00STORED" if data == REPEAT else b"answer:" + data

    return UdpListener(
        asyncio.get_running_loop(),
        bind_udp(HOST, 0),
        handler,
        repeats=lambda: {REPEAT[2:]: b"STORED"},
        guard=lambda: guard,
        compiled=compiled,
    )


@pytest.mark.parametrize("compiled", [False, True], ids=["python", "compiled"])
def test_reflection_sources_get_no_answer_and_are_counted_by_reason(loop_kind, compiled):
    guard = make_guard()
    calls: list[bytes] = []

    async def scenario() -> None:
        listener = serve(guard, compiled, calls)
        capture = Capture(listener.local_address)
        try:
            for source, _ in BAD_SOURCES:
                spoof(source, listener.local_address, REPEAT)  # a repeat: C would answer it
                spoof(source, listener.local_address, b"miss")
            # The service's own port is legitimate: DNS from 53 is answered.
            spoof((SPOOFED, 53), listener.local_address, REPEAT)
            spoof((SPOOFED, 53), listener.local_address, b"last")
            seen = await capture.wait_for((SPOOFED, 53))
            for _ in range(20):
                if len(seen) >= 2:
                    break
                await asyncio.sleep(0.01)
                seen = capture.read()
            assert sorted(payload for _, payload in seen) == [b"\x00\x00STORED", b"answer:last"]
            assert {dest for dest, _ in seen} == {(SPOOFED, 53)}
            # Nothing from a bad source reached the handler (nor, compiled, the repeat).
            assert calls == ([b"last"] if compiled else [REPEAT, b"last"])
            assert listener.counters.received == 2 * len(BAD_SOURCES) + 2
        finally:
            capture.close()
            await listener.close()

    run_on(loop_kind, scenario)
    dropped = guard.status()["dropped_sources"]
    expected = {"port_zero": 0, "reflection_port": 0, "bad_source": 0}
    for _, reason in BAD_SOURCES:
        expected[reason] += 2
    assert dropped == expected


@pytest.mark.parametrize("compiled", [False, True], ids=["python", "compiled"])
def test_limited_answers_slip_and_drop_repeats_included(loop_kind, compiled):
    # One answer per second and a bucket of two: the test's burst stays far inside a second.
    guard = make_guard(rate=1, burst=2, slip=2)
    calls: list[bytes] = []

    async def scenario() -> None:
        listener = serve(guard, compiled, calls)
        client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        client.bind((SPOOFED, 0))
        capture = Capture(listener.local_address)
        try:
            for datagram in (b"q0", REPEAT, REPEAT, b"q1", b"q2", REPEAT, REPEAT, b"q3"):
                client.sendto(datagram, listener.local_address)
            # A barrier from a source of its own, exempt from this one's bucket.
            spoof(("127.0.0.81", 4000), listener.local_address, b"barrier")
            await capture.wait_for(("127.0.0.81", 4000))
            mine = [p for dest, p in capture.read() if dest == client.getsockname()]
            # 2 sent in full; of the 6 limited, every second is truncated, repeats too.
            assert mine == [
                b"answer:q0",
                b"\x00\x00STORED",
                b"TC:answer:q1",
                b"TC:\x00\x00STORED",
                b"TC:answer:q3",
            ]
        finally:
            client.close()
            capture.close()
            await listener.close()

    run_on(loop_kind, scenario)
    limits = guard.status()["rate_limit"]
    assert isinstance(limits, dict)
    assert (limits["limited_dropped"], limits["limited_slipped"]) == (3, 3)
    assert limits["sources"] == 2


@pytest.mark.parametrize("compiled", [False, True], ids=["python", "compiled"])
def test_without_a_slip_function_limited_answers_are_dropped(loop_kind, compiled):
    policy = build_policy(
        reflection_ports=(), service_port=137, broadcasts=(), rate=1, burst=1, slip=0
    )
    guard = ListenerGuard(policy, None)
    calls: list[bytes] = []

    async def scenario() -> None:
        listener = serve(guard, compiled, calls)
        client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        client.bind((SPOOFED, 0))
        capture = Capture(listener.local_address)
        try:
            for _ in range(3):
                client.sendto(REPEAT, listener.local_address)
            spoof(("127.0.0.81", 4000), listener.local_address, b"barrier")
            await capture.wait_for(("127.0.0.81", 4000))
            mine = [p for dest, p in capture.read() if dest == client.getsockname()]
            assert mine == [b"\x00\x00STORED"]
        finally:
            client.close()
            capture.close()
            await listener.close()

    run_on(loop_kind, scenario)
    assert guard.counts()[3:5] == (2, 0)


# ------------------------------------------------------------ C mirror == Python reference

ADDRESSES = [b"\xc6\x12\x00\x07", b"\xc6\x12\x00\x08", b"\x7f\x00\x00\x01", bytes(15) + b"\x01"]


def both(**overrides: object) -> tuple[Guard, object]:
    options: dict[str, object] = {
        "reflection_ports": REFLECTION_PORTS,
        "service_port": 137,
        "broadcasts": ["198.18.0.255"],
        "rate": 50,
        "burst": 4,
        "slip": 3,
        "heavy_rate": 5,
        "heavy_suffix": b"\x00\x21\x00\x01",
        "exempt": ["127.0.0.0/8"],
        "table_size": 64,
    }
    options.update(overrides)
    guard = ListenerGuard(build_policy(**options))  # type: ignore[arg-type]
    return guard.python(), guard.compiled()


@given(
    steps=st.lists(
        st.tuples(st.sampled_from(ADDRESSES), st.integers(0, NS // 20), st.booleans()),
        max_size=300,
    ),
    log_only=st.booleans(),
)
@settings(max_examples=150, deadline=None)
def test_the_compiled_guard_limits_exactly_as_the_reference(steps, log_only):
    python, compiled = both(log_only=log_only)
    now = NS
    for address, gap, heavy in steps:
        now += gap
        assert compiled.admit(address, now, heavy) == python.admit(address, now, heavy)
    assert compiled.counts() == tuple(python.counts)
    assert compiled.sources() == python.sources()


@given(
    address=st.one_of(st.binary(min_size=4, max_size=4), st.binary(min_size=16, max_size=16)),
    port=st.integers(0, 65535),
)
@settings(max_examples=500, deadline=None)
def test_the_compiled_filter_drops_exactly_as_the_reference(address, port):
    python, compiled = both()
    assert compiled.check_source(address, port) == python.check_source(address, port)
    assert compiled.counts() == tuple(python.counts)


def test_the_compiled_table_stays_bounded_under_a_spoofed_flood():
    python, compiled = both(table_size=256, exempt=[], slip=0)
    abuser = ADDRESSES[0]
    for guard in (python, compiled):
        for _ in range(5):
            guard.admit(abuser, NS, False)  # over its bucket of 4: limited
        for index in range(100_000):
            guard.admit(index.to_bytes(4), NS + index, False)
        assert guard.sources() == 256
        assert guard.admit(abuser, NS + 100_000, False) == 1  # still limited: not evicted


def test_guard_arguments_are_checked():
    bitmap = bytes(8192)
    good: list[object] = [bitmap, b"", b"", 1, 1, 1, 0, False, 32, 56, b"", 64, 7, None]
    _udploop.Guard(*good)
    bad_cases: list[tuple[int, object]] = [
        (0, bytes(10)),  # port bitmap size
        (1, b"\x04"),  # a truncated rule
        (1, rules_blob([(b"\x01\x02\x03\x04", 40)])),  # prefix longer than the address
        (11, 100),  # table size not a power of two
        (8, 33),  # IPv4 prefix
    ]
    for index, value in bad_cases:
        args = list(good)
        args[index] = value
        with pytest.raises(ValueError):
            _udploop.Guard(*args)
    with pytest.raises(TypeError, match="guard"):
        _udploop.drain(-1, None, lambda d, s: None, 1, __import__("array").array("q", [0] * 5), 5)
