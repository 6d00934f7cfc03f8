"""``[limits]`` in the DNS and NBNS services: slip, drop, node status, exempt, log_only, status."""

from __future__ import annotations

import asyncio
import itertools
import socket
import tomllib

import dns.flags
import dns.message
import pytest

from protocols.netbios.names import WILDCARD, NetbiosName
from protocols.netbios.nbns import NameQueryRequest, NodeStatusRequest
from protocols.netbios.nbns_encode import encode_packet
from responder.config import Config, parse_config
from responder.services.dns import DnsService
from responder.services.nbns import NbnsService
from tests.helpers import BASE_CONFIG, run_on

DNS = ("127.0.0.10", 53)
NBNS = ("127.0.0.11", 137)
BARRIERS = itertools.cycle(f"127.0.1.{n}" for n in range(1, 255))  # a fresh bucket each


def make_config(limits: str) -> Config:
    return parse_config(tomllib.loads(BASE_CONFIG + "[limits]\n" + limits), "test")


def client(host: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((host, 0))
    sock.setblocking(False)
    return sock


async def replies_after(sock: socket.socket, barrier: tuple[bytes, tuple[str, int]]) -> list[bytes]:
    """Every reply ``sock`` got, once another source's query sent after them is answered."""
    other = client(next(BARRIERS))
    try:
        other.sendto(*barrier)
        loop = asyncio.get_running_loop()
        await asyncio.wait_for(loop.sock_recv(other, 2048), 5)
    finally:
        other.close()
    found = []
    while True:
        try:
            found.append(sock.recv(2048))
        except BlockingIOError:
            return found


def dns_query(name: str = "sql01-cz1.corp.example") -> bytes:
    return dns.message.make_query(name, "A", use_edns=False).to_wire()


@pytest.mark.parametrize("compiled", ["0", "1"], ids=["python", "compiled"])
def test_dns_slips_every_second_limited_answer_as_tc_with_the_question(
    loop_kind, compiled, monkeypatch
):
    monkeypatch.setattr("responder.net.udp.COMPILED_DEFAULT", compiled == "1")
    config = make_config("responses_per_second = 1\nburst = 2\nslip = 2\n")

    async def scenario() -> None:
        service = DnsService(asyncio.get_running_loop(), interfaces=dict)
        await service.apply(config, 1)
        sock = client("127.0.0.97")
        try:
            queries = [dns_query() for _ in range(6)]  # the same question: repeats after one
            for query in queries:
                sock.sendto(query, DNS)
            got = await replies_after(sock, (dns_query(), DNS))
            assert len(got) == 4  # 2 answers, then of 4 limited: drop, TC, drop, TC
            full = [dns.message.from_wire(r) for r in got[:2]]
            assert all(len(m.answer) == 1 and not m.flags & dns.flags.TC for m in full)
            for reply, query in zip(got[2:], (queries[3], queries[5]), strict=True):
                message = dns.message.from_wire(reply)
                assert message.flags & dns.flags.TC and message.flags & dns.flags.QR
                assert message.id == dns.message.from_wire(query).id
                assert reply[4:12] == b"\x00\x01" + bytes(6)  # header + question, no records
                assert reply[12:] == query[12:]
            status = service.status()["rate_limit"]
            assert isinstance(status, dict)
            assert (status["limited_dropped"], status["limited_slipped"]) == (2, 2)
        finally:
            sock.close()
            await service.stop()

    run_on(loop_kind, scenario)


def test_dns_exempt_sources_are_never_limited_and_log_only_sends(loop_kind):
    config = make_config('responses_per_second = 1\nburst = 1\nexempt = ["127.0.0.96/31"]\n')
    dry_run = make_config("responses_per_second = 1\nburst = 1\nlog_only = true\n")

    async def scenario() -> None:
        service = DnsService(asyncio.get_running_loop(), interfaces=dict)
        await service.apply(config, 1)
        exempt, other = client("127.0.0.97"), client("127.0.0.95")
        try:
            for _ in range(20):
                exempt.sendto(dns_query(), DNS)
                other.sendto(dns_query(), DNS)
            assert len(await replies_after(exempt, (dns_query(), DNS))) == 20
            assert len(await replies_after(other, (dns_query(), DNS))) == 10  # 1 + 19 // 2 TC
            await service.apply(dry_run, 2)  # a new policy: a new table, counters carried
            for _ in range(20):
                other.sendto(dns_query(), DNS)
            got = await replies_after(other, (dns_query(), DNS))
            assert len(got) == 20
            assert not any(dns.message.from_wire(r).flags & dns.flags.TC for r in got)
            status = service.status()["rate_limit"]
            assert isinstance(status, dict)
            assert status["would_limit"] == 19 and status["log_only"]
            assert status["limited_dropped"] == 10 and status["limited_slipped"] == 9
        finally:
            exempt.close()
            other.close()
            await service.stop()

    run_on(loop_kind, scenario)


@pytest.mark.parametrize("compiled", ["0", "1"], ids=["python", "compiled"])
def test_nbns_drops_limited_answers_and_limits_node_status_lower(loop_kind, compiled, monkeypatch):
    monkeypatch.setattr("responder.net.udp.COMPILED_DEFAULT", compiled == "1")
    # A bucket of 4 answers, 2 of node status (each costs 1 s against 0.5 s).
    config = make_config("responses_per_second = 2\nburst = 4\nnbns_status_per_second = 1\n")
    name_query = encode_packet(NameQueryRequest(0x1234, NetbiosName("SQL01-CZ1")))
    status_query = encode_packet(NodeStatusRequest(0x1234, NetbiosName(WILDCARD)))

    async def scenario() -> None:
        service = NbnsService(asyncio.get_running_loop(), interfaces=dict)
        await service.apply(config, 1)
        asker, prober = client("127.0.0.97"), client("127.0.0.95")
        try:
            for _ in range(6):
                asker.sendto(name_query, NBNS)
                prober.sendto(status_query, NBNS)
            assert len(await replies_after(asker, (name_query, NBNS))) == 4  # no slip: dropped
            statuses = await replies_after(prober, (name_query, NBNS))
            assert len(statuses) == 2 and all(len(s) > 3 * len(status_query) for s in statuses)
            status = service.status()["rate_limit"]
            assert isinstance(status, dict)
            assert (status["limited_dropped"], status["limited_slipped"]) == (6, 0)
        finally:
            asker.close()
            prober.close()
            await service.stop()

    run_on(loop_kind, scenario)


def test_counters_by_reason_reach_status(loop_kind):
    config = make_config("responses_per_second = 0\n")

    async def scenario() -> None:
        service = DnsService(asyncio.get_running_loop(), interfaces=dict)
        await service.apply(config, 1)
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.97", 19))  # chargen
        try:
            sock.sendto(dns_query(), DNS)
            other = client("127.0.0.95")
            assert await replies_after(other, (dns_query(), DNS)) == []
            other.close()
            report = service.status()
            assert report["dropped_sources"] == {
                "port_zero": 0,
                "reflection_port": 1,
                "bad_source": 0,
            }
            assert isinstance(report["rate_limit"], dict)
            assert report["rate_limit"]["enabled"] is False
        finally:
            sock.close()
            await service.stop()

    run_on(loop_kind, scenario)
