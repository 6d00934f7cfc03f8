"""Configuration: TOML in, immutable validated objects out.

Everything the daemon serves is decided here, once per load: names are checked
and upper-cased, addresses parsed, per-node identity (MAC, SMB ServerGuid)
derived so it is stable across restarts. A bad file raises
:class:`ConfigError`, whose message is the one line the CLI prints:
``FILE: KEY: reason``. Unknown keys are errors, never ignored.

The contract (which keys exist and what they mean) lives in the design
document; this module is its single implementation.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import tomllib
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any

from protocols.ratelimit import REFLECTION_PORTS
from protocols.smb.negotiate import DIALECT_NAMES, Dialect
from responder._config_registration import DnsRegistration, parse_registration
from responder._toml import ConfigError as ConfigError  # what every caller catches
from responder._toml import (
    IPAddress,
    Section,
    guid,
    host_port,
    ipv4,
    mac,
    unicast_ip,
    unicast_ipv4,
    unicast_ipv6,
)
from responder.capture.options import (
    NO_FILTER,
    NO_ROTATION,
    CaptureFilter,
    Rotation,
    parse_filter,
    parse_rotation,
)
from responder.identity import cozen_fqdn, derived_mac, derived_server_guid

EMBEDDED_DEFAULT = "<embedded default>"

# A Cozen name must be a NetBIOS name and a DNS label at once, so the safe
# intersection: letters, digits and inner hyphens (RFC 1123 §2.1, MS naming rules).
_HOST_LABEL = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?$")
_DNS_LABEL = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?$")
# Characters Windows refuses in NetBIOS names (workgroups may hold spaces, dots, ...).
_NETBIOS_FORBIDDEN = set('\\/:*?"<>|')


@dataclass(frozen=True, slots=True)
class Cluster:
    name: str  # shared public NetBIOS name, upper-case; never served
    dns_domain: str  # lower-case, no trailing dot
    workgroup: str  # upper-case NetBIOS workgroup / domain


@dataclass(frozen=True, slots=True)
class Node:
    cozen_name: str  # upper-case NetBIOS form, also the DNS label (lower-cased)
    management_ip: ipaddress.IPv4Address
    management_ipv6: ipaddress.IPv6Address | None
    mac: bytes  # 6 bytes: NBSTAT unit ID
    server_guid: uuid.UUID  # SMB ServerGuid

    @property
    def addresses(self) -> tuple[IPAddress, ...]:
        if self.management_ipv6 is None:
            return (self.management_ip,)
        return (self.management_ip, self.management_ipv6)


@dataclass(frozen=True, slots=True)
class DnsSettings:
    listen: tuple[IPAddress, ...]
    port: int
    fast_path: bool  # precomputed answers; off = every query takes the general path
    ttl: int
    negative_ttl: int  # SOA MINIMUM, the TTL of NXDOMAIN/NODATA answers
    ns_name: str  # NS / SOA MNAME; answered with the listen addresses when in-zone
    hostmaster: str  # SOA RNAME as a domain name
    refresh: int
    retry: int
    expire: int
    max_tcp_connections: int  # per listen address
    tcp_idle_timeout: float  # seconds
    # RFC 5001 NSID and CHAOS TXT id.server./hostname.bind.; None: not told
    identity: str | None = None
    version: str | None = None  # CHAOS TXT version.bind./version.server.; None: REFUSED


@dataclass(frozen=True, slots=True)
class NetbiosSettings:
    port: int  # NBNS, UDP 137
    ttl: int  # seconds granted in positive answers and asked for in registrations
    fast_path: bool  # precomputed query / node status answers
    wins_server: ipaddress.IPv4Address | None  # H-node registration target
    wins_port: int
    broadcast: bool  # bind subnet broadcast addresses and claim/release names by broadcast


@dataclass(frozen=True, slots=True)
class SmbSettings:
    enabled: bool  # serve NBSS (139) and SMB (445); also decides the <20> name
    smb1: bool  # SMB1 NEGOTIATE (nmap smb-os-discovery needs it)
    null_session: bool  # anonymous logon succeeds as a null session, as Windows allows
    port: int  # direct TCP, 445
    netbios_port: int  # NBSS, 139
    max_dialect: int  # highest SMB2 dialect offered, e.g. 0x0311
    max_connections: int  # per management address
    idle_timeout: float  # seconds before an unauthenticated connection is closed
    max_message_size: int  # pre-authentication PDU cap
    os_version: tuple[int, int, int]  # NTLM VERSION: major, minor, build
    native_os: str
    native_lanman: str


@dataclass(frozen=True, slots=True)
class HealthSettings:
    listen: tuple[str, int] | None  # /livez, /readyz, /metrics, /status, /; None = off
    probe_interval: int = 30  # seconds between self-probe rounds; 0 = no self-probes
    audit_interval: int = 0  # seconds between audit runs (as `audit`); 0 = no audit


@dataclass(frozen=True, slots=True)
class DaemonSettings:
    workers: int  # processes sharing each port with SO_REUSEPORT
    freebind: bool = False  # bind addresses not (yet) present: a VRRP standby (ip(7) IP_FREEBIND)
    ip_ttl: int = 128  # TTL / hop limit of every answer: Windows' 128 (Linux sends 64)


@dataclass(frozen=True, slots=True)
class LimitSettings:
    """``[limits]``: reflection filter and response rate limiting (protocols/ratelimit.py)."""

    reflection_ports: tuple[int, ...]  # source ports never answered (port 0 never is)
    responses_per_second: int  # per source prefix; 0 = rate limiting off
    burst: int  # answers a quiet source may get at once
    slip: int  # DNS: every slip-th limited answer goes out truncated (TC=1); 0 = none
    nbns_status_per_second: int  # node status answers per second per prefix (<= the above)
    ipv4_prefix: int
    ipv6_prefix: int
    exempt: tuple[str, ...]  # networks never limited (monitoring, scanners)
    log_only: bool  # count and log what would be limited, send it anyway
    table_size: int  # source buckets per service, a power of two


@dataclass(frozen=True, slots=True)
class CaptureSettings:
    """``[capture]`` (or ``run --pcap``): record every exchange as pcapng (responder/capture)."""

    file: str | None = None  # None: not recording
    rotate: Rotation = NO_ROTATION
    filter: CaptureFilter = NO_FILTER
    queue: int = 65536  # records waiting for the writer thread; beyond, dropped and counted


@dataclass(frozen=True, slots=True)
class Config:
    source: str  # file path, or EMBEDDED_DEFAULT
    cluster: Cluster
    daemon: DaemonSettings
    health: HealthSettings
    dns: DnsSettings
    netbios: NetbiosSettings
    smb: SmbSettings
    nodes: tuple[Node, ...]
    limits: LimitSettings
    registration: DnsRegistration | None = None  # [registration.dns]; None: off
    capture: CaptureSettings = CaptureSettings()


def _netbios_name(raw: str) -> str:
    if not 1 <= len(raw) <= 15:
        raise ValueError(f"{raw!r} must be 1 to 15 characters (NetBIOS)")
    if not raw.isascii() or not raw.isprintable():
        raise ValueError(f"{raw!r} must be printable ASCII (NetBIOS)")
    bad = sorted(set(raw) & _NETBIOS_FORBIDDEN)
    if bad or raw.startswith((".", " ")):
        raise ValueError(f"{raw!r} has a character NetBIOS forbids: {''.join(bad) or raw[0]!r}")
    return raw.upper()


def _host_name(raw: str) -> str:
    """A name that must be a NetBIOS name and a DNS host label at once."""
    name = _netbios_name(raw)
    if not _HOST_LABEL.match(name):
        raise ValueError(f"{raw!r} must use letters, digits and inner hyphens only")
    if name.isdigit():
        raise ValueError(f"{raw!r} must not be all digits")
    return name


def _dns_name(raw: str) -> str:
    name = raw.lower().removesuffix(".")
    if not name or len(name) > 253:
        raise ValueError(f"{raw!r} must be a domain name of 1 to 253 characters")
    for label in name.split("."):
        if not 1 <= len(label) <= 63 or not _DNS_LABEL.match(label):
            raise ValueError(f"{raw!r} has an invalid DNS label {label!r}")
    return name


def _parse_cluster(section: Section) -> Cluster:
    cluster = Cluster(
        name=section.take_parsed("name", _host_name),
        dns_domain=section.take_parsed("dns_domain", _dns_name),
        workgroup=section.take_parsed("workgroup", _netbios_name),
    )
    section.finish()
    return cluster


def _parse_node(section: Section, cluster: Cluster) -> Node:
    cozen = section.take_parsed("cozen_name", _host_name)
    if cozen == cluster.name:
        raise section.error("cozen_name", f"{cozen!r} equals the public name cluster.name")
    if cozen == cluster.workgroup:
        raise section.error("cozen_name", f"{cozen!r} equals cluster.workgroup")
    node = Node(
        cozen_name=cozen,
        management_ip=section.take_parsed("management_ip", unicast_ipv4),
        management_ipv6=section.take_parsed_optional("management_ipv6", unicast_ipv6),
        mac=section.take_parsed("mac", mac, derived_mac(cozen)),
        server_guid=section.take_parsed(
            "server_guid", guid, derived_server_guid(cluster.name, cozen)
        ),
    )
    section.finish()
    return node


def _parse_nodes(source: str, raw: object, cluster: Cluster) -> tuple[Node, ...]:
    if not isinstance(raw, list) or not raw:
        raise ConfigError(source, "node", "at least one [[node]] table is required")
    nodes = tuple(_parse_node(Section(source, f"node[{i}]", t), cluster) for i, t in enumerate(raw))
    _reject_duplicates(source, "cozen_name", [n.cozen_name for n in nodes])
    # One list per key, indexed like the nodes: node[i] in a message is the i-th [[node]].
    _reject_duplicates(source, "management_ip", [n.management_ip for n in nodes])
    _reject_duplicates(source, "management_ipv6", [n.management_ipv6 for n in nodes])
    _reject_duplicates(source, "mac", [n.mac.hex(":") for n in nodes])
    _reject_duplicates(source, "server_guid", [n.server_guid for n in nodes])
    _reject_stray_loopback(source, nodes)
    return nodes


def _reject_duplicates(source: str, key: str, values: Iterable[object]) -> None:
    """``values[i]`` is node[i]'s; None (an optional key left out) is never a duplicate."""
    seen: dict[object, int] = {}
    for index, value in enumerate(values):
        if value is not None and value in seen:
            raise ConfigError(
                source, f"node[{index}].{key}", f"duplicate value {value!s} (node[{seen[value]}])"
            )
        seen.setdefault(value, index)


def _reject_stray_loopback(source: str, nodes: tuple[Node, ...]) -> None:
    """Loopback management addresses only in a lab, where every node's IPv4 one is loopback.

    Nobody else can reach a loopback address, so among real ones it is a typo
    that would leave that node unanswered on the network. A node's IPv4
    address decides: a lab may still give its nodes any IPv6 address.
    """
    real = next((i for i, n in enumerate(nodes) if not n.management_ip.is_loopback), None)
    if real is None:
        return
    for index, node in enumerate(nodes):
        for address in node.addresses:
            if address.is_loopback:
                raise ConfigError(
                    source,
                    f"node[{index}].{_address_key(address)}",
                    f"'{address}' is loopback but node[{real}].management_ip "
                    f"'{nodes[real].management_ip}' is not: loopback is for all-loopback labs only",
                )


def _address_key(address: IPAddress) -> str:
    return "management_ip" if address.version == 4 else "management_ipv6"


def _parse_listen(section: Section, nodes: tuple[Node, ...]) -> tuple[IPAddress, ...]:
    if "listen" not in section.table:
        return tuple(a for n in nodes for a in n.addresses)
    raw = section.take("listen", list)
    if not raw or not all(isinstance(item, str) for item in raw):
        raise section.error("listen", "must be a non-empty list of IP address strings")
    try:
        addresses = tuple(unicast_ip(item) for item in raw)
    except ValueError as exc:
        raise section.error("listen", str(exc)) from None
    if len(set(addresses)) != len(addresses):
        raise section.error("listen", "lists an address twice")
    return addresses


def _server_text(raw: str) -> str:
    if not 0 < len(raw.encode()) <= 255 or not raw.isprintable():
        raise ValueError("must be 1 to 255 bytes of printable text")
    return raw


def _server_identity(section: Section) -> dict[str, str | None]:
    """``identity`` (default: the host name), ``version`` (default: none); both
    off with ``server_identity = false``."""
    identity = section.take_parsed("identity", _server_text, socket.gethostname())
    version = section.take_parsed_optional("version", _server_text)
    if not section.take("server_identity", bool, True):
        return {"identity": None, "version": None}
    return {"identity": identity, "version": version}


def _parse_dns(section: Section, cluster: Cluster, nodes: tuple[Node, ...]) -> DnsSettings:
    domain = cluster.dns_domain
    dns = DnsSettings(
        listen=_parse_listen(section, nodes),
        port=section.take_int("port", 53, 1, 65535),
        fast_path=section.take("fast_path", bool, True),
        ttl=section.take_int("ttl", 300, 0, 2**31 - 1),
        negative_ttl=section.take_int("negative_ttl", 60, 0, 2**31 - 1),
        ns_name=section.take_parsed("ns_name", _dns_name, f"cozen-ns.{domain}"),
        hostmaster=section.take_parsed("hostmaster", _dns_name, f"hostmaster.{domain}"),
        refresh=section.take_int("refresh", 3600, 1, 2**31 - 1),
        retry=section.take_int("retry", 600, 1, 2**31 - 1),
        expire=section.take_int("expire", 86400, 1, 2**31 - 1),
        max_tcp_connections=section.take_int("max_tcp_connections", 256, 1, 65535),
        tcp_idle_timeout=float(section.take_int("tcp_idle_timeout", 10, 1, 3600)),
        **_server_identity(section),
    )
    section.finish()
    taken = {
        cozen_fqdn(name, cluster.dns_domain)
        for name in (cluster.name, *(n.cozen_name for n in nodes))
    }
    if dns.ns_name in taken:
        raise section.error("ns_name", f"{dns.ns_name!r} is already a node's or the public name")
    return dns


def _parse_netbios(section: Section) -> NetbiosSettings:
    netbios = NetbiosSettings(
        port=section.take_int("port", 137, 1, 65535),
        ttl=section.take_int("ttl", 300_000, 1, 2**31 - 1),
        fast_path=section.take("fast_path", bool, True),
        wins_server=section.take_parsed_optional("wins_server", ipv4),
        wins_port=section.take_int("wins_port", 137, 1, 65535),
        broadcast=section.take("broadcast", bool, True),
    )
    section.finish()
    return netbios


_DIALECTS = {name: int(value) for value, name in DIALECT_NAMES.items()}


def _dialect(raw: str) -> int:
    if raw not in _DIALECTS:
        raise ValueError(f"{raw!r} is not one of {', '.join(_DIALECTS)}")
    return _DIALECTS[raw]


def _os_version(raw: str) -> tuple[int, int, int]:
    parts = raw.split(".")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise ValueError(f"{raw!r} must be MAJOR.MINOR.BUILD, e.g. 10.0.20348")
    major, minor, build = (int(p) for p in parts)
    if major > 255 or minor > 255 or build > 65535:
        raise ValueError(f"{raw!r} is out of range (255.255.65535)")
    return major, minor, build


def _parse_smb(section: Section) -> SmbSettings:
    smb = SmbSettings(
        enabled=section.take("enabled", bool, True),
        smb1=section.take("smb1", bool, True),
        null_session=section.take("null_session", bool, True),
        port=section.take_int("port", 445, 1, 65535),
        netbios_port=section.take_int("netbios_port", 139, 1, 65535),
        max_dialect=section.take_parsed("max_dialect", _dialect, int(Dialect.SMB311)),
        max_connections=section.take_int("max_connections", 64, 1, 65535),
        idle_timeout=float(section.take_int("idle_timeout", 10, 1, 3600)),
        max_message_size=section.take_int("max_message_size", 65536, 4096, 16 * 1024 * 1024),
        os_version=section.take_parsed("os_version", _os_version, (10, 0, 20348)),
        native_os=section.take("native_os", str, "Windows Server 2022 Standard 20348"),
        native_lanman=section.take("native_lanman", str, "Windows Server 2022 Standard 6.3"),
    )
    section.finish()
    return smb


def _parse_health(section: Section) -> HealthSettings:
    health = HealthSettings(
        listen=section.take_parsed_optional("listen", host_port),
        probe_interval=section.take_int("probe_interval", 30, 0, 86400),
        audit_interval=section.take_int("audit_interval", 0, 0, 86400),
    )
    section.finish()
    return health


def _parse_capture(section: Section) -> CaptureSettings:
    capture = CaptureSettings(
        file=section.take_optional("file", str),
        rotate=section.take_parsed("rotate", parse_rotation, NO_ROTATION),
        filter=section.take_parsed("filter", parse_filter, NO_FILTER),
        queue=section.take_int("queue", 65536, 16, 16 * 1024 * 1024),
    )
    section.finish()
    return capture


def _parse_daemon(section: Section) -> DaemonSettings:
    daemon = DaemonSettings(
        workers=section.take_int("workers", 1, 1, 64),
        freebind=section.take("freebind", bool, False),
        ip_ttl=section.take_int("ip_ttl", 128, 1, 255),
    )
    section.finish()
    return daemon


# (transport, address, port) of one socket ``run`` binds
Listener = tuple[str, IPAddress, int]


def _listeners(config: Config) -> Iterator[tuple[Listener, str]]:
    """Every socket the services bind, with the key that sets its port, in start order."""
    for address in config.dns.listen:
        yield ("udp", address, config.dns.port), "dns.port"
        yield ("tcp", address, config.dns.port), "dns.port"
    for node in config.nodes:  # NBNS and SMB serve the IPv4 management address
        if config.smb.enabled:
            yield ("tcp", node.management_ip, config.smb.netbios_port), "smb.netbios_port"
            yield ("tcp", node.management_ip, config.smb.port), "smb.port"
        yield ("udp", node.management_ip, config.netbios.port), "netbios.port"
    if config.health.listen is not None:
        host, port = config.health.listen
        yield ("tcp", ipaddress.ip_address(host), port), "health.listen"


def _reject_port_clashes(config: Config) -> None:
    """Two services on one address, port and transport: ``run`` could bind only the first.

    Reported under the later key (the bind that would fail), naming the earlier one.
    """
    seen: dict[Listener, str] = {}
    for listener, key in _listeners(config):
        earlier = seen.get(listener) or _wildcard_clash(seen, listener)
        if earlier is not None:
            transport, address, port = listener
            where = f"{transport.upper()} {_host(address)}:{port}"
            raise ConfigError(
                config.source, key, f"clashes with {earlier} on {where}: run cannot bind both"
            )
        seen[listener] = key


def _wildcard_clash(seen: dict[Listener, str], listener: Listener) -> str | None:
    """The key of a listener an unspecified-address bind (only health.listen) would collide with.

    An IPv6 wildcard socket is dual-stack on Linux by default, so it takes IPv4 too.
    """
    transport, address, port = listener
    if not address.is_unspecified:
        return None
    for (kind, other, other_port), key in seen.items():
        same_family = other.version == address.version or address.version == 6
        if kind == transport and other_port == port and same_family:
            return key
    return None


def _host(address: IPAddress) -> str:
    return f"[{address}]" if address.version == 6 else str(address)


def _int_list(
    section: Section, name: str, default: tuple[int, ...], low: int, high: int
) -> tuple[int, ...]:
    raw = section.take(name, list, list(default))
    for item in raw:
        if not isinstance(item, int) or isinstance(item, bool) or not low <= item <= high:
            raise section.error(name, f"must be a list of integers {low} to {high}, got {item!r}")
    return tuple(dict.fromkeys(raw))


def _networks(section: Section, name: str) -> tuple[str, ...]:
    raw = section.take(name, list, [])
    found = []
    for item in raw:
        if not isinstance(item, str):
            raise section.error(
                name, f'must be a list of networks like "198.18.0.0/24", got {item!r}'
            )
        try:
            found.append(str(ipaddress.ip_network(item)))
        except ValueError as exc:
            raise section.error(name, f"{item!r} is not a network: {exc}") from None
    return tuple(found)


def _parse_limits(section: Section) -> LimitSettings:
    limits = LimitSettings(
        reflection_ports=_int_list(section, "reflection_ports", REFLECTION_PORTS, 1, 65535),
        responses_per_second=section.take_int("responses_per_second", 200, 0, 10_000_000),
        burst=section.take_int("burst", 200, 1, 10_000_000),
        slip=section.take_int("slip", 2, 0, 10),
        nbns_status_per_second=section.take_int("nbns_status_per_second", 20, 1, 10_000_000),
        ipv4_prefix=section.take_int("ipv4_prefix", 32, 8, 32),
        ipv6_prefix=section.take_int("ipv6_prefix", 56, 16, 128),
        exempt=_networks(section, "exempt"),
        log_only=section.take("log_only", bool, False),
        table_size=section.take_int("table_size", 16384, 64, 1 << 22),
    )
    section.finish()
    size = limits.table_size
    if size & (size - 1):
        raise section.error("table_size", f"must be a power of two, got {size}")
    return limits


def parse_config(document: dict[str, Any], source: str) -> Config:
    """Validate a parsed TOML document.

    Raises:
        ConfigError: naming the first invalid key and why.
    """
    top = Section(source, "", document)
    cluster = _parse_cluster(top.sub("cluster"))
    nodes = _parse_nodes(source, top.table.pop("node", None), cluster)
    dns = _parse_dns(top.sub("dns"), cluster, nodes)
    netbios = _parse_netbios(top.sub("netbios"))
    smb = _parse_smb(top.sub("smb"))
    daemon = _parse_daemon(top.sub("daemon"))
    health = _parse_health(top.sub("health"))
    limits = _parse_limits(top.sub("limits"))
    registration = parse_registration(
        top.sub("registration"),
        cluster.dns_domain,
        [cozen_fqdn(n.cozen_name, cluster.dns_domain) for n in nodes],
        [a for n in nodes for a in n.addresses],
        dns.ttl,
    )
    capture = _parse_capture(top.sub("capture"))
    top.finish()
    config = Config(
        source=source,
        cluster=cluster,
        daemon=daemon,
        health=health,
        dns=dns,
        netbios=netbios,
        smb=smb,
        nodes=nodes,
        limits=limits,
        registration=registration,
        capture=capture,
    )
    _reject_port_clashes(config)
    return config


def with_capture_options(config: Config, args: object) -> Config:
    """``config`` with ``run --pcap``, ``--pcap-rotate`` and ``--pcap-filter`` applied.

    Raises:
        ConfigError: a rotation or filter option is invalid.
    """
    capture = config.capture
    try:
        if getattr(args, "pcap", None):
            capture = replace(capture, file=args.pcap)  # type: ignore[attr-defined]
        if getattr(args, "pcap_rotate", None):
            capture = replace(capture, rotate=parse_rotation(args.pcap_rotate))  # type: ignore[attr-defined]
        if getattr(args, "pcap_filter", None):
            capture = replace(capture, filter=parse_filter(args.pcap_filter))  # type: ignore[attr-defined]
    except ValueError as exc:
        raise ConfigError("<command line>", "--pcap", str(exc)) from None
    return replace(config, capture=capture)


def load_config(path: str | None) -> Config:
    """Read and validate ``path``, or the embedded default config when None.

    Raises:
        ConfigError: the file cannot be read, is not TOML, or a key is invalid.
    """
    if path is None:
        text = resources.files("responder").joinpath("default.toml").read_text("utf-8")
        source = EMBEDDED_DEFAULT
    else:
        source = path
        try:
            text = Path(path).read_text("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(source, "<file>", f"cannot read: {exc}") from None
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, "<toml>", f"invalid TOML: {exc}") from None
    return parse_config(document, source)
