"""The authoritative DNS service: UDP and TCP on every ``dns.listen`` address.

Per config load we compile one :class:`DnsAnswers` (the general responder
and, unless ``dns.fast_path = false``, the precomputed answer table built
from it). Reload swaps that one object, so every packet sees either the old
answers or the new ones, never a mix.

Per UDP datagram: an exact repeat of a recent query is answered by the
compiled UDP loop from the table's repeats (see responder/net/udp.py); otherwise
the fast path (one dict lookup) or, when it declines, the general path.
TCP always takes the general path through the RFC 7766 framer.

Counting (the /metrics DNS families). The service owns two dicts of answers
per (path, qtype, outcome), :data:`~protocols.dns.outcome.Counts`, one for
UDP and one for TCP, kept across reloads: each :class:`DnsAnswers` is
built with them. The fast path adds one to its stored reply's count cell,
made when the table was built (one list increment; a repeat it answers finds
the cell with one more lookup); the general path classifies the reply it
built (:func:`~protocols.dns.outcome.classify`, a few header bytes and the
question's labels). Measured with benchmarks/answer_cost.py. Repeats
the compiled loop answers never reach Python and are counted by it alone
(``UdpListener.counters.repeats_answered``).

Before any of that, the service's guard (``[limits]``, responder/services/limits.py)
drops datagrams from reflection sources, and rate-limits answers per source
prefix: a limited answer is dropped or, every ``slip``-th, truncated (TC=1).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from protocols.dns.authority import Authority
from protocols.dns.fastpath import AnswerTable, fast_answer, iter_answer_entries
from protocols.dns.outcome import Counts, add, classify
from protocols.dns.stream import DnsStream
from protocols.ratelimit import dns_slip
from protocols.repeats import Repeats
from responder.config import Config
from responder.identity import dns_zone
from responder.net.addresses import present_now
from responder.net.guard import ListenerGuard
from responder.net.interfaces import BroadcastMap, subnet_broadcasts
from responder.net.listeners import (
    BindError,
    ListenerSet,
    open_tcp,
    open_udp,
    update_together,
)
from responder.net.tcp import Address, TcpLimits, TcpListener
from responder.net.udp import UdpListener
from responder.offload import off_loop
from responder.services.limits import limits_policy, updated_guard

log = logging.getLogger(__name__)

Endpoint = tuple[str, int]


@dataclass(frozen=True, slots=True)
class DnsAnswers:
    """Everything one config load answers with; swapped whole on reload."""

    authority: Authority  # the general path, compiled once
    table: AnswerTable | None  # None when the fast path is switched off
    udp_counts: Counts  # answers per (path, qtype, outcome): the service's, across reloads
    tcp_counts: Counts

    @classmethod
    async def compile(
        cls, config: Config, serial: int, counts: tuple[Counts, Counts] | None = None
    ) -> DnsAnswers:
        """Compile in a thread (see :mod:`responder.offload`) while the loop keeps serving.

        A 1,000-node table takes a few hundred ms of CPU; the old answers are
        served meanwhile, and the caller swaps the new ones in at once.
        """
        return await off_loop(partial(cls.build, config, serial, counts))

    @classmethod
    def build(
        cls, config: Config, serial: int, counts: tuple[Counts, Counts] | None = None
    ) -> DnsAnswers:
        """Compile the general responder and the answer table; pure, so any thread may.

        ``counts``: the (UDP, TCP) dicts to count answers in (default: new ones).
        """
        authority = Authority(dns_zone(config, serial))
        udp_counts, tcp_counts = ({}, {}) if counts is None else counts
        if not config.dns.fast_path:
            return cls(authority, None, udp_counts, tcp_counts)
        # No explicit yields: the lowered switch interval hands the GIL over in time, and a
        # sched_yield() here made the loop's thread wait 30-90 ms for it (measured).
        entries = dict(iter_answer_entries(authority, udp_counts))
        return cls(authority, AnswerTable(entries, counts=udp_counts), udp_counts, tcp_counts)

    def answer_udp(self, datagram: bytes) -> bytes | None:
        if self.table is not None:
            reply = fast_answer(self.table, datagram)  # counts what it answers
            if reply is not None:
                return reply
        reply = self.authority.respond(datagram, udp=True)
        key = ("general", *classify(reply))
        cell = self.udp_counts.get(key)
        if cell is None:
            self.udp_counts[key] = [1]
        else:
            cell[0] += 1
        return reply

    def answer_tcp(self, message: bytes) -> bytes | None:
        reply = self.authority.respond(message, udp=False)
        add(self.tcp_counts, ("general", *classify(reply)))
        return reply


class DnsService:
    """Binds the DNS listeners and answers from the current :class:`DnsAnswers`."""

    name = "dns"
    per_worker = True

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        *,
        interfaces: Callable[[], BroadcastMap] = subnet_broadcasts,
    ) -> None:
        self.loop = loop
        self._interfaces = interfaces
        self.guard: ListenerGuard | None = None  # set by apply()
        self.answers: DnsAnswers | None = None
        self.counts: tuple[Counts, Counts] = ({}, {})  # UDP, TCP: see DnsAnswers.udp_counts
        self.limits = TcpLimits(max_connections=0, idle_timeout=0.0)  # set by apply()
        self._reuse_port = False  # [daemon] workers > 1: every worker binds the same ports
        self._freebind = False  # [daemon] freebind: bind addresses not (yet) present
        self._ip_ttl = 128  # [daemon] ip_ttl
        self.udp: ListenerSet[Endpoint, UdpListener] = ListenerSet(self._open_udp)
        self.tcp: ListenerSet[Endpoint, TcpListener] = ListenerSet(self._open_tcp)

    async def apply(self, config: Config, serial: int) -> None:
        """Start serving ``config``, or switch to it.

        Raises:
            BindError: a new address could not be bound (nothing changed).
        """
        answers = await DnsAnswers.compile(config, serial, self.counts)
        self._reuse_port = config.daemon.workers > 1
        self._freebind = config.daemon.freebind
        self._ip_ttl = config.daemon.ip_ttl
        endpoints = [(str(a), config.dns.port) for a in config.dns.listen]
        policy = limits_policy(
            config.limits, config.dns.port, (await off_loop(self._interfaces)).values(), slips=True
        )
        previous = self.answers, self.limits, self.guard
        # New answers first: a socket bound below serves at once (and with workers,
        # SO_REUSEPORT hands it queries at once), so it must never see "no answers".
        self.answers = answers
        self.limits = TcpLimits(config.dns.max_tcp_connections, config.dns.tcp_idle_timeout)
        self.guard = updated_guard(self.guard, policy, dns_slip, "dns/udp")
        try:
            await update_together((self.udp, endpoints), (self.tcp, endpoints))
        except BindError:
            self.answers, self.limits, self.guard = previous
            raise
        self.udp.set_ip_ttl(self._ip_ttl)
        self.tcp.set_ip_ttl(self._ip_ttl)

    async def stop(self) -> None:
        await self.tcp.close()
        await self.udp.close()

    def _handle_datagram(self, data: bytes, source: Address) -> bytes | None:
        answers = self.answers
        return None if answers is None else answers.answer_udp(data)

    def _repeats(self) -> Repeats | None:
        answers = self.answers
        return None if answers is None or answers.table is None else answers.table.repeats

    def _answer_stream_message(self, message: bytes) -> bytes | None:
        answers = self.answers
        return None if answers is None else answers.answer_tcp(message)

    async def _open_udp(self, endpoint: Endpoint) -> UdpListener:
        return await open_udp(
            self.loop,
            "dns/udp",
            endpoint,
            self._handle_datagram,
            repeats=self._repeats,
            guard=lambda: self.guard,
            reuse_port=self._reuse_port,
            freebind=self._freebind,
            ip_ttl=self._ip_ttl,
        )

    async def _open_tcp(self, endpoint: Endpoint) -> TcpListener:
        return await open_tcp(
            self.loop,
            "dns/tcp",
            endpoint,
            lambda peer, local: DnsStream(self._answer_stream_message),
            lambda: self.limits,
            reuse_port=self._reuse_port,
            freebind=self._freebind,
            ip_ttl=self._ip_ttl,
        )

    def status(self) -> dict[str, object]:
        """Per listener its counters and ``address_present`` (False: on no interface now)."""
        present = present_now([h for h, _ in {*self.udp.active, *self.tcp.active}])
        udp = [
            {
                "address": f"{h}:{p}",
                "address_present": present[h],
                "received": u.counters.received,
                "answered": u.counters.answered,
                "send_dropped": u.counters.dropped_send,
                "handler_bugs": u.counters.handler_bugs,
            }
            for (h, p), u in self.udp.active.items()
        ]
        tcp = [
            {
                "address": f"{h}:{p}",
                "address_present": present[h],
                "connections": len(t.connections),
                "evicted": t.evicted,
                "accepted": t.accepted,
            }
            for (h, p), t in self.tcp.active.items()
        ]
        fast = self.answers is not None and self.answers.table is not None
        guard = {} if self.guard is None else self.guard.status()
        return {"fast_path": fast, "udp": udp, "tcp": tcp, **guard}
