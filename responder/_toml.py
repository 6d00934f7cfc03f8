"""The validator engine behind config.py: TOML tables in, checked values out.

:class:`Section` walks one TOML table, popping each key as it is taken so
that whatever is left at :meth:`Section.finish` is an unknown key, which is
an error. Every failure is a :class:`ConfigError` whose text is the one line
the command line prints: ``FILE: KEY: reason``. The value parsers below are
the generic ones (addresses, MAC, GUID, ``ADDRESS:PORT``); names with
NetBIOS or DNS rules are the schema's, in config.py.
"""

from __future__ import annotations

import ipaddress
import re
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
T = TypeVar("T")

_MAC = re.compile(r"^[0-9A-Fa-f]{2}([:-])(?:[0-9A-Fa-f]{2}\1){4}[0-9A-Fa-f]{2}$")


class ConfigError(Exception):
    """One invalid setting: ``str(err)`` is the one-line message for operators."""

    def __init__(self, source: str, key: str, reason: str) -> None:
        super().__init__(f"{source}: {key}: {reason}")
        self.source = source
        self.key = key
        self.reason = reason


class Missing:
    """The type of :data:`MISSING`: no default, so the key is required."""


MISSING = Missing()


class Section:
    """A TOML table being validated; remembers its dotted key for messages."""

    def __init__(self, source: str, key: str, table: object) -> None:
        if not isinstance(table, dict):
            raise ConfigError(source, key or "<top>", "must be a table")
        self.source = source
        self.key = key
        self.table: dict[str, Any] = dict(table)

    def error(self, name: str, reason: str) -> ConfigError:
        key = f"{self.key}.{name}" if self.key else name
        return ConfigError(self.source, key, reason)

    def take(self, name: str, kind: type[T], default: T | Missing = MISSING) -> T:
        """The value of ``name`` (required when no default is given), checked for type."""
        if name not in self.table:
            if isinstance(default, Missing):
                raise self.error(name, "required key is missing")
            return default
        value = self.table.pop(name)
        # bool is an int in Python; never accept one for the other.
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise self.error(name, f"must be {_KIND_NAMES.get(kind, kind.__name__)}, got {value!r}")
        return value

    def take_int(self, name: str, default: int, low: int, high: int) -> int:
        value = self.take(name, int, default)
        if not low <= value <= high:
            raise self.error(name, f"must be between {low} and {high}, got {value}")
        return value

    def take_optional(self, name: str, kind: type[T]) -> T | None:
        """The value of ``name``, or None when the key is absent."""
        return self.take(name, kind) if name in self.table else None

    def take_parsed(
        self, name: str, parse: Callable[[str], T], default: T | Missing = MISSING
    ) -> T:
        """A string value turned into ``T`` by ``parse``, whose ValueError names the reason."""
        if name not in self.table and not isinstance(default, Missing):
            return default
        raw = self.take(name, str)
        try:
            return parse(raw)
        except ValueError as exc:
            raise self.error(name, str(exc)) from None

    def take_parsed_optional(self, name: str, parse: Callable[[str], T]) -> T | None:
        """Like :meth:`take_parsed`, or None when the key is absent."""
        return self.take_parsed(name, parse) if name in self.table else None

    def sub(self, name: str) -> Section:
        return Section(
            self.source, f"{self.key}.{name}" if self.key else name, self.table.pop(name, {})
        )

    def finish(self) -> None:
        for name in self.table:
            raise self.error(name, "unknown key")


_KIND_NAMES = {
    str: "a string",
    int: "an integer",
    bool: "true or false",
    list: "a list",
    float: "a number",
    dict: "a table",
}


def ipv4(raw: str) -> ipaddress.IPv4Address:
    try:
        return ipaddress.IPv4Address(raw)
    except ValueError:
        raise ValueError(f"{raw!r} is not an IPv4 address") from None


def ipv6(raw: str) -> ipaddress.IPv6Address:
    try:
        return ipaddress.IPv6Address(raw)
    except ValueError:
        raise ValueError(f"{raw!r} is not an IPv6 address") from None


def any_ip(raw: str) -> IPAddress:
    try:
        return ipaddress.ip_address(raw)
    except ValueError:
        raise ValueError(f"{raw!r} is not an IP address") from None


_LIMITED_BROADCAST = ipaddress.IPv4Address("255.255.255.255")


def unicast(address: IPAddress) -> IPAddress:
    """``address``, if it is one a host can own and be reached on.

    The unspecified address would bind every address of the host, and
    broadcast and multicast addresses belong to no single host: a daemon bound
    there answers for others or drops what it is asked.

    Raises:
        ValueError: naming what the address is instead.
    """
    if address.is_unspecified:
        what = "the unspecified address (every address of the host)"
    elif address == _LIMITED_BROADCAST:
        what = "the broadcast address"
    elif address.is_multicast:
        what = "a multicast address"
    else:
        return address
    raise ValueError(f"'{address}' is {what}; give a unicast address the host owns")


def unicast_ipv4(raw: str) -> ipaddress.IPv4Address:
    address = ipv4(raw)
    unicast(address)
    return address


def unicast_ipv6(raw: str) -> ipaddress.IPv6Address:
    address = ipv6(raw)
    unicast(address)
    return address


def unicast_ip(raw: str) -> IPAddress:
    return unicast(any_ip(raw))


def mac(raw: str) -> bytes:
    if not _MAC.match(raw):
        raise ValueError(f"{raw!r} is not a MAC address like 02:00:5e:10:00:11")
    mac = bytes.fromhex(raw.replace(":", "").replace("-", ""))
    if mac[0] & 1:
        raise ValueError(f"{raw!r} is a multicast address")
    return mac


def guid(raw: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise ValueError(f"{raw!r} is not a GUID") from None


def host_port(raw: str) -> tuple[str, int]:
    host, sep, port = raw.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{raw!r} must be ADDRESS:PORT, e.g. 127.0.0.1:9137")
    return str(any_ip(host)), int(port)
