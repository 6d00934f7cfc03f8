"""The ``[registration.dns]`` section of the config: RFC 2136 registration settings.

Kept beside config.py (which calls :func:`parse_registration`) so that the
registration schema reads in one place. Absent section: registration off.
The secret is read here, once per load, so ``check`` proves it readable:
inline (``tsig_secret``, base64) or from ``tsig_secret_file``, a file that
only its owner may read (mode 0600 or 0400) holding the base64 secret or a
BIND key statement as ``tsig-keygen`` prints it. A relative path is taken
from the config file's directory.

With ``auth = "gss-tsig"`` (RFC 3645, Kerberos: AD-integrated and other
secure zones) the keys are ``principal`` (``primary/instance@REALM``),
``keytab`` (a file only its owner may read; without it the credential cache
of KRB5CCNAME is used), ``server_principal`` (default ``DNS/<server>``, the
zone's SOA MNAME), ``tkey_lifetime``, ``rekey_seconds`` (before the
lifetime ends) and ``accept_bad_direction``; the tsig_* keys are refused
there, as the gss-tsig keys are with ``auth = "tsig"``. GSS-TSIG needs the
``gssapi`` binding (the ``gss`` extra): without it the config is refused
with the pip command that adds it.

Reverse zones default to each management address's /24 in-addr.arpa zone
(IPv4) and /64 ip6.arpa zone (IPv6), the delegations sites commonly run.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import importlib.util
import re
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict

from protocols.dns.ownership import default_reverse_zone, in_zone
from responder._toml import IPAddress, Section, any_ip

AUTH_MODES = ("tsig", "gss-tsig")
TSIG_ALGORITHMS = ("hmac-sha256", "hmac-sha512", "hmac-sha384", "hmac-sha1", "hmac-md5")
CONFLICT_MODES = ("check-with-dhcid", "check-exists-with-dhcid", "no-check")
_LABEL = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?$")
_BIND_SECRET = re.compile(r'\bsecret\s+"([^"]+)"')
_REVERSE_ROOTS = ("in-addr.arpa", "ip6.arpa")
_PRINCIPAL = re.compile(r"^[^@\s/]+(?:/[^@\s/]+)*@[^@\s]+$")
_TSIG_KEYS = ("tsig_name", "tsig_algorithm", "tsig_secret", "tsig_secret_file")
_GSS_KEYS = (
    "principal",
    "keytab",
    "server_principal",
    "tkey_lifetime",
    "rekey_seconds",
    "accept_bad_direction",
)
GSS_MISSING = (
    '"gss-tsig" needs the Python GSSAPI binding, which is not installed: '
    "pip install cozen-responder[gss]"
)


@dataclass(frozen=True, slots=True)
class DnsRegistration:
    """``[registration.dns]``: where and how each node's records are registered."""

    server: IPAddress | None  # None: the zone's SOA MNAME, looked up at run time
    port: int
    zone: str  # lower case, no trailing dot
    reverse_zones: tuple[str, ...]
    ttl: int
    auth: str
    tsig_name: str  # lower case, no trailing dot
    tsig_algorithm: str
    tsig_secret: bytes = field(repr=False)
    tsig_secret_file: str | None  # where the secret came from, for check
    refresh_seconds: int
    withdraw_on_stop: bool
    conflict: str
    # auth = "gss-tsig" (RFC 3645)
    principal: str = ""
    keytab: str | None = None  # None: the credential cache (KRB5CCNAME)
    server_principal: str | None = None  # None: DNS/<the zone's SOA MNAME>
    tkey_lifetime: int = 3600
    rekey_seconds: int = 2700
    accept_bad_direction: bool = False


def parse_registration(
    section: Section,
    dns_domain: str,
    fqdns: Iterable[str],
    addresses: Iterable[IPAddress],
    ttl: int,
) -> DnsRegistration | None:
    """Validate ``[registration]``; None when it has no ``dns`` table.

    Raises:
        ConfigError: naming the first invalid key and why.
    """
    dns = section.sub("dns") if "dns" in section.table else None
    section.finish()
    if dns is None:
        return None
    auth = _auth(dns)
    zone = dns.take_parsed("zone", _dns_name, dns_domain)
    gss = auth == "gss-tsig"
    secret, secret_file = (b"", None) if gss else _secret(dns)
    registration = DnsRegistration(
        server=dns.take_parsed_optional("server", any_ip),
        port=dns.take_int("port", 53, 1, 65535),
        zone=zone,
        reverse_zones=_reverse_zones(dns, tuple(addresses)),
        ttl=dns.take_int("ttl", ttl, 0, 2**31 - 1),
        auth=auth,
        tsig_name="" if gss else dns.take_parsed("tsig_name", _dns_name),
        tsig_algorithm=dns.take_parsed("tsig_algorithm", _algorithm, "hmac-sha256"),
        tsig_secret=secret,
        tsig_secret_file=secret_file,
        refresh_seconds=dns.take_int("refresh_seconds", 600, 1, 7 * 86400),
        withdraw_on_stop=dns.take("withdraw_on_stop", bool, True),
        conflict=dns.take_parsed("conflict", _conflict, "check-with-dhcid"),
    )
    if gss:
        registration = dataclasses.replace(registration, **_gss(dns))
    _check_zone(dns, zone, tuple(fqdns))
    dns.finish()
    return registration


def _auth(dns: Section) -> str:
    """``auth``: "tsig" or "gss-tsig"; the other mode's keys are refused with the reason."""
    auth = dns.take("auth", str, "tsig")
    if auth not in AUTH_MODES:
        raise dns.error("auth", f'{auth!r} must be "tsig" or "gss-tsig"')
    others = _TSIG_KEYS if auth == "gss-tsig" else _GSS_KEYS
    for key in others:
        if key in dns.table:
            other = "tsig" if auth == "gss-tsig" else "gss-tsig"
            raise dns.error(key, f'belongs to auth = "{other}", not "{auth}"')
    if auth == "gss-tsig" and importlib.util.find_spec("gssapi") is None:
        raise dns.error("auth", GSS_MISSING)
    return auth


class _GssKeys(TypedDict):
    principal: str
    keytab: str | None
    server_principal: str | None
    tkey_lifetime: int
    rekey_seconds: int
    accept_bad_direction: bool


def _gss(dns: Section) -> _GssKeys:
    """The gss-tsig keys, checked: a keytab only its owner can read, rekey before expiry."""
    lifetime = dns.take_int("tkey_lifetime", 3600, 60, 7 * 86400)
    rekey = dns.take_int("rekey_seconds", min(2700, lifetime * 3 // 4), 1, 7 * 86400)
    if rekey >= lifetime:
        raise dns.error("rekey_seconds", f"must be less than tkey_lifetime ({lifetime})")
    keytab = dns.take_parsed_optional("keytab", lambda raw: _resolve(dns.source, raw))
    if keytab is not None:
        try:
            _check_private(keytab)
        except ValueError as exc:
            raise dns.error("keytab", str(exc)) from None
    return {
        "principal": dns.take_parsed("principal", _principal),
        "keytab": None if keytab is None else str(keytab),
        "server_principal": dns.take_parsed_optional("server_principal", _principal_name),
        "tkey_lifetime": lifetime,
        "rekey_seconds": rekey,
        "accept_bad_direction": dns.take("accept_bad_direction", bool, False),
    }


def _principal(raw: str) -> str:
    if not _PRINCIPAL.match(raw):
        raise ValueError(f"{raw!r} must be a Kerberos principal such as cozen/host@REALM")
    return raw


def _principal_name(raw: str) -> str:
    """A service principal, with or without its @REALM (the default realm then)."""
    if not _PRINCIPAL.match(raw if "@" in raw else f"{raw}@R"):
        raise ValueError(f"{raw!r} must be a Kerberos principal such as DNS/ns.example.com")
    return raw


def _dns_name(raw: str) -> str:
    """A domain name: lower-cased, without the trailing dot."""
    name = raw.lower().removesuffix(".")
    if not name or len(name) > 253:
        raise ValueError(f"{raw!r} must be a domain name of 1 to 253 characters")
    for label in name.split("."):
        if not 1 <= len(label) <= 63 or not _LABEL.match(label):
            raise ValueError(f"{raw!r} has an invalid DNS label {label!r}")
    return name


def _algorithm(raw: str) -> str:
    if raw.lower() not in TSIG_ALGORITHMS:
        raise ValueError(f"{raw!r} must be one of {', '.join(TSIG_ALGORITHMS)}")
    return raw.lower()


def _conflict(raw: str) -> str:
    if raw not in CONFLICT_MODES:
        raise ValueError(f"{raw!r} must be one of {', '.join(CONFLICT_MODES)}")
    return raw


def _reverse_zone(raw: str) -> str:
    zone = _dns_name(raw)
    if not any(in_zone(zone, root) and zone != root for root in _REVERSE_ROOTS):
        raise ValueError(f"{raw!r} is not a zone under in-addr.arpa or ip6.arpa")
    return zone


def _reverse_zones(dns: Section, addresses: tuple[IPAddress, ...]) -> tuple[str, ...]:
    if "reverse_zones" not in dns.table:
        return tuple(dict.fromkeys(default_reverse_zone(a) for a in addresses))
    raw = dns.take("reverse_zones", list)
    if not all(isinstance(item, str) for item in raw):
        raise dns.error("reverse_zones", "must be a list of zone names")
    try:
        zones = tuple(_reverse_zone(item) for item in raw)
    except ValueError as exc:
        raise dns.error("reverse_zones", str(exc)) from None
    if len(set(zones)) != len(zones):
        raise dns.error("reverse_zones", "lists a zone twice")
    return zones


def _check_zone(dns: Section, zone: str, fqdns: tuple[str, ...]) -> None:
    outside = [fqdn for fqdn in fqdns if not in_zone(fqdn, zone) or fqdn == zone]
    if outside:
        raise dns.error("zone", f"{zone!r} does not hold the Cozen name {outside[0]!r}")


def _secret(dns: Section) -> tuple[bytes, str | None]:
    """The secret, and the file it came from (None: inline)."""
    inline = "tsig_secret" in dns.table
    from_file = "tsig_secret_file" in dns.table
    if inline and from_file:
        raise dns.error("tsig_secret_file", "give tsig_secret or tsig_secret_file, not both")
    if inline:
        return dns.take_parsed("tsig_secret", _base64), None
    if not from_file:
        raise dns.error("tsig_secret", "required key is missing (or give tsig_secret_file)")
    path = dns.take_parsed("tsig_secret_file", lambda raw: _resolve(dns.source, raw))
    try:
        return _base64(_read_secret_file(path)), str(path)
    except ValueError as exc:
        raise dns.error("tsig_secret_file", str(exc)) from None


def _resolve(source: str, raw: str) -> Path:
    if not raw:
        raise ValueError("must be a file path")
    path = Path(raw)
    if not path.is_absolute() and not source.startswith("<"):
        path = Path(source).parent / path  # relative to the config file
    return path


def _check_private(path: Path) -> None:
    """``path`` is a regular file only its owner may read.

    Raises:
        ValueError: naming what is wrong.
    """
    try:
        info = path.stat()
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc}") from None
    if not stat.S_ISREG(info.st_mode):
        raise ValueError(f"{path} is not a regular file")
    if info.st_mode & 0o077:
        mode = stat.S_IMODE(info.st_mode)
        raise ValueError(f"{path} is readable by group or others (mode {mode:04o}); chmod 600 it")


def _read_secret_file(path: Path) -> str:
    _check_private(path)
    try:
        text = path.read_text("utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read {path}: {exc}") from None
    match = _BIND_SECRET.search(text)
    return match.group(1) if match else text


def _base64(raw: str) -> bytes:
    try:
        secret = base64.b64decode(raw.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("the TSIG secret must be base64 (as tsig-keygen prints it)") from None
    if not secret:
        raise ValueError("the TSIG secret is empty")
    return secret
