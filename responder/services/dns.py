"""The authoritative DNS service: UDP and TCP on every ``dns.listen`` address.

Per config load we compile one :class:`DnsAnswers` (the general responder
and, unless ``dns.fast_path = false``, the precomputed answer table built
from it). Reload swaps that one object, so every packet sees either the old
answers or the new ones, never a mix.

Per UDP datagram: an exact repeat of a recent query is answered by the
compiled UDP loop from the table's memo (see responder/net/udp.py); otherwise
the fast path (one dict lookup) or, when it declines, the general path.
TCP always takes the general path through the RFC 7766 framer.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from protocols.dns.authority import Authority, AuthoritySettings, HostRecords
from protocols.dns.fastpath import AnswerTable, Variants, fast_answer, iter_answer_entries
from protocols.dns.stream import DnsStream
from responder.config import Config
from responder.net.listeners import BindError, ListenerSet
from responder.net.tcp import Address, TcpListener, bind_tcp
from responder.net.udp import UdpListener, bind_udp

log = logging.getLogger(__name__)

Endpoint = tuple[str, int]

COMPILE_SLICE = 32  # table entries (about 1 ms of CPU) between yields to the loop


def authority_settings(config: Config, serial: int) -> AuthoritySettings:
    """Map the validated config onto the codec's plain-data zone description."""
    cluster, dns = config.cluster, config.dns
    hosts = [
        HostRecords(
            fqdn=node.fqdn,
            ipv4=(str(node.management_ip),),
            ipv6=(str(node.management_ipv6),) if node.management_ipv6 else (),
        )
        for node in config.nodes
    ]
    if dns.ns_name.endswith("." + cluster.dns_domain):
        # In-zone name server: publish its addresses (glue), but no PTR for them.
        hosts.append(
            HostRecords(
                fqdn=dns.ns_name,
                ipv4=tuple(str(a) for a in dns.listen if a.version == 4),
                ipv6=tuple(str(a) for a in dns.listen if a.version == 6),
                reverse=False,
            )
        )
    return AuthoritySettings(
        domain=cluster.dns_domain,
        hosts=tuple(hosts),
        public_names=(cluster.public_fqdn,),
        ns_name=dns.ns_name,
        hostmaster=dns.hostmaster,
        serial=serial,
        ttl=dns.ttl,
        negative_ttl=dns.negative_ttl,
        refresh=dns.refresh,
        retry=dns.retry,
        expire=dns.expire,
    )


@dataclass(frozen=True, slots=True)
class DnsAnswers:
    """Everything one config load answers with; swapped whole on reload."""

    authority: Authority  # the general path, compiled once
    table: AnswerTable | None  # None when the fast path is switched off

    @classmethod
    async def compile(cls, config: Config, serial: int) -> DnsAnswers:
        """Compile in slices, yielding to the loop so that serving goes on meanwhile.

        A 1,000-node table takes a few hundred ms of CPU; the old answers keep
        being served between slices, so a reload loses no query.
        """
        authority = Authority(authority_settings(config, serial))
        if not config.dns.fast_path:
            return cls(authority, None)
        entries: dict[bytes, Variants] = {}
        for count, (key, variants) in enumerate(iter_answer_entries(authority), 1):
            entries[key] = variants
            if count % COMPILE_SLICE == 0:
                await asyncio.sleep(0)
        return cls(authority, AnswerTable(entries))

    def answer_udp(self, datagram: bytes) -> bytes | None:
        if self.table is not None:
            reply = fast_answer(self.table, datagram)
            if reply is not None:
                return reply
        return self.authority.respond(datagram, udp=True)

    def answer_tcp(self, message: bytes) -> bytes | None:
        return self.authority.respond(message, udp=False)


class DnsService:
    """Binds the DNS listeners and answers from the current :class:`DnsAnswers`."""

    name = "dns"

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.answers: DnsAnswers | None = None
        self._max_connections = 256
        self._idle_timeout = 10.0
        self._reuse_port = False  # [daemon] workers > 1: every worker binds the same ports
        self.udp: ListenerSet[Endpoint, UdpListener] = ListenerSet(self._open_udp, _close_udp)
        self.tcp: ListenerSet[Endpoint, TcpListener] = ListenerSet(self._open_tcp, _close_tcp)

    async def apply(self, config: Config, serial: int) -> None:
        """Start serving ``config``, or switch to it.

        Raises:
            BindError: a new address could not be bound (nothing changed).
        """
        answers = await DnsAnswers.compile(config, serial)
        self._max_connections = config.dns.max_tcp_connections
        self._idle_timeout = config.dns.tcp_idle_timeout
        self._reuse_port = config.daemon.workers > 1
        endpoints = [(str(a), config.dns.port) for a in config.dns.listen]
        previous_answers, previous_udp = self.answers, list(self.udp.active)
        # New answers first: a socket bound below serves at once (and with workers,
        # SO_REUSEPORT hands it queries at once), so it must never see "no answers".
        self.answers = answers
        try:
            await self.udp.update(endpoints)
            try:
                await self.tcp.update(endpoints)
            except BindError:
                await self.udp.update(previous_udp)
                raise
        except BindError:
            self.answers = previous_answers
            raise
        for listener in self.tcp.active.values():
            listener.max_connections = config.dns.max_tcp_connections
            listener.idle_timeout = config.dns.tcp_idle_timeout

    async def stop(self) -> None:
        await self.tcp.close()
        await self.udp.close()

    def _handle_datagram(self, data: bytes, source: Address) -> bytes | None:
        answers = self.answers
        return None if answers is None else answers.answer_udp(data)

    def _repeats(self) -> dict[bytes, bytes] | None:
        answers = self.answers
        return None if answers is None or answers.table is None else answers.table.recent

    def _answer_stream_message(self, message: bytes) -> bytes | None:
        answers = self.answers
        return None if answers is None else answers.answer_tcp(message)

    async def _open_udp(self, endpoint: Endpoint) -> UdpListener:
        try:
            sock = bind_udp(*endpoint, reuse_port=self._reuse_port)
        except OSError as exc:
            raise BindError("dns/udp", *endpoint, exc) from None
        return UdpListener(self.loop, sock, self._handle_datagram, repeats=self._repeats)

    async def _open_tcp(self, endpoint: Endpoint) -> TcpListener:
        try:
            sock = bind_tcp(*endpoint, reuse_port=self._reuse_port)
        except OSError as exc:
            raise BindError("dns/tcp", *endpoint, exc) from None
        listener = TcpListener(
            self.loop,
            sock,
            lambda peer, local: DnsStream(self._answer_stream_message),
            max_connections=self._max_connections,
            idle_timeout=self._idle_timeout,
        )
        await listener.start()
        return listener

    def status(self) -> dict[str, object]:
        udp = [
            {
                "address": f"{h}:{p}",
                "received": u.counters.received,
                "answered": u.counters.answered,
                "send_dropped": u.counters.dropped_send,
                "handler_bugs": u.counters.handler_bugs,
            }
            for (h, p), u in self.udp.active.items()
        ]
        tcp = [
            {"address": f"{h}:{p}", "connections": len(t.connections), "evicted": t.evicted}
            for (h, p), t in self.tcp.active.items()
        ]
        fast = self.answers is not None and self.answers.table is not None
        return {"fast_path": fast, "udp": udp, "tcp": tcp}


async def _close_udp(listener: UdpListener) -> None:
    listener.close()


async def _close_tcp(listener: TcpListener) -> None:
    await listener.close()
