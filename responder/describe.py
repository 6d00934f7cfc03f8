"""The text ``cozen-responder check`` (and ``run``, at start) prints: what a config serves.

Every name and number comes from the validated config and from
:mod:`responder.identity`, never spelled out again here, so the text shows
exactly what the services will present.
"""

from __future__ import annotations

from protocols.smb.negotiate import DIALECT_NAMES
from responder.config import Config, NetbiosSettings, SmbSettings
from responder.identity import NodeIdentity, node_identities

_NODE_COLUMNS = f"{'node':<16}{'management':<18}{'fqdn':<34}{'mac':<19}server guid"


def describe(config: Config) -> str:
    """The human-readable table of what ``config`` serves."""
    cluster, dns = config.cluster, config.dns
    nodes = node_identities(config)
    listen = ", ".join(str(a) for a in dns.listen)
    lines = [
        f"config {config.source}: cluster {cluster.name} (never served), "
        f"domain {cluster.dns_domain}, workgroup {cluster.workgroup}",
        f"dns: {listen} port {dns.port} udp+tcp, authoritative for {cluster.dns_domain} "
        f"and each node's reverse name; fast path {_on(dns.fast_path)}",
        _smb_line(config.smb),
        f"health: {_endpoint(config.health.listen)}",
        _NODE_COLUMNS,
        *(_node_line(node) for node in nodes),
        _nbns_line(config.netbios),
        *(_names_line(node) for node in nodes),
    ]
    return "\n".join(lines)


def _on(flag: bool) -> str:
    return "on" if flag else "off"


def _node_line(node: NodeIdentity) -> str:
    address = str(node.ipv4) if node.ipv6 is None else f"{node.ipv4} {node.ipv6}"
    return (
        f"{node.cozen_name:<16}{address:<17} {node.fqdn:<33} "
        f"{node.mac.hex(':'):<19}{node.server_guid}"
    )


def _smb_line(smb: SmbSettings) -> str:
    if not smb.enabled:
        return "smb: off (no NBSS 139, no SMB 445)"
    dialects = [name for value, name in DIALECT_NAMES.items() if value <= smb.max_dialect]
    if smb.smb1:
        dialects.insert(0, "NT LM 0.12")
    version = ".".join(str(part) for part in smb.os_version)
    return (
        f"smb: each node's management address, nbss tcp {smb.netbios_port} + direct tcp "
        f"{smb.port}; dialects {', '.join(dialects)}; os {version} ({smb.native_os}); "
        f"null session {'allowed' if smb.null_session else 'denied'}; "
        f"max {smb.max_connections} connections per listener, idle {smb.idle_timeout:g} s"
    )


def _nbns_line(netbios: NetbiosSettings) -> str:
    wins = (
        f"WINS {netbios.wins_server}:{netbios.wins_port} (H-node)"
        if netbios.wins_server
        else "no WINS (B-node)"
    )
    return (
        f"nbns: udp port {netbios.port} on each management address, "
        f"broadcast {_on(netbios.broadcast)}, ttl {netbios.ttl}, {wins}; "
        f"fast path {_on(netbios.fast_path)}"
    )


def _names_line(node: NodeIdentity) -> str:
    names = ", ".join(
        f"{entry.name}{' group' if entry.group else ''}" for entry in node.netbios_names
    )
    return f"  {node.cozen_name:<16}{node.address:<18}{names}"


def _endpoint(endpoint: tuple[str, int] | None) -> str:
    if endpoint is None:
        return "off"
    host, port = endpoint
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{port}/healthz /status /metrics"
