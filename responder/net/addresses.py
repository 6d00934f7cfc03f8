"""Which local addresses are present now, kept current from rtnetlink.

Theory of operation (rtnetlink(7), netlink(7)): an ``AF_NETLINK`` /
``NETLINK_ROUTE`` socket joined to the ``RTMGRP_IPV4_IFADDR`` and
``RTMGRP_IPV6_IFADDR`` groups receives an ``RTM_NEWADDR`` message whenever an
address is added to an interface (or its flags change, as when IPv6 duplicate
address detection ends) and ``RTM_DELADDR`` when it is removed. Each message
is an ``nlmsghdr``, an ``ifaddrmsg`` (family, prefix length, flags, scope,
interface index) and attributes: ``IFA_LOCAL`` (the IPv4 local address;
IPv6 has only ``IFA_ADDRESS``), ``IFA_BROADCAST`` (the subnet broadcast, when
the interface has one) and ``IFA_FLAGS`` (32-bit flags).

:class:`AddressWatch` joins the groups first, then reads the whole table
once with an ``RTM_GETADDR`` dump on a second socket, then applies the
notifications in order from a loop reader: whatever raced the dump is
replayed after it, so the table converges. When the kernel drops
notifications (``ENOBUFS``, the socket's queue overflowed) the table is read
again and the differences reported.

"Present" means a socket can bind the address without ``IP_FREEBIND`` and
receive on it: it is assigned to an interface and not tentative (IPv6 DAD),
or it lies in the prefix of an address on the loopback interface (the kernel
makes that whole prefix local, so every 127.x address is present). Local
routes added by hand (``ip route add local``) are not followed.

The daemon uses it to start NBNS claims when a standby's address arrives and
to release them when it goes (see :mod:`responder.services.nbns`), and every
service reports ``address_present`` per listener in its status.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import logging
import socket
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass

log = logging.getLogger(__name__)

RTMGRP_IPV4_IFADDR = 0x10
RTMGRP_IPV6_IFADDR = 0x100
RTM_NEWADDR, RTM_DELADDR, RTM_GETADDR = 20, 21, 22
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
IFA_ADDRESS, IFA_LOCAL, IFA_BROADCAST, IFA_FLAGS = 1, 2, 4, 8
IFA_F_TENTATIVE, IFA_F_DADFAILED = 0x40, 0x08
LOOPBACK_IFINDEX = 1  # the kernel's loopback device in every network namespace

_NLMSGHDR = struct.Struct("=IHHII")  # length, type, flags, sequence, port id
_IFADDRMSG = struct.Struct("=BBBBI")  # family, prefix length, flags, scope, index
_RTATTR = struct.Struct("=HH")  # length, type
_RECEIVE_BUFFER = 1024 * 1024
_DUMP_TIMEOUT = 5.0


@dataclass(frozen=True, slots=True)
class AddressInfo:
    """One address on one interface, as the kernel reported it."""

    address: str
    prefixlen: int
    ifindex: int
    broadcast: str | None  # IFA_BROADCAST, IPv4 only
    usable: bool  # not tentative, not failed DAD


@dataclass(frozen=True, slots=True)
class AddressChange:
    """An address came (``present``) or went; ``info`` is its last known entry."""

    address: str
    present: bool
    info: AddressInfo


Table = dict[tuple[str, int], AddressInfo]
ChangeCallback = Callable[[AddressChange], None]


def parse_messages(data: bytes) -> Iterator[tuple[int, AddressInfo | None]]:
    """Split one netlink read into ``(message type, address or None)`` pairs.

    Messages other than RTM_NEWADDR / RTM_DELADDR yield None as address.

    Raises:
        ValueError: a length field runs past the data, or a dump reported an error.
    """
    offset = 0
    while offset + _NLMSGHDR.size <= len(data):
        length, kind, _, _, _ = _NLMSGHDR.unpack_from(data, offset)
        if length < _NLMSGHDR.size or offset + length > len(data):
            raise ValueError(f"netlink message length {length} at {offset} is out of bounds")
        body = data[offset + _NLMSGHDR.size : offset + length]
        if kind == NLMSG_ERROR and struct.unpack_from("=i", body)[0] != 0:
            raise ValueError(f"netlink error {-struct.unpack_from('=i', body)[0]}")
        info = _parse_ifaddr(body) if kind in (RTM_NEWADDR, RTM_DELADDR) else None
        yield kind, info
        offset += (length + 3) & ~3


def _parse_ifaddr(body: bytes) -> AddressInfo | None:
    if len(body) < _IFADDRMSG.size:
        raise ValueError("ifaddrmsg is truncated")
    family, prefixlen, flags, _, index = _IFADDRMSG.unpack_from(body)
    if family not in (socket.AF_INET, socket.AF_INET6):
        return None
    attrs = dict(_attributes(body, _IFADDRMSG.size))
    raw = attrs.get(IFA_LOCAL) or attrs.get(IFA_ADDRESS)
    if raw is None:
        return None
    if IFA_FLAGS in attrs and len(attrs[IFA_FLAGS]) >= 4:
        flags = struct.unpack_from("=I", attrs[IFA_FLAGS])[0]
    brd = attrs.get(IFA_BROADCAST)
    return AddressInfo(
        address=socket.inet_ntop(family, raw),
        prefixlen=prefixlen,
        ifindex=index,
        broadcast=None if brd is None else socket.inet_ntop(family, brd),
        usable=not flags & (IFA_F_TENTATIVE | IFA_F_DADFAILED),
    )


def _attributes(body: bytes, offset: int) -> Iterator[tuple[int, bytes]]:
    while offset + _RTATTR.size <= len(body):
        length, kind = _RTATTR.unpack_from(body, offset)
        if length < _RTATTR.size or offset + length > len(body):
            raise ValueError(f"rtattr length {length} at {offset} is out of bounds")
        yield kind, body[offset + _RTATTR.size : offset + length]
        offset += (length + 3) & ~3


def read_table() -> Table:
    """Every address of every interface now (an RTM_GETADDR dump).

    Raises:
        OSError: the netlink socket failed.
        ValueError: the kernel's answer could not be parsed.
    """
    table: Table = {}
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE) as sock:
        sock.settimeout(_DUMP_TIMEOUT)
        request = _NLMSGHDR.pack(
            _NLMSGHDR.size + 4, RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP, 1, 0
        ) + struct.pack("=B3x", socket.AF_UNSPEC)
        sock.sendall(request)
        while True:
            for kind, info in parse_messages(sock.recv(65536)):
                if kind == NLMSG_DONE:
                    return table
                if info is not None and kind == RTM_NEWADDR:
                    table[(info.address, info.ifindex)] = info


@dataclass(frozen=True, slots=True)
class Presence:
    """One table's present addresses, indexed: a lookup is a set probe, not a scan.

    (A scan per address made a 1,000-node reload or readiness check quadratic.)
    """

    usable: frozenset[str]
    loopback_prefixes: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]

    @classmethod
    def of(cls, table: Table) -> Presence:
        usable = [info for info in table.values() if info.usable]
        prefixes = {
            ipaddress.ip_network(f"{info.address}/{info.prefixlen}", strict=False)
            for info in usable
            if info.ifindex == LOOPBACK_IFINDEX
        }
        return cls(frozenset(info.address for info in usable), tuple(prefixes))

    def __contains__(self, address: object) -> bool:
        """Whether ``address`` may be bound and receive (see the module text)."""
        if address in self.usable:
            return True
        if not self.loopback_prefixes or not isinstance(address, str):
            return False
        target = ipaddress.ip_address(address)
        return any(
            target.version == net.version and target in net for net in self.loopback_prefixes
        )


class AddressWatch:
    """The local address table, kept current; calls back when an address comes or goes."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.table: Table = {}
        self._presence: Presence | None = None  # the table's index, made when first asked
        self._last: dict[str, AddressInfo] = {}  # kept after removal: where it was
        self._callbacks: list[ChangeCallback] = []
        self._sock: socket.socket | None = None

    def open(self) -> None:
        """Join the address groups, read the table, and follow it from the loop.

        Raises:
            OSError: netlink is unavailable (the watch stays closed).
        """
        if self._sock is not None:
            return
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RECEIVE_BUFFER)
            sock.bind((0, RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR))
            sock.setblocking(False)
            self._replace_table(read_table(), notify=False)
        except (OSError, ValueError) as exc:
            sock.close()
            raise OSError(f"cannot follow interface addresses (rtnetlink): {exc}") from None
        self._sock = sock
        self.loop.add_reader(sock.fileno(), self._drain)

    def close(self) -> None:
        if self._sock is not None:
            self.loop.remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None

    def subscribe(self, callback: ChangeCallback) -> None:
        """Call ``callback`` (on the loop) whenever an address comes or goes.

        Addresses inside a loopback prefix come and go with it, reported as the
        prefix's own address: a subscriber re-checks :meth:`present` for its own.
        """
        self._callbacks.append(callback)

    def unsubscribe(self, callback: ChangeCallback) -> None:
        with contextlib.suppress(ValueError):
            self._callbacks.remove(callback)

    def present(self, address: str) -> bool:
        """Whether ``address`` is on an interface now (see the module text)."""
        return address in self.presence()

    def presence(self) -> Presence:
        """The present addresses now, as an immutable snapshot (safe to use off the loop)."""
        if self._presence is None:
            self._presence = Presence.of(self.table)
        return self._presence

    def last_known(self) -> dict[str, AddressInfo]:
        """A copy of every address's last known entry (see :meth:`where`)."""
        return dict(self._last)

    def where(self, address: str) -> AddressInfo | None:
        """The last known entry of ``address``, also after it went (None: never seen)."""
        return self._last.get(address)

    def _drain(self) -> None:
        assert self._sock is not None
        while True:
            try:
                data = self._sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self._resync(exc)
                return
            self._apply(data)

    def _apply(self, data: bytes) -> None:
        try:
            messages = list(parse_messages(data))
        except ValueError as exc:
            log.warning("addresses: unreadable rtnetlink message (%s); re-reading", exc)
            self._resync(None)
            return
        for kind, info in messages:
            if info is None:
                continue
            before = self.present(info.address)
            if kind == RTM_NEWADDR:
                self.table[(info.address, info.ifindex)] = info
                self._last[info.address] = info
            else:
                self.table.pop((info.address, info.ifindex), None)
            self._presence = None
            self._notify(info.address, before)

    def _resync(self, exc: OSError | None) -> None:
        if exc is not None and exc.errno != errno.ENOBUFS:
            log.warning("addresses: rtnetlink receive failed: %s", exc)
        try:
            table = read_table()
        except (OSError, ValueError) as failure:
            log.warning("addresses: cannot re-read the address table: %s", failure)
            return
        self._replace_table(table, notify=True)

    def _replace_table(self, table: Table, *, notify: bool) -> None:
        addresses = {a for a, _ in self.table} | {a for a, _ in table}
        before = {a: self.present(a) for a in addresses}
        self.table = dict(table)
        self._presence = None
        for info in table.values():
            self._last[info.address] = info
        if notify:
            for address in addresses:
                self._notify(address, before[address])

    def _notify(self, address: str, before: bool) -> None:
        now = self.present(address)
        info = self._last.get(address)
        if now == before or info is None:
            return
        log.debug("address %s %s", address, "appeared" if now else "went away")
        change = AddressChange(address, now, info)
        for callback in list(self._callbacks):
            try:
                callback(change)
            except Exception:
                log.exception("addresses: a change callback failed")


def present_now(addresses: list[str]) -> dict[str, bool]:
    """Whether each of ``addresses`` is present, from one fresh read of the table.

    For a status report; if the table cannot be read, every address counts as
    present (logged at debug level), so no readiness check fails on our account.
    """
    try:
        table = read_table()
    except (OSError, ValueError) as exc:
        log.debug("addresses: cannot read the address table: %s", exc)
        return dict.fromkeys(addresses, True)
    presence = Presence.of(table)
    return {address: address in presence for address in addresses}
