"""``cozen-responder audit``: is every node distinguishable, in every protocol, on the wire?

Each node of the config is probed on its management address the way
``probe`` does it (so, as SolarWinds, LanGuard, nmap and impacket see it)
and the answers are checked against what :mod:`responder.identity` says the
node presents:

- ``dns``     PTR of the address at each of our listeners (``dns.listen``) is the
  node's FQDN, and its A points back (forward and reverse agree);
- ``nbns``    node status holds exactly the node's name table and MAC, and a
  query for its <20> (<00> without SMB) name answers its address;
- ``nbss``    the Cozen name is accepted as called name on 139;
- ``smb2``    every NEGOTIATE carries the node's ServerGuid and the configured
  highest dialect is chosen when offered;
- ``ntlm``    the CHALLENGE names the node (NetBIOS/DNS computer, domain, tree, OS version);
- ``smb1``    ServerName, DomainName, NativeOS and NativeLanMan, when SMB1 is on;
- ``public``  the cluster's public name appears in no protocol: not presented,
  not accepted as a called name, not resolved (at our listeners) to the address;
- ``unique``  no two probed hosts present the same name, ServerGuid or MAC;
- ``wins``    with ``netbios.wins_server``: the WINS server resolves the node's <00>
  name to its address;
- ``site-dns`` with ``[registration.dns]``: at the site's server (``server``, or
  the zone's SOA MNAME found as registration finds it) the node's FQDN has A
  (and AAAA) pointing at its management addresses and each address's PTR
  names the node; "-" with the reason when the server cannot be found.

With ``--public ADDRESS`` the production address is probed too: it must
present no node's Cozen name and share no ServerGuid or MAC with a node.
A cell is passed, failed (with the reasons) or not applicable.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from protocols.dns.message import RRType
from protocols.errors import MalformedMessage
from protocols.smb.negotiate import DIALECT_NAMES, Dialect
from responder.config import Config
from responder.identity import NodeIdentity, cozen_fqdn, node_identities
from responder.services.registration import NoServer, discover_primary
from responder.tools import probe as probing
from responder.tools import wire
from responder.tools.render import to_json as probes_json
from responder.tools.result import (
    DnsView,
    NameQueryView,
    ProbeResult,
    Status,
    presented_names,
)
from responder.tools.table import render_table

CHECKS = ("dns", "nbns", "nbss", "smb2", "ntlm", "smb1", "public", "unique", "wins", "site-dns")
PUBLIC_ROW = "(public)"


@dataclass(frozen=True, slots=True)
class Cell:
    """One check of one node: ``ok`` True (pass), False (fail: ``reasons``) or None (n/a)."""

    ok: bool | None
    reasons: tuple[str, ...] = ()

    @property
    def text(self) -> str:
        if self.ok is None:
            return "-" + "".join(f" ({reason})" for reason in self.reasons)
        return "ok" if self.ok else "FAIL " + "\n".join(self.reasons)


NA = Cell(None)


def _cell(reasons: Iterable[str]) -> Cell:
    found = tuple(reasons)
    return Cell(not found, found)


@dataclass(frozen=True, slots=True)
class Extras:
    """What the audit asks besides a probe: lookups at our listener, WINS and the site's DNS."""

    public_a: tuple[str, ...] = ()  # A of the public FQDN at our listener
    public_rcode: str = ""
    wins: NameQueryView | None = None
    site_dns: Cell = NA
    other_dns: tuple[DnsView, ...] = ()  # the same PTR/A lookups at dns.listen[1:]


@dataclass(frozen=True, slots=True)
class NodeAudit:
    node: str  # Cozen name, or PUBLIC_ROW
    address: str
    checks: tuple[tuple[str, Cell], ...]

    @property
    def ok(self) -> bool:
        return all(cell.ok is not False for _, cell in self.checks)


# -- the checks (sans-IO) -------------------------------------------------------------


def check_dns(node: NodeIdentity, dns: DnsView) -> Cell:
    """PTR is exactly the node's FQDN and its A points back (reasons name the server)."""
    at = f"at {dns.server}: " if dns.server else ""
    if dns.status is not Status.ANSWERED:
        return Cell(False, (f"{at}{dns.status}: {dns.detail}",))
    reasons = []
    if dns.ptr != (node.fqdn,):
        reasons.append(f"{at}PTR {', '.join(dns.ptr) or dns.rcode}, expected {node.fqdn}")
    elif not dns.points_back:
        forward = dns.forward[0]
        reasons.append(f"{at}A {node.fqdn} is {', '.join(forward.addresses) or forward.rcode}")
    return _cell(reasons)


def _merge(cells: Iterable[Cell]) -> Cell:
    """One cell for several listeners: the reasons of each failing one, by its server."""
    return _cell(reason for cell in cells for reason in cell.reasons)


def check_nbns(node: NodeIdentity, result: ProbeResult) -> Cell:
    """Name table and MAC as configured; the host name query answers the address."""
    nbns = result.nbns
    if nbns.status is not Status.ANSWERED:
        return Cell(False, (f"{nbns.status}: {nbns.detail}",))
    expected = {(o.name.name.upper(), o.name.suffix, o.group) for o in node.netbios_names}
    found = {(n.name.upper(), n.suffix, n.group) for n in nbns.names}
    reasons = [f"missing {name}<{suffix:02x}>" for name, suffix, _ in sorted(expected - found)]
    reasons += [f"extra {name}<{suffix:02x}>" for name, suffix, _ in sorted(found - expected)]
    if nbns.mac != node.mac.hex(":"):
        reasons.append(f"MAC {nbns.mac}, expected {node.mac.hex(':')}")
    query = nbns.query
    if query is not None and query.addresses != (node.address,):
        got = ", ".join(query.addresses) or query.detail or f"rcode {query.rcode}"
        reasons.append(f"query {query.name}: {got}")
    return _cell(reasons)


def check_nbss(config: Config, node: NodeIdentity, result: ProbeResult) -> Cell:
    """The Cozen name is accepted on 139."""
    if not config.smb.enabled:
        return NA
    nbss = result.nbss
    if nbss.status is not Status.ANSWERED:
        return Cell(False, (f"{nbss.status}: {nbss.detail}",))
    if node.cozen_name not in {n.upper() for n in nbss.accepted}:
        return Cell(False, (f"{node.cozen_name} not accepted as called name",))
    return Cell(True)


def check_smb2(config: Config, node: NodeIdentity, result: ProbeResult) -> Cell:
    """Every NEGOTIATE carries the ServerGuid; the widest offer gets the configured dialect."""
    if not config.smb.enabled:
        return NA
    smb2 = result.smb2
    if smb2.status is not Status.ANSWERED:
        return Cell(False, (f"{smb2.status}: {smb2.detail}",))
    wanted = str(node.server_guid)
    reasons = [
        f"{{{', '.join(n.offered)}}}: ServerGuid {n.server_guid or n.detail or n.status}"
        for n in smb2.negotiations
        if n.server_guid != wanted
    ]
    top = DIALECT_NAMES.get(Dialect(config.smb.max_dialect), "")
    widest = smb2.negotiations[-1].dialect if smb2.negotiations else ""
    if not reasons and widest != top:
        reasons.append(f"widest offer got {widest or 'nothing'}, expected {top}")
    if reasons:
        reasons.append(f"expected ServerGuid {wanted}")
    return _cell(reasons)


def check_ntlm(config: Config, node: NodeIdentity, result: ProbeResult) -> Cell:
    """The CHALLENGE's target info is the node's NtlmIdentity."""
    if not config.smb.enabled:
        return NA
    ntlm, want = result.ntlm, node.ntlm
    if ntlm.status is not Status.ANSWERED or ntlm.detail:
        return Cell(False, (f"{ntlm.status}: {ntlm.detail}",))
    pairs = (
        ("NetBIOS computer", ntlm.nb_computer_name, want.nb_computer_name),
        ("NetBIOS domain", ntlm.nb_domain_name, want.nb_domain_name),
        ("DNS computer", ntlm.dns_computer_name, want.dns_computer_name),
        ("DNS domain", ntlm.dns_domain_name, want.dns_domain_name),
        ("DNS tree", ntlm.dns_tree_name, want.dns_tree_name),
        ("OS version", ntlm.os_version, ".".join(str(p) for p in want.version)),
    )
    return _cell(f"{what} {got!r}, expected {exp!r}" for what, got, exp in pairs if got != exp)


def check_smb1(config: Config, node: NodeIdentity, result: ProbeResult) -> Cell:
    """ServerName, DomainName and the native strings, when SMB1 is served."""
    if not (config.smb.enabled and config.smb.smb1):
        return NA
    smb1 = result.smb1
    if smb1.status is not Status.ANSWERED or not smb1.dialect:
        return Cell(False, (f"{smb1.status}: {smb1.detail}",))
    pairs = (
        ("server", smb1.server_name, node.cozen_name),
        ("domain", smb1.domain_name, config.cluster.workgroup),
        ("native OS", smb1.native_os, config.smb.native_os),
        ("native LAN manager", smb1.native_lanman, config.smb.native_lanman),
    )
    return _cell(f"{what} {got!r}, expected {exp!r}" for what, got, exp in pairs if got != exp)


def check_public(config: Config, result: ProbeResult, extras: Extras) -> Cell:
    """The public name is presented, accepted and resolved nowhere on this address."""
    public = config.cluster.name
    reasons = [
        f"{protocol} presents {public}"
        for protocol, names in presented_names(result).items()
        if public in names
    ]
    if public in {n.upper() for n in result.nbss.accepted}:
        reasons.append(f"nbss accepts {public} as called name")
    if result.address in extras.public_a:
        fqdn = cozen_fqdn(public, config.cluster.dns_domain)
        reasons.append(f"dns resolves {fqdn} to {result.address}")
    return _cell(reasons)


def check_wins(config: Config, node: NodeIdentity, extras: Extras) -> Cell:
    """The WINS server resolves the node's <00> name to its address."""
    if config.netbios.wins_server is None or extras.wins is None:
        return NA
    query = extras.wins
    if query.status is Status.ANSWERED and query.addresses == (node.address,):
        return Cell(True)
    got = ", ".join(query.addresses) or query.detail or f"negative (rcode {query.rcode})"
    return Cell(False, (f"WINS {config.netbios.wins_server}: {query.name} -> {got}",))


# Identities that must differ between hosts: what each result presents of them.
_KEYS: tuple[tuple[str, Callable[[ProbeResult], Iterable[str]]], ...] = (
    ("name", lambda r: {n for names in presented_names(r).values() for n in names}),
    ("ServerGuid", lambda r: {n.server_guid for n in r.smb2.negotiations if n.server_guid}),
    ("MAC", lambda r: {r.nbns.mac} if r.nbns.mac else set()),
)


def check_unique(rows: list[tuple[str, ProbeResult]]) -> dict[str, Cell]:
    """Per row: the names, ServerGuids and MACs it shares with another row."""
    owners: dict[tuple[str, str], list[str]] = {}
    for row, result in rows:
        for key, values in _KEYS:
            for value in values(result):
                owners.setdefault((key, value), []).append(row)
    cells: dict[str, Cell] = {}
    for row, _ in rows:
        reasons = [
            f"shares {key} {value} with {', '.join(o for o in names if o != row)}"
            for (key, value), names in owners.items()
            if row in names and len(names) > 1
        ]
        cells[row] = _cell(reasons)
    return cells


def audit_node(
    config: Config, node: NodeIdentity, result: ProbeResult, extras: Extras
) -> dict[str, Cell]:
    """Every per-node check (all but ``unique``)."""
    return {
        "dns": _merge(check_dns(node, view) for view in (result.dns, *extras.other_dns)),
        "nbns": check_nbns(node, result),
        "nbss": check_nbss(config, node, result),
        "smb2": check_smb2(config, node, result),
        "ntlm": check_ntlm(config, node, result),
        "smb1": check_smb1(config, node, result),
        "public": check_public(config, result, extras),
        "wins": check_wins(config, node, extras),
        "site-dns": extras.site_dns,
    }


def audit_public(config: Config, result: ProbeResult) -> dict[str, Cell]:
    """The production address presents no node's Cozen name."""
    cozen = {n.cozen_name for n in config.nodes}
    reasons = [
        f"{protocol} presents {name}"
        for protocol, names in presented_names(result).items()
        for name in names
        if name in cozen
    ]
    return {"public": _cell(reasons)}


def assemble(
    config: Config,
    results: list[ProbeResult],
    extras: list[Extras],
    public: ProbeResult | None,
) -> list[NodeAudit]:
    """The audit table: one row per node (config order), then the public address if probed."""
    nodes = node_identities(config)
    rows = [(n.cozen_name, r) for n, r in zip(nodes, results, strict=True)]
    cells = [audit_node(config, n, r, e) for n, r, e in zip(nodes, results, extras, strict=True)]
    if public is not None:
        rows.append((PUBLIC_ROW, public))
        cells.append(audit_public(config, public))
    unique = check_unique(rows)
    audits = []
    for (row, result), found in zip(rows, cells, strict=True):
        found["unique"] = unique[row]
        audits.append(NodeAudit(row, result.address, tuple((c, found.get(c, NA)) for c in CHECKS)))
    return audits


# -- asking (asyncio) -----------------------------------------------------------------


async def registration_dns_server(
    config: Config, nameservers: Sequence[str] | None = None
) -> tuple[str, int] | str | None:
    """The site's DNS server of ``[registration.dns]``; a reason when it cannot be found.

    None: registration is not configured (``site-dns`` not applicable). With
    no ``server`` the zone's SOA MNAME is looked up through ``nameservers``
    (None: the system resolver), as the registration service does.
    """
    registration = config.registration
    if registration is None:
        return None
    if registration.server is not None:
        return str(registration.server), registration.port
    try:
        host = await discover_primary(registration.zone, nameservers)
    except NoServer as exc:
        return str(exc)
    return host, registration.port


async def check_site_dns(node: NodeIdentity, server: tuple[str, int], wait: float) -> Cell:
    """At ``server``: A (AAAA) of the FQDN is each management address, its PTR the FQDN."""
    host, port = server
    at = f"at {f'[{host}]' if ':' in host else host}:{port}: "
    reasons: list[str] = []
    pairs = ((node.ipv4, RRType.A), (node.ipv6, RRType.AAAA))
    for address, qtype in ((a, q) for a, q in pairs if a is not None):
        reverse = wire.reverse_name(str(address))
        try:
            rcode, _, found = await probing.dns_query(server, node.fqdn, qtype, wait)
            if not any(ipaddress.ip_address(a) == address for a in found):
                got = ", ".join(found) or f"missing ({rcode})"
                reasons.append(f"{at}{qtype.name} {node.fqdn} {got}, expected {address}")
            rcode, _, names = await probing.dns_query(server, reverse, RRType.PTR, wait)
            if [n.rstrip(".").lower() for n in names] != [node.fqdn]:
                got = ", ".join(names) or f"missing ({rcode})"
                reasons.append(f"{at}PTR {reverse} {got}, expected {node.fqdn}")
        except (probing.Silent, MalformedMessage) as exc:
            reasons.append(f"{at}{exc}")
    return _cell(reasons)


async def _extras(
    config: Config, node: NodeIdentity, wait: float, site_server: tuple[str, int] | str | None
) -> Extras:
    public_a, public_rcode = await _public_a(config, wait)
    other_listeners = [(str(a), config.dns.port) for a in config.dns.listen[1:]]
    others = [await probing.probe_dns(node.address, server, wait) for server in other_listeners]
    wins = None
    if config.netbios.wins_server is not None:
        name, suffix = node.cozen_name, 0x00
        server = str(config.netbios.wins_server)
        wins = await probing.name_query(server, config.netbios.wins_port, name, suffix, wait)
    site = NA
    if isinstance(site_server, str):
        site = Cell(None, (site_server,))
    elif site_server is not None:
        site = await check_site_dns(node, site_server, wait)
    return Extras(public_a, public_rcode, wins, site, tuple(others))


async def _public_a(config: Config, wait: float) -> tuple[tuple[str, ...], str]:
    """A of the public FQDN at each of our listeners: (every address answered, rcodes)."""
    public = cozen_fqdn(config.cluster.name, config.cluster.dns_domain)
    addresses: list[str] = []
    rcodes: list[str] = []
    for listen in config.dns.listen:
        try:
            rcode, _, found = await probing.dns_query(
                (str(listen), config.dns.port), public, RRType.A, wait
            )
        except (probing.Silent, MalformedMessage):
            rcode, found = "silent", ()
        addresses += found
        rcodes.append(rcode)
    return tuple(addresses), ",".join(rcodes)


async def gather(
    config: Config, public: str | None, wait: float, concurrency: int
) -> tuple[list[ProbeResult], list[Extras], ProbeResult | None]:
    """Probe every node (and ``public``), and ask the extra lookups; in config order."""
    nodes = node_identities(config)
    options = [_options(config, node.cozen_name, wait) for node in nodes]
    gate = asyncio.Semaphore(concurrency)
    site_server = await registration_dns_server(config)

    async def one(node: NodeIdentity, opts: probing.ProbeOptions) -> tuple[ProbeResult, Extras]:
        async with gate:
            return await probing.probe(node.address, opts), await _extras(
                config, node, wait, site_server
            )

    pairs = await asyncio.gather(*(one(n, o) for n, o in zip(nodes, options, strict=True)))
    public_result = None
    if public is not None:
        public_result = await probing.probe(public, _options(config, None, wait))
    return [p[0] for p in pairs], [p[1] for p in pairs], public_result


def _options(config: Config, expect: str | None, timeout: float) -> probing.ProbeOptions:
    return probing.ProbeOptions(
        timeout=timeout,
        dns_server=(str(config.dns.listen[0]), config.dns.port),
        public_name=config.cluster.name,
        expect=expect,
        nbns_port=config.netbios.port,
        nbss_port=config.smb.netbios_port,
        smb_port=config.smb.port,
    )


# -- output ---------------------------------------------------------------------------


def to_table(audits: list[NodeAudit]) -> str:
    """node by check, "ok" / "FAIL reason" / "-"."""
    header = ("node", "address", *CHECKS)
    rows = [(a.node, a.address, *(cell.text for _, cell in a.checks)) for a in audits]
    verdict = "audit: pass" if all(a.ok for a in audits) else "audit: FAIL"
    return render_table(header, rows) + "\n" + verdict


def to_json(audits: list[NodeAudit], results: list[ProbeResult]) -> str:
    """``{"ok": ..., "nodes": [...], "probes": [...]}``."""
    nodes: list[dict[str, Any]] = [
        {
            "node": a.node,
            "address": a.address,
            "ok": a.ok,
            "checks": {name: asdict(cell) for name, cell in a.checks},
        }
        for a in audits
    ]
    probes = json.loads(probes_json(results))["results"]
    return json.dumps({"ok": all(a.ok for a in audits), "nodes": nodes, "probes": probes}, indent=2)
