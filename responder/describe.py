"""The text ``cozen-responder check`` (and ``run``, at start) prints: what a config serves.

Every name and number comes from the validated config and from
:mod:`responder.identity`, never spelled out again here, so the text shows
exactly what the services will present.
"""

from __future__ import annotations

import base64

from protocols.dns.ownership import RecordSet, covering_zone
from protocols.smb.negotiate import DIALECT_NAMES
from responder.config import Config, NetbiosSettings, SmbSettings
from responder.identity import NodeIdentity, dns_registrations, node_identities

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
        *_registration_lines(config, nodes),
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


def _registration_lines(config: Config, nodes: tuple[NodeIdentity, ...]) -> list[str]:
    """One line per zone (server, key, algorithm, conflict mode), then each record set."""
    reg = config.registration
    if reg is None:
        return ["registration: off"]
    server = (
        f"{reg.server}:{reg.port}"
        if reg.server is not None
        else f"the zone's SOA MNAME (system resolver), port {reg.port}"
    )
    secret = f"secret file {reg.tsig_secret_file}" if reg.tsig_secret_file else "inline secret"
    signer = f"key {reg.tsig_name}. {reg.tsig_algorithm} ({secret})"
    if reg.auth == "gss-tsig":
        creds = f"keytab {reg.keytab}" if reg.keytab else "credential cache"
        target = reg.server_principal or "DNS/<SOA MNAME>"
        signer = f"gss-tsig as {reg.principal} ({creds}) to {target}, rekey {reg.rekey_seconds} s"
    lines = [
        f"registration: zone {zone} via {server}, {signer}, conflict {reg.conflict}, "
        f"ttl {reg.ttl}, refresh {reg.refresh_seconds} s, "
        f"records {'withdrawn' if reg.withdraw_on_stop else 'kept'} at stop"
        for zone in (reg.zone, *reg.reverse_zones)
    ]
    lines += [_record_set_line(rs) for rs in dns_registrations(config)]
    for node in nodes:
        for address in (node.ipv4, node.ipv6):
            if (
                address is not None
                and covering_zone(address.reverse_pointer, reg.reverse_zones) is None
            ):
                lines.append(f"  {node.cozen_name:<16}{address}: no reverse zone holds it, no PTR")
    return lines


def _record_set_line(rs: RecordSet) -> str:
    records = ", ".join(f"{kind} {text}" for kind, text in rs.records)
    dhcid = base64.b64encode(rs.dhcid).decode()
    return f"  {rs.node:<16}{rs.zone:<26}{rs.owner} {records}, DHCID {dhcid}"
