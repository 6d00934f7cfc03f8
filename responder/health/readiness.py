"""Readiness: may a load balancer or an operator count on this daemon right now?

Ready means, for every node and every protocol it serves:

- every configured listener is bound, on an address the host still has
  (an address removed from its interface leaves the socket bound but deaf);
- none of the node's NetBIOS names is in conflict;
- the latest self-probe round (:mod:`responder.health.probes`) passed.

The DNS listeners serve every node's names, so a DNS listener problem counts
against every node. Presence is read from the kernel's address table
(:mod:`responder.net.addresses`): the NBNS service's rtnetlink watch when it
has one open, else one fresh read per assessment. Not by trying to bind: with
``net.ipv4.ip_nonlocal_bind=1`` (common beside keepalived) or IP_FREEBIND any
address binds, so a bind test would call every address present. An
unspecified (wildcard) listen address is always present. A failed reload does
not make the daemon unready (the previous config keeps serving) but is
reported in :meth:`Readiness.as_text` and /status.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Iterable
from dataclasses import dataclass

from responder.config import Config
from responder.health.probes import ProbeResult, SelfProbes
from responder.health.view import DaemonView, ReloadRecord
from responder.identity import NodeIdentity, node_identities
from responder.net.addresses import AddressWatch, present_now


@dataclass(frozen=True, slots=True)
class Readiness:
    """Per node, per protocol: the reasons it is failing (empty: ok)."""

    nodes: dict[str, dict[str, list[str]]]  # Cozen name -> protocol -> reasons
    addresses: dict[str, str]  # Cozen name -> management address
    reload: ReloadRecord
    probes_run: bool

    @property
    def ready(self) -> bool:
        return all(not reasons for node in self.nodes.values() for reasons in node.values())

    def as_dict(self) -> dict[str, object]:
        """The /readyz JSON body."""
        return {
            "ready": self.ready,
            "nodes": {
                name: {
                    "address": self.addresses[name],
                    **{p: _state(reasons) for p, reasons in protocols.items()},
                }
                for name, protocols in self.nodes.items()
            },
            "last_reload": self.reload.as_dict(),
        }

    def as_text(self) -> str:
        """The ``/readyz?verbose`` form: one line per node and protocol."""
        lines = [f"[{'+' if self.ready else '-'}] ready: {'yes' if self.ready else 'no'}"]
        for name, protocols in self.nodes.items():
            for protocol, reasons in protocols.items():
                mark = "+" if not reasons else "-"
                detail = "ok" if not reasons else "failing: " + "; ".join(reasons)
                lines.append(f"[{mark}] {name} ({self.addresses[name]}) {protocol}: {detail}")
        if not self.probes_run:
            lines.append("[ ] self-probes: not run (probe_interval = 0)")
        lines.append(_reload_line(self.reload))
        return "\n".join(lines) + "\n"


def _state(reasons: list[str]) -> dict[str, object]:
    return {"status": "ok"} if not reasons else {"status": "failing", "reasons": reasons}


def _reload_line(record: ReloadRecord) -> str:
    if record.last_ok is None:
        return "[+] reload: none since start"
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.last_at or 0))
    if record.last_ok:
        return f"[+] last reload: ok at {when}"
    return f"[!] last reload: FAILED at {when}: {record.last_reason} (the previous config serves)"


def address_present(host: str, watch: AddressWatch | None = None) -> bool:
    """Whether the host has ``host`` on an interface now (per ``watch``, else a fresh read).

    An address the table cannot be read for counts as present
    (:func:`~responder.net.addresses.present_now`).

    Raises:
        ValueError: ``host`` is not an IP address.
    """
    if ipaddress.ip_address(host).is_unspecified:
        return True
    if watch is not None:
        return watch.present(host)
    return present_now([host])[host]


def assess(view: DaemonView, probes: SelfProbes | None) -> Readiness:
    """Check every node and protocol of the config in force.

    Raises:
        Nothing expected: it reads counters, tables and the address table.
    """
    from responder.services.nbns import NbnsService

    config = view.config
    nodes = node_identities(config)
    report: dict[str, dict[str, list[str]]] = {n.cozen_name: _protocols(config) for n in nodes}
    nbns = _service(view, "nbns")
    watch = nbns.watch if isinstance(nbns, NbnsService) else None
    present: dict[str, bool] = {}
    for node in nodes:
        for protocol, reason in _listener_problems(view, config, node, present, watch):
            report[node.cozen_name][protocol].append(reason)
        report[node.cozen_name]["nbns"] += _conflicts(view, node)
    run = probes is not None and probes.rounds > 0
    if probes is not None and config.health.probe_interval > 0:
        _add_probes(report, probes.results if run else None)
    addresses = {n.cozen_name: n.address for n in nodes}
    return Readiness(report, addresses, view.reload_record, run)


def _protocols(config: Config) -> dict[str, list[str]]:
    names = ["dns", "nbns", *(["smb"] if config.smb.enabled else [])]
    return {name: [] for name in names}


def _add_probes(report: dict[str, dict[str, list[str]]], results: list[ProbeResult] | None) -> None:
    if results is None:
        for protocols in report.values():
            for reasons in protocols.values():
                reasons.append("self-probes not run yet")
        return
    for result in results:
        if not result.ok and result.node in report:
            report[result.node].setdefault(result.protocol, []).append(result.describe())


def _service(view: DaemonView, name: str) -> object | None:
    return next((s for s in view.services if s.name == name), None)


def _endpoint_problem(
    active: Iterable[object],
    key: object,
    host: str,
    port: int,
    present: dict[str, bool],
    watch: AddressWatch | None,
) -> str | None:
    if host not in present:
        present[host] = address_present(host, watch)
    if key not in active:
        return f"{host}:{port} not bound" + ("" if present[host] else ": address not present")
    if not present[host]:
        return f"{host}:{port} not bound: address not present"
    return None


def _listener_problems(
    view: DaemonView,
    config: Config,
    node: NodeIdentity,
    present: dict[str, bool],
    watch: AddressWatch | None,
) -> list[tuple[str, str]]:
    from responder.services.dns import DnsService
    from responder.services.nbns import NbnsService
    from responder.services.smb import SmbService

    wanted: list[tuple[str, Iterable[object], object, str, int]] = []
    dns, nbns, smb = (_service(view, n) for n in ("dns", "nbns", "smb"))
    if isinstance(dns, DnsService):
        for address in map(str, config.dns.listen):
            endpoint = (address, config.dns.port)
            wanted += [("dns", dns.udp.active, endpoint, address, config.dns.port)]
            wanted += [("dns", dns.tcp.active, endpoint, address, config.dns.port)]
    if isinstance(nbns, NbnsService):
        unicast = (node.address, config.netbios.port)
        wanted.append(("nbns", nbns.unicast.active, unicast, node.address, config.netbios.port))
    if isinstance(smb, SmbService) and config.smb.enabled:
        for port, netbios in ((config.smb.port, False), (config.smb.netbios_port, True)):
            wanted.append(
                ("smb", smb.tcp.active, (node.address, port, netbios), node.address, port)
            )
    found = []
    for protocol, active, key, host, port in wanted:
        problem = _endpoint_problem(active, key, host, port, present, watch)
        if problem is not None and (protocol, problem) not in found:
            found.append((protocol, problem))
    return found


def _conflicts(view: DaemonView, node: NodeIdentity) -> list[str]:
    from responder.services.nbns import NbnsService

    nbns = _service(view, "nbns")
    if not isinstance(nbns, NbnsService):
        return []
    live = nbns.view.by_address.get(node.address)
    if live is None:
        return []
    names = sorted(str(e.name) for e in live.nbns.table if e.name.key() in live.nbns.conflicted)
    who = nbns.objectors
    return [
        f"{name} in conflict with {who.get((node.address, name), 'another node')}" for name in names
    ]
