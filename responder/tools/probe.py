"""``cozen-responder probe``: what a scanner sees at an address (the asyncio half).

One probe asks an address what discovery tools ask (SolarWinds and LanGuard
go DNS, NetBIOS, SMB; nmap's nbstat and smb-os-discovery; impacket's and
smbprotocol's connection set-up) and returns a typed
:class:`~responder.tools.result.ProbeResult`. The requests and their reading
are :mod:`responder.tools.wire` (sans-IO); this module only moves bytes.

Bounded in time: every exchange (one datagram answer, one TCP connect, one
TCP answer) waits at most ``timeout`` seconds, and a protocol whose first
exchange goes unanswered is not asked again, so a silent host costs about
two timeouts (the NBSS stage waits for the names the first stage found).
DNS, NBNS, SMB2 and SMB1 are asked concurrently, then NBSS; several
addresses are probed concurrently (``concurrency`` at a time).

Works against any host: nothing here assumes the far end is this daemon.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

from protocols.dns.message import RRType
from protocols.errors import MalformedMessage
from protocols.netbios import nbss
from protocols.netbios.names import NetbiosName
from responder.tools import wire
from responder.tools.result import (
    CalledView,
    DialectView,
    DnsView,
    ForwardView,
    NameQueryView,
    NbnsView,
    NbssView,
    NtlmView,
    ProbeResult,
    Smb1View,
    Smb2View,
    Status,
    verdict,
)

T = TypeVar("T")
RESOLV_CONF = Path("/etc/resolv.conf")
_MAX_FRAME = 1 << 20


@dataclass(frozen=True, slots=True)
class ProbeOptions:
    """What to ask and how long to wait; the ports are the standard ones unless set."""

    timeout: float = 2.0  # per exchange
    dns_server: tuple[str, int] | None = None  # None: no resolver known, DNS is reported silent
    public_name: str | None = None  # also try it as an NBSS called name
    expect: str | None = None
    nbns_port: int = 137
    nbss_port: int = 139
    smb_port: int = 445


class Silent(Exception):
    """Nothing came back: timeout, refused or closed (the message says which)."""


def system_resolver(path: Path = RESOLV_CONF) -> tuple[str, int] | None:
    """The first ``nameserver`` of resolv.conf (port 53), or None."""
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        if len(fields) >= 2 and fields[0] == "nameserver":
            return fields[1].split("%", 1)[0], 53
    return None


# -- transports -----------------------------------------------------------------------


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes | Exception] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self.queue.put_nowait(data)

    def error_received(self, exc: Exception) -> None:  # ICMP port unreachable and the like
        self.queue.put_nowait(exc)


async def udp_exchange(
    host: str, port: int, payload: bytes, wait: float, read: Callable[[bytes], T]
) -> T:
    """Send ``payload``; return ``read`` of the first answer it accepts.

    Answers ``read`` refuses as not ours (:class:`wire.WrongAnswer`) are skipped.

    Raises:
        Silent: no accepted answer within ``wait``, or the port is unreachable.
        MalformedMessage: an answer our codecs reject.
    """
    loop = asyncio.get_running_loop()
    try:
        transport, protocol = await loop.create_datagram_endpoint(
            _Datagrams, remote_addr=(host, port)
        )
    except OSError as exc:
        raise Silent(f"cannot send: {exc.strerror or exc}") from None
    try:
        transport.sendto(payload)
        return await _first_accepted(protocol.queue, wait, read)
    finally:
        transport.close()


async def _first_accepted(
    queue: asyncio.Queue[bytes | Exception], wait: float, read: Callable[[bytes], T]
) -> T:
    try:
        async with asyncio.timeout(wait):
            while True:
                item = await queue.get()
                if isinstance(item, ConnectionRefusedError):
                    raise Silent("port unreachable")
                if isinstance(item, Exception):
                    raise Silent(_os_reason(item))
                with contextlib.suppress(wire.WrongAnswer):
                    return read(item)
    except TimeoutError:
        raise Silent(f"no answer within {wait:g} s") from None


def _os_reason(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc) or type(exc).__name__


class Connection:
    """One TCP connection carrying NBSS (139) or direct-TCP (445) frames."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, direct: bool):
        self._reader, self._writer = reader, writer
        self._direct = direct
        self._framer = nbss.Framer(direct=direct, max_message_size=_MAX_FRAME)

    @classmethod
    async def open(cls, host: str, port: int, wait: float, *, direct: bool) -> Connection:
        """Connect within ``wait``.

        Raises:
            Silent: refused, unreachable or no SYN-ACK in time.
        """
        try:
            async with asyncio.timeout(wait):
                reader, writer = await asyncio.open_connection(host, port)
        except TimeoutError:
            raise Silent(f"no connection within {wait:g} s") from None
        except OSError as exc:
            raise Silent(_os_reason(exc)) from None
        return cls(reader, writer, direct)

    async def exchange(self, payload: bytes, wait: float, *, raw: bool = False) -> nbss.Frame:
        """Send one message (framed unless ``raw``) and return the next frame.

        Raises:
            Silent: closed or no complete frame within ``wait``.
            MalformedMessage: a frame our framer rejects.
        """
        if not raw:
            payload = nbss.encode_frame(
                nbss.FrameType.SESSION_MESSAGE, payload, direct=self._direct
            )
        try:
            self._writer.write(payload)
            async with asyncio.timeout(wait):
                return await self._next_frame()
        except TimeoutError:
            raise Silent(f"no answer within {wait:g} s") from None
        except OSError as exc:
            raise Silent(_os_reason(exc)) from None

    async def _next_frame(self) -> nbss.Frame:
        while (frame := self._framer.next_frame()) is None or (
            frame.type == nbss.FrameType.KEEP_ALIVE
        ):
            data = await self._reader.read(65536)
            if not data:
                raise Silent("closed without answering")
            self._framer.feed(data)
        return frame

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(OSError):
            await self._writer.wait_closed()


# -- DNS ------------------------------------------------------------------------------


async def dns_query(
    server: tuple[str, int], name: str, qtype: RRType, wait: float
) -> wire.DnsAnswer:
    """One recursive query over UDP (TCP when the answer is truncated).

    Raises:
        Silent: no answer within ``wait``.
        MalformedMessage: an answer our codec rejects.
        ValueError: ``name`` is not a domain name.
    """
    query_id = int.from_bytes(os.urandom(2), "big")
    request = wire.dns_request(query_id, name, qtype)
    answer = await udp_exchange(
        *server, request, wait, lambda d: wire.interpret_dns(d, query_id, qtype)
    )
    if answer[1]:  # truncated: ask again over TCP (RFC 7766)
        answer = await _dns_over_tcp(server, request, query_id, qtype, wait)
    return answer


async def _dns_over_tcp(
    server: tuple[str, int], request: bytes, query_id: int, qtype: RRType, wait: float
) -> wire.DnsAnswer:
    try:
        async with asyncio.timeout(wait):
            reader, writer = await asyncio.open_connection(*server)
            try:
                writer.write(len(request).to_bytes(2, "big") + request)
                length = int.from_bytes(await reader.readexactly(2), "big")
                return wire.interpret_dns(await reader.readexactly(length), query_id, qtype)
            finally:
                writer.close()
    except TimeoutError:
        raise Silent(f"no TCP answer within {wait:g} s") from None
    except (OSError, asyncio.IncompleteReadError) as exc:
        raise Silent(_os_reason(exc)) from None


async def probe_dns(address: str, server: tuple[str, int] | None, wait: float) -> DnsView:
    """PTR of ``address`` at ``server``, then A (AAAA for IPv6) of each name found."""
    if server is None:
        return DnsView(Status.SILENT, "no DNS server (none in /etc/resolv.conf; see --dns-server)")
    where = _host_port(server)
    reverse = wire.reverse_name(address)
    try:
        rcode, _, ptr = await dns_query(server, reverse, RRType.PTR, wait)
        forward = tuple([await _forward(server, name, address, wait) for name in ptr])
    except Silent as exc:
        return DnsView(Status.SILENT, str(exc), server=where, reverse_name=reverse)
    except MalformedMessage as exc:
        return DnsView(Status.MALFORMED, exc.reason, server=where, reverse_name=reverse)
    return DnsView(Status.ANSWERED, "", where, reverse, rcode, ptr, forward)


async def _forward(server: tuple[str, int], name: str, address: str, wait: float) -> ForwardView:
    qtype = RRType.A if ipaddress.ip_address(address).version == 4 else RRType.AAAA
    try:
        rcode, _, addresses = await dns_query(server, name, qtype, wait)
    except ValueError:  # a PTR target that is no valid query name (binary labels)
        return ForwardView(name, "not asked: not a valid name", (), False)
    wanted = ipaddress.ip_address(address)
    back = any(ipaddress.ip_address(a) == wanted for a in addresses)
    return ForwardView(name, rcode, addresses, back)


def _host_port(server: tuple[str, int]) -> str:
    host, port = server
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# -- NBNS -----------------------------------------------------------------------------


async def probe_nbns(address: str, port: int, wait: float) -> NbnsView:
    """Node status of ``address``, then a unicast query for the <20> (or <00>) name found."""
    trn_id = int.from_bytes(os.urandom(2), "big")
    request = wire.node_status_request(trn_id)
    try:
        view = await udp_exchange(
            address, port, request, wait, lambda d: wire.interpret_node_status(d, trn_id)
        )
    except Silent as exc:
        return NbnsView(Status.SILENT, str(exc))
    except MalformedMessage as exc:
        return NbnsView(Status.MALFORMED, exc.reason)
    host = wire.host_name_of(view)
    if host is None:
        return view
    return replace(view, query=await name_query(address, port, *host, wait))


async def name_query(address: str, port: int, name: str, suffix: int, wait: float) -> NameQueryView:
    """A unicast NAME QUERY for ``name<suffix>`` at ``address`` (a node, or a WINS server)."""
    trn_id = int.from_bytes(os.urandom(2), "big")
    label = f"{name}<{suffix:02x}>"
    request = wire.name_query_request(trn_id, name, suffix)
    try:
        return await udp_exchange(
            address, port, request, wait, lambda d: wire.interpret_name_query(d, trn_id, label)
        )
    except Silent as exc:
        return NameQueryView(Status.SILENT, str(exc), name=label)
    except MalformedMessage as exc:
        return NameQueryView(Status.MALFORMED, exc.reason, name=label)


# -- NBSS -----------------------------------------------------------------------------


async def probe_nbss(address: str, port: int, names: Iterable[str], wait: float) -> NbssView:
    """One SESSION REQUEST per called name, each on its own connection to ``port``."""
    called: list[CalledView] = []
    for name in dict.fromkeys(n.upper() for n in names):
        try:
            called.append(await _session_request(address, port, name, wait))
        except Silent as exc:
            if not called:  # the first goes unanswered: so would the others
                return NbssView(Status.SILENT, str(exc))
            called.append(CalledView(name, Status.SILENT, answer=str(exc)))
        except MalformedMessage as exc:
            called.append(CalledView(name, Status.MALFORMED, answer=exc.reason))
    if not called:
        return NbssView(Status.SILENT, "no called name to try (NBNS and NTLM named none)")
    return NbssView(Status.ANSWERED, called=tuple(called))


async def _session_request(address: str, port: int, name: str, wait: float) -> CalledView:
    connection = await Connection.open(address, port, wait, direct=False)
    try:
        frame = await connection.exchange(wire.session_request(name), wait, raw=True)
        return wire.interpret_session_response(name, frame)
    finally:
        await connection.close()


# -- SMB2 and NTLM --------------------------------------------------------------------


async def probe_smb2(address: str, port: int, wait: float) -> tuple[Smb2View, NtlmView]:
    """NEGOTIATE per :data:`wire.DIALECT_SETS`; SESSION_SETUP on the widest one answered."""
    views: list[DialectView] = []
    ntlm = NtlmView(Status.SILENT, "no SMB2 dialect negotiated")
    for dialects in wire.DIALECT_SETS:
        try:
            view, session_ntlm = await _negotiate(address, port, dialects, wait)
        except Silent as exc:
            if not views:
                return Smb2View(Status.SILENT, str(exc)), NtlmView(Status.SILENT, str(exc))
            view, session_ntlm = (
                DialectView(wire.dialect_names(dialects), Status.SILENT, str(exc)),
                None,
            )
        views.append(view)
        ntlm = session_ntlm or ntlm
    return Smb2View(Status.ANSWERED, negotiations=tuple(views)), ntlm


async def _negotiate(
    address: str, port: int, dialects: tuple[int, ...], wait: float
) -> tuple[DialectView, NtlmView | None]:
    connection = await Connection.open(address, port, wait, direct=True)
    try:
        request = wire.smb2_negotiate_request(dialects, os.urandom(16), os.urandom(32))
        try:
            frame = await connection.exchange(request, wait)
            view = wire.interpret_negotiate(frame.payload, dialects, time.time())
        except MalformedMessage as exc:
            return DialectView(wire.dialect_names(dialects), Status.MALFORMED, exc.reason), None
        if not view.dialect:
            return view, None
        return view, await _session_setup(connection, wait)
    finally:
        await connection.close()


async def _session_setup(connection: Connection, wait: float) -> NtlmView:
    try:
        frame = await connection.exchange(wire.smb2_session_setup_request(1), wait)
        return wire.interpret_session_setup(frame.payload)
    except Silent as exc:
        return NtlmView(Status.SILENT, str(exc))
    except MalformedMessage as exc:
        return NtlmView(Status.MALFORMED, exc.reason)


# -- SMB1 -----------------------------------------------------------------------------


async def probe_smb1(address: str, port: int, wait: float) -> Smb1View:
    """NT LM 0.12 NEGOTIATE, then an anonymous SESSION_SETUP_ANDX, on ``port``."""
    try:
        connection = await Connection.open(address, port, wait, direct=True)
    except Silent as exc:
        return Smb1View(Status.SILENT, str(exc))
    try:
        frame = await connection.exchange(wire.smb1_negotiate_request(), wait)
        view = wire.interpret_smb1_negotiate(frame.payload)
        if view.dialect:
            frame = await connection.exchange(wire.smb1_anonymous_setup_request(), wait)
            view = wire.interpret_smb1_setup(view, frame.payload)
        return view
    except Silent as exc:
        return Smb1View(Status.SILENT, str(exc))
    except MalformedMessage as exc:
        return Smb1View(Status.MALFORMED, exc.reason)
    finally:
        await connection.close()


# -- one address, many addresses ------------------------------------------------------


async def probe(address: str, options: ProbeOptions) -> ProbeResult:
    """Everything :mod:`responder.tools.wire` asks, at ``address``.

    Raises:
        ValueError: ``address`` is not an IP address.
    """
    ipaddress.ip_address(address)
    t = options.timeout
    dns, nbns, (smb2, ntlm), smb1 = await asyncio.gather(
        probe_dns(address, options.dns_server, t),
        probe_nbns(address, options.nbns_port, t),
        probe_smb2(address, options.smb_port, t),
        probe_smb1(address, options.smb_port, t),
    )
    names = _called_names(nbns, ntlm, options)
    nbss_view = await probe_nbss(address, options.nbss_port, names, t)
    result = ProbeResult(address, dns, nbns, nbss_view, smb2, ntlm, smb1)
    if options.expect is None:
        return result
    wrong, silent = verdict(result, options.expect)
    return replace(result, expect=options.expect, mismatched=wrong, silent=silent)


def _called_names(nbns: NbnsView, ntlm: NtlmView, options: ProbeOptions) -> list[str]:
    """The host's own name (NBNS <20>, else NTLM), *SMBSERVER, the public and expected names."""
    names: list[str] = []
    host = wire.host_name_of(nbns)
    if host is not None:
        names.append(host[0])
    elif ntlm.nb_computer_name:
        names.append(ntlm.nb_computer_name)
    names.append("*SMBSERVER")
    names += [n for n in (options.public_name, options.expect) if n]
    return [label for label in (n.split(".", 1)[0][:15] for n in names) if _netbios(label)]


def _netbios(label: str) -> bool:
    try:
        NetbiosName.make(label, 0x20)
    except (ValueError, UnicodeEncodeError):
        return False
    return True


async def probe_many(
    addresses: list[str],
    options: ProbeOptions,
    *,
    concurrency: int = 32,
    progress: Callable[[int, int], None] | None = None,
) -> list[ProbeResult]:
    """:func:`probe` each address, ``concurrency`` at a time; results in input order.

    ``progress(done, total)`` is called after each address.

    Raises:
        ValueError: an address is not an IP address.
    """
    gate = asyncio.Semaphore(concurrency)
    done = 0

    async def one(address: str) -> ProbeResult:
        nonlocal done
        async with gate:
            result = await probe(address, options)
        done += 1
        if progress is not None:
            progress(done, len(addresses))
        return result

    return list(await asyncio.gather(*(one(a) for a in addresses)))
