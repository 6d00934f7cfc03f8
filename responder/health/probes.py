"""Self-probes: the daemon asks itself, over the network, what a client would ask.

Every ``[health] probe_interval`` seconds worker 0 runs one round: per node and
per protocol it serves,

- ``dns``: an A query for the node's FQDN and a PTR query for its reverse
  name, to every ``dns.listen`` address (RFC 1035 §4.1, over UDP);
- ``nbns``: a name query for ``NAME<00>`` and a node status request, to the
  node's management address (RFC 1002 §4.2.12, §4.2.17);
- ``smb``: an SMB2 NEGOTIATE on TCP ``smb.port`` of the node (MS-SMB2 §2.2.3);

and checks that the answer carries the node's own identity (address, name,
MAC, ServerGuid, from :mod:`responder.identity`). Requests are built and
replies decoded by the project's own codecs in ``protocols/``; sockets are
asyncio's. Every probe is bounded by :data:`PROBE_TIMEOUT` and a round by the
slowest one; at most :data:`CONCURRENCY` run at once. The probes are ordinary
clients of the loop, so they never hold up answering.

A round replaces :attr:`SelfProbes.results` whole; each result has the
outcome, the reason of a failure and the latency. Latencies of answered probes
go to a per-protocol histogram (the ``cozen_self_probe_seconds`` metric).
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial

from protocols.dns.message import (
    ARdata,
    Header,
    Message,
    NameRdata,
    Question,
    RRType,
    decode_message,
    encode_message,
    name_from_text,
    name_to_text,
)
from protocols.errors import ProtocolError
from protocols.netbios.names import WILDCARD, NetbiosName
from protocols.netbios.nbns import (
    NameQueryRequest,
    NameQueryResponse,
    NodeStatusRequest,
    NodeStatusResponse,
    decode_packet,
)
from protocols.netbios.nbns_encode import encode_packet
from protocols.netbios.nbss import FrameType, encode_frame
from protocols.smb import negotiate as neg
from protocols.smb.smb2 import Command
from protocols.smb.smb2 import Header as SmbHeader
from responder.config import Config
from responder.health.periodic import Periodic
from responder.identity import NodeIdentity, node_identities

log = logging.getLogger(__name__)

PROBE_TIMEOUT = 2.0  # seconds per probe
CONCURRENCY = 32  # probes in flight at once
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
PROTOCOLS = ("dns", "nbns", "smb")


class ProbeFailed(Exception):
    """A probe got no answer or the wrong one; the message is the reason."""


@dataclass(frozen=True, slots=True)
class ProbeResult:
    node: str  # Cozen name
    protocol: str  # dns, nbns, smb
    check: str  # e.g. "A sql01-cz1.corp.example @127.0.0.10"
    ok: bool
    reason: str  # "" when ok
    seconds: float | None  # None: no answer (timeout, refused)
    at: float  # time.time() of the round

    def describe(self) -> str:
        """``self-probe dns A sql01-cz2.corp.example @127.0.0.10: timeout``."""
        return f"self-probe {self.protocol} {self.check}: {self.reason}"


@dataclass(slots=True)
class Histogram:
    """Cumulative-ready bucket counts of probe latencies (one per protocol)."""

    counts: list[int] = field(default_factory=lambda: [0] * (len(BUCKETS) + 1))
    total: float = 0.0

    def observe(self, seconds: float) -> None:
        index = next((i for i, bound in enumerate(BUCKETS) if seconds <= bound), len(BUCKETS))
        self.counts[index] += 1
        self.total += seconds

    def cumulative(self) -> list[tuple[str, int]]:
        """``(le, count)`` pairs, the last one ``+Inf``: the exposition's buckets."""
        running, pairs = 0, []
        for bound, count in zip((*map(str, BUCKETS), "+Inf"), self.counts, strict=True):
            running += count
            pairs.append((bound, running))
        return pairs


Probe = tuple[str, str, str, Callable[[], Awaitable[None]]]  # node, protocol, check, run


class SelfProbes:
    """Runs the probe rounds of one config and keeps the latest results."""

    def __init__(self, config: Callable[[], Config]) -> None:
        self._config = config
        self.results: list[ProbeResult] = []
        self.rounds = 0
        self.histograms = {protocol: Histogram() for protocol in PROTOCOLS}
        self.outcomes: Counter[tuple[str, str]] = Counter()  # (protocol, ok|failed)
        self._periodic = Periodic(self.run_once, "self-probe round")

    def schedule(self, interval: int) -> None:
        """Run a round now and then every ``interval`` seconds (0: stop probing).

        Raises:
            RuntimeError: no running event loop.
        """
        self._periodic.schedule(interval)

    async def stop(self) -> None:
        await self._periodic.stop()

    async def run_once(self) -> list[ProbeResult]:
        """Probe every node and protocol once; the results replace the previous round's.

        Raises:
            Nothing for network failures: each becomes a failed :class:`ProbeResult`.
        """
        config = self._config()
        limit = asyncio.Semaphore(CONCURRENCY)
        at = time.time()
        probes = [p for node in node_identities(config) for p in _probes_of(config, node)]
        results = await asyncio.gather(*(self._run(probe, limit, at) for probe in probes))
        self.results = list(results)
        self.rounds += 1
        return self.results

    async def _run(self, probe: Probe, limit: asyncio.Semaphore, at: float) -> ProbeResult:
        node, protocol, check, run = probe
        async with limit:
            start = time.perf_counter()  # loop.time() is in whole ms on uvloop
            ok, reason, answered = True, "", True
            try:
                await asyncio.wait_for(run(), PROBE_TIMEOUT)
            except TimeoutError:
                ok, reason, answered = False, "timeout", False
            except ProbeFailed as exc:
                ok, reason = False, str(exc)
            except (OSError, ProtocolError, asyncio.IncompleteReadError) as exc:
                ok, reason, answered = False, _os_reason(exc), False
            seconds = time.perf_counter() - start
        if answered:
            self.histograms[protocol].observe(seconds)
        self.outcomes[protocol, "ok" if ok else "failed"] += 1
        return ProbeResult(node, protocol, check, ok, reason, seconds if answered else None, at)


def _os_reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.errno is not None:
        return os.strerror(exc.errno).lower()
    if isinstance(exc, asyncio.IncompleteReadError):
        return "connection closed before the reply"
    return str(exc) or type(exc).__name__


def _probes_of(config: Config, node: NodeIdentity) -> list[Probe]:
    name = node.cozen_name
    probes: list[Probe] = []
    for server in config.dns.listen:
        where = (str(server), config.dns.port)
        at = f" @{server}" if len(config.dns.listen) > 1 else ""
        probes.append((name, "dns", f"A {node.fqdn}{at}", partial(_dns_a, where, node)))
        reverse = node.reverse_names[0]
        probes.append((name, "dns", f"PTR {reverse}{at}", partial(_dns_ptr, where, node)))
    nbns = (node.address, config.netbios.port)
    probes.append((name, "nbns", f"query {name}<00>", partial(_nbns_query, nbns, node)))
    probes.append((name, "nbns", "node status", partial(_nbns_status, nbns, node)))
    if config.smb.enabled:
        smb = (node.address, config.smb.port)
        probes.append((name, "smb", f"negotiate :{config.smb.port}", partial(_smb, smb, node)))
    return probes


# ------------------------------------------------------------ UDP exchanges


class _Exchange(asyncio.DatagramProtocol):
    """One request datagram; the first reply that ``accept`` takes completes ``reply``."""

    def __init__(self, accept: Callable[[bytes], bool]) -> None:
        self.accept = accept
        self.reply: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        if not self.reply.done() and self.accept(data):
            self.reply.set_result(data)

    def error_received(self, exc: Exception) -> None:
        if not self.reply.done():
            self.reply.set_exception(exc)


async def _udp(where: tuple[str, int], request: bytes) -> bytes:
    """Send ``request`` to ``where``; the first reply echoing its 2-byte ID."""
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: _Exchange(lambda data: data[:2] == request[:2]), remote_addr=where
    )
    try:
        transport.sendto(request)
        return await protocol.reply
    finally:
        transport.close()


async def _dns(where: tuple[str, int], qname: str, qtype: int) -> Message:
    query = Message(Header(secrets.randbits(16)), (Question(name_from_text(qname), qtype),))
    reply = decode_message(await _udp(where, encode_message(query)))
    if reply.header.rcode != 0:
        raise ProbeFailed(f"rcode {reply.header.rcode}")
    return reply


async def _dns_a(where: tuple[str, int], node: NodeIdentity) -> None:
    reply = await _dns(where, node.fqdn, RRType.A)
    found = [r.rdata.address for r in reply.answers if isinstance(r.rdata, ARdata)]
    if found != [node.ipv4]:
        raise ProbeFailed(f"answered {', '.join(map(str, found)) or 'no address'}")


async def _dns_ptr(where: tuple[str, int], node: NodeIdentity) -> None:
    reply = await _dns(where, node.reverse_names[0], RRType.PTR)
    found = [name_to_text(r.rdata.target) for r in reply.answers if isinstance(r.rdata, NameRdata)]
    if [f.rstrip(".").lower() for f in found] != [node.fqdn]:
        raise ProbeFailed(f"answered {', '.join(found) or 'no name'}")


async def _nbns_query(where: tuple[str, int], node: NodeIdentity) -> None:
    request = NameQueryRequest(secrets.randbits(16), NetbiosName(node.cozen_name))
    reply = decode_packet(await _udp(where, encode_packet(request)))
    if not isinstance(reply, NameQueryResponse) or reply.rcode != 0:
        raise ProbeFailed("negative answer")
    found = [e.address for e in reply.entries]
    if found != [node.address]:
        raise ProbeFailed(f"answered {', '.join(found) or 'no address'}")


async def _nbns_status(where: tuple[str, int], node: NodeIdentity) -> None:
    request = NodeStatusRequest(secrets.randbits(16), NetbiosName(WILDCARD))
    reply = decode_packet(await _udp(where, encode_packet(request)))
    if not isinstance(reply, NodeStatusResponse):
        raise ProbeFailed("no node status")
    if not any(n.name == node.cozen_name and n.suffix == 0 for n in reply.names):
        raise ProbeFailed(f"{node.cozen_name}<00> missing from the name table")
    if reply.unit_id != node.mac:
        raise ProbeFailed(f"MAC {reply.unit_id.hex(':')}, expected {node.mac.hex(':')}")


# ------------------------------------------------------------ SMB


def _negotiate_request() -> bytes:
    request = neg.NegotiateRequest(
        header=SmbHeader(Command.NEGOTIATE, credits=1),
        dialects=(neg.Dialect.SMB202, neg.Dialect.SMB210, neg.Dialect.SMB300),
        security_mode=1,
        capabilities=0,
        client_guid=secrets.token_bytes(16),
    )
    return encode_frame(
        FrameType.SESSION_MESSAGE, neg.encode_negotiate_request(request), direct=True
    )


async def _smb(where: tuple[str, int], node: NodeIdentity) -> None:
    reader, writer = await asyncio.open_connection(*where)
    try:
        writer.write(_negotiate_request())
        head = await reader.readexactly(4)
        body = await reader.readexactly(int.from_bytes(head[1:], "big"))
    finally:
        writer.close()
    reply = neg.decode_negotiate_response(body)
    if reply.server_guid != node.server_guid.bytes_le:
        found = uuid.UUID(bytes_le=reply.server_guid)
        raise ProbeFailed(f"ServerGuid {found}, expected {node.server_guid}")
