"""Replay, the answering side: the daemon's own sans-IO entry points, or a live server.

:class:`LocalAnswers` answers as ``run`` would with the same config, through
the same calls the services make: DNS through the fast path and then
``Authority.respond`` (responder/services/dns.py), NBNS through
``NbnsNode.receive_datagram`` (responder/services/nbns.py), NBSS/SMB through
``SmbSession.receive_data`` (responder/services/smb.py). What varies per run
is fixed: the clock is the capture's time, the random bytes (challenges,
salts, session IDs) are a constant, and replay masks them anyway. The
``[limits]`` guard is not applied: replay compares answers, not rates.

:class:`LiveAnswers` (``replay --against ADDRESS``) sends the same requests
to ADDRESS instead, on the ports the capture used, and reads what comes back
(bounded by ``timeout`` per answer). ``--against CAPTURED=LIVE`` (repeatable)
routes the requests sent to one captured address to a live one, for
captures of several addresses.
"""

from __future__ import annotations

import contextlib
import socket
import time
from typing import Protocol

from protocols.dns.authority import Authority
from protocols.dns.fastpath import AnswerTable, fast_answer, iter_answer_entries
from protocols.errors import MalformedMessage
from protocols.netbios.node import NbnsNode
from protocols.smb.session import SmbSession
from responder.config import Config
from responder.identity import dns_zone, node_identities, smb_identity
from responder.tools.replay_capture import Exchange, split_frames


class StreamPeer(Protocol):
    """One replayed connection: a request in, the reply frames or messages out."""

    def exchange(self, request: bytes, expected: int) -> list[bytes]:
        """The replies to ``request`` (``expected``: how many the capture holds, for a wait)."""

    def close(self) -> None:
        """End the connection."""


class Answers(Protocol):
    """Who answers the replayed requests: the daemon's codecs, or a live server."""

    def datagram(self, exchange: Exchange, request: bytes) -> bytes | None:
        """The answer to one UDP request of ``exchange``, or None."""

    def connect(self, exchange: Exchange) -> StreamPeer | None:
        """A connection for the TCP ``exchange``; None when it cannot be made."""


class _Constant:
    """The random bytes of a replayed session: never random, always masked."""

    def __call__(self, size: int) -> bytes:
        return b"\x5a" * size


class _LocalSmb:
    def __init__(self, session: SmbSession | None) -> None:
        self.session = session

    def exchange(self, request: bytes, expected: int) -> list[bytes]:
        if self.session is None or self.session.closed:
            return []
        return split_frames(self.session.receive_data(request))

    def close(self) -> None:
        self.session = None


class _LocalDnsStream:
    def __init__(self, authority: Authority) -> None:
        self.authority = authority

    def exchange(self, request: bytes, expected: int) -> list[bytes]:
        answer = self.authority.respond(request, udp=False)
        return [] if answer is None else [answer]

    def close(self) -> None:
        pass


class LocalAnswers:
    """Answers as the daemon with ``config`` answers, in process."""

    def __init__(self, config: Config, now: float) -> None:
        self.config = config
        self.authority = Authority(dns_zone(config, int(now) & 0xFFFFFFFF))
        self.table = AnswerTable(dict(iter_answer_entries(self.authority)))
        self.fast = config.dns.fast_path
        identities = node_identities(config)
        self.nbns = {
            n.address: NbnsNode(n.nbns, fast_path=config.netbios.fast_path) for n in identities
        }
        self.smb = {n.address: smb_identity(config, n) for n in identities}
        self.now = now

    def datagram(self, exchange: Exchange, request: bytes) -> bytes | None:
        if exchange.protocol == "dns":
            answer = fast_answer(self.table, request) if self.fast else None
            return answer or self.authority.respond(request, udp=True)
        address = exchange.answered_from or exchange.server[0]
        node = self.nbns.get(address)
        broadcast = address != exchange.server[0]
        if node is None:  # a broadcast nobody answered in the capture: does any node?
            return next(
                filter(None, (self._nbns(n, request, True) for n in self.nbns.values())), None
            )
        return self._nbns(node, request, broadcast)

    def _nbns(self, node: NbnsNode, request: bytes, broadcast: bool) -> bytes | None:
        try:
            return node.receive_datagram(request, broadcast=broadcast, now=self.now)
        except MalformedMessage:
            return None

    def connect(self, exchange: Exchange) -> StreamPeer | None:
        if exchange.protocol == "dns":
            return _LocalDnsStream(self.authority)
        identity = self.smb.get(exchange.server[0])
        if identity is None or not self.config.smb.enabled:
            return _LocalSmb(None)
        session = SmbSession(
            identity,
            netbios=exchange.server[1] == self.config.smb.netbios_port,
            random_bytes=_Constant(),
            clock=lambda: self.now,
            max_message_size=self.config.smb.max_message_size,
        )
        return _LocalSmb(session)


class _LiveStream:
    def __init__(self, sock: socket.socket, dns: bool, timeout: float) -> None:
        self.sock = sock
        self.dns = dns
        self.timeout = timeout
        self.buffer = b""

    def exchange(self, request: bytes, expected: int) -> list[bytes]:
        framed = len(request).to_bytes(2) + request if self.dns else request
        try:
            self.sock.sendall(framed)
        except OSError:
            return []
        return self._read(max(expected, 1))

    def _read(self, expected: int) -> list[bytes]:
        deadline = time.monotonic() + self.timeout
        while True:
            frames = self._split()
            if len(frames) >= expected or time.monotonic() >= deadline:
                return frames
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = self.sock.recv(65536)
            except (TimeoutError, OSError):
                return frames
            if not data:
                return frames
            self.buffer += data

    def _split(self) -> list[bytes]:
        frames: list[bytes] = []
        while True:
            size, head = (2, 0) if self.dns else (4, 0)
            if len(self.buffer) < size:
                return frames
            length = int.from_bytes(self.buffer[head + (0 if self.dns else 1) : size])
            if len(self.buffer) < size + length:
                return frames
            frame = self.buffer[size : size + length] if self.dns else self.buffer[: size + length]
            frames.append(frame)
            self.buffer = self.buffer[size + length :]

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


class LiveAnswers:
    """Answers of live servers (replay ``--against``).

    ``default``: where every request goes (None: to the address it was sent to);
    ``routes``: captured address -> live address, before the default.
    """

    def __init__(
        self, default: str | None, routes: dict[str, str] | None = None, timeout: float = 1.0
    ) -> None:
        self.default = default
        self.routes = routes or {}
        self.timeout = timeout

    def _where(self, exchange: Exchange) -> str:
        asked = exchange.answered_from or exchange.server[0]
        return self.routes.get(asked) or self.default or asked

    def datagram(self, exchange: Exchange, request: bytes) -> bytes | None:
        address = self._where(exchange)
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.settimeout(self.timeout)
            try:
                sock.sendto(request, (address, exchange.server[1]))
                deadline = time.monotonic() + self.timeout
                while time.monotonic() < deadline:
                    answer = sock.recv(65535)
                    if answer[:2] == request[:2]:
                        return answer
            except OSError:
                return None
        return None

    def connect(self, exchange: Exchange) -> StreamPeer | None:
        address = self._where(exchange)
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect((address, exchange.server[1]))
        except OSError:
            sock.close()
            return None
        return _LiveStream(sock, exchange.protocol == "dns", self.timeout)
