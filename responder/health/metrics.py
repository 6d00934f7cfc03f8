"""/metrics: the daemon's counters as Prometheus families, built at scrape time.

:class:`DaemonCollector` is a prometheus_client custom collector registered
on a private :class:`CollectorRegistry`; :func:`exposition` runs
``generate_latest`` on it. Nothing is counted for it on the answer path: the
families are read, at scrape time, from the counters the listeners and
services already keep (and, with worker processes, from the other workers'
published copies, see :mod:`responder.health.board`). Names follow the
Prometheus conventions: ``cozen_`` prefix, ``_total`` counters, seconds, one
series per label set (NetBIOS names are labelled by node, so a group name two
nodes own is two series).

What the counters cannot tell apart without per-packet work, and so is not
exported: the DNS answers per qtype/rcode, malformed DNS queries apart from
other unanswered ones (``cozen_dns_udp_unanswered_total`` covers both), and
answers from the compiled loop's repeats apart from the Python path's (the
compiled loop reports one answered count; ``cozen_udp_loop_info`` says which
loop runs).
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Iterator
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from responder.health.board import merge, worker_counters
from responder.health.probes import SelfProbes
from responder.health.readiness import assess
from responder.health.view import DaemonView
from responder.net import tap
from responder.net.udp import udp_loop_name

CONTENT_TYPE = CONTENT_TYPE_LATEST


def _version() -> str:
    try:
        return importlib.metadata.version("cozen-responder")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


VERSION = _version()


def exposition(view: DaemonView, probes: SelfProbes | None) -> bytes:
    """The text exposition of every family, for one scrape.

    Raises:
        Nothing expected: the families are read from in-memory counters.
    """
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DaemonCollector(view, probes))
    return generate_latest(registry)


class DaemonCollector(Collector):
    """Builds every ``cozen_*`` family from the daemon's state when collected."""

    def __init__(self, view: DaemonView, probes: SelfProbes | None) -> None:
        self._view = view
        self._probes = probes

    def collect(self) -> Iterator[Metric]:
        yield from _process(self._view, self._probes)
        yield from _dns(self._view)
        yield from _nbns(self._view)
        yield from _smb(self._view)
        yield from _registration(self._view)
        yield from _reloads(self._view)
        yield from _capture()
        if self._probes is not None:
            yield from _self_probes(self._probes)


def _service(view: DaemonView, name: str) -> Any:
    return next((s for s in view.services if s.name == name), None)


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


def _process(view: DaemonView, probes: SelfProbes | None) -> Iterator[Metric]:
    info = GaugeMetricFamily("cozen_build_info", "Version of cozen-responder.", labels=["version"])
    info.add_metric([VERSION], 1)
    yield info
    loop = GaugeMetricFamily("cozen_udp_loop_info", "Which UDP drain loop runs.", labels=["loop"])
    loop.add_metric([udp_loop_name()], 1)
    yield loop
    yield _gauge("cozen_ready", "1 when /readyz answers 200.", assess(view, probes).ready)
    yield _gauge("cozen_nodes", "Nodes in the config in force.", len(view.config.nodes))
    workers = 1 + (0 if view.board is None else len(view.board.others()))
    yield _gauge("cozen_workers", "Worker processes whose counters are included.", workers)


_UDP = (
    ("received", "Datagrams received"),
    ("answered", "Replies sent"),
    ("send_dropped", "Replies the kernel refused to send"),
    ("handler_errors", "Datagrams whose handler failed (a bug)"),
)


def _udp_families(prefix: str, rows: dict[str, list[int]], what: str) -> Iterator[Metric]:
    """Per-listener counters from ``[received, answered, dropped, bugs]`` rows."""
    for index, (name, doc) in enumerate(_UDP):
        family = CounterMetricFamily(f"{prefix}_{name}", f"{doc} {what}.", labels=["address"])
        for address, row in sorted(rows.items()):
            family.add_metric([address], row[index])
        yield family
    family = CounterMetricFamily(
        f"{prefix}_unanswered",
        f"Datagrams received and not answered {what}: malformed, responses, not ours.",
        labels=["address"],
    )
    for address, row in sorted(rows.items()):
        family.add_metric([address], max(0, row[0] - row[1] - row[2] - row[3]))
    yield family


def _dns(view: DaemonView) -> Iterator[Metric]:
    own = worker_counters(view.services)
    totals = merge([own, *(view.board.others() if view.board is not None else [])])
    yield from _udp_families("cozen_dns_udp", totals["dns_udp"], "on a DNS UDP listener")
    yield from _tcp_families("cozen_dns_tcp", totals["dns_tcp"], "a DNS TCP listener", [])


def _tcp_families(
    prefix: str, rows: dict[str, list[int]], what: str, extra: list[str]
) -> Iterator[Metric]:
    """``rows``: label value(s) joined by "|" -> [open connections, evicted]."""
    labels = ["address", *extra]
    open_ = GaugeMetricFamily(
        f"{prefix}_connections", f"Open connections on {what}.", labels=labels
    )
    evicted = CounterMetricFamily(
        f"{prefix}_evicted", f"Connections closed to make room on {what}.", labels=labels
    )
    for key, (count, dropped) in sorted(rows.items()):
        open_.add_metric(key.split("|"), count)
        evicted.add_metric(key.split("|"), dropped)
    yield open_
    yield evicted


def _nbns(view: DaemonView) -> Iterator[Metric]:
    nbns = _service(view, "nbns")
    if nbns is None:
        return
    rows: dict[str, list[int]] = {}
    for (host, port), listener in [*nbns.unicast.active.items(), *nbns.broadcast.active.items()]:
        c = listener.counters
        rows[f"{host}:{port}"] = [c.received, c.answered, c.dropped_send, c.handler_bugs]
    yield from _udp_families("cozen_nbns_udp", rows, "on an NBNS UDP socket")
    yield CounterMetricFamily(
        "cozen_nbns_malformed", "NBNS datagrams dropped as malformed.", value=nbns.malformed
    )
    yield from _names(nbns)
    outcomes = CounterMetricFamily(
        "cozen_wins_registration_outcomes",
        "WINS registration outcomes: a name's new state (registered, conflict, ...) or refused.",
        labels=["outcome"],
    )
    for outcome, count in sorted(nbns.wins_outcomes.items()):
        outcomes.add_metric([outcome], count)
    yield outcomes


def _names(nbns: Any) -> Iterator[Metric]:
    state = GaugeMetricFamily(
        "cozen_netbios_name_state",
        "A node's NetBIOS name and its state (conflict, the WINS or claim state, or active).",
        labels=["node", "name", "state"],
    )
    conflict = GaugeMetricFamily(
        "cozen_netbios_name_conflict",
        "1 when a node's NetBIOS name is in conflict.",
        labels=["node", "name"],
    )
    for node in nbns.view.by_address.values():
        status = node.nbns.status()
        for item in status["names"]:
            label = [status["cozen_name"], item["name"]]
            state.add_metric([*label, _name_state(item)], 1)
            conflict.add_metric(label, int(item["conflict"]))
    yield state
    yield conflict


def _name_state(item: dict[str, Any]) -> str:
    if item["conflict"]:
        return "conflict"
    return str(item.get("wins") or item.get("claim") or "active")


def _smb(view: DaemonView) -> Iterator[Metric]:
    smb = _service(view, "smb")
    if smb is None:
        return
    rows = {
        f"{host}:{port}|{'nbss' if netbios else 'direct'}": [len(li.connections), li.evicted]
        for (host, port, netbios), li in smb.tcp.active.items()
    }
    yield from _tcp_families("cozen_smb_tcp", rows, "an SMB/NBSS listener", ["transport"])


def _registration(view: DaemonView) -> Iterator[Metric]:
    """DNS registration: outcomes seen (per exchange) and each record set's state."""
    service = _service(view, "registration")
    report = None if service is None else service.status()
    if not report or not report.get("enabled"):
        return
    outcomes = CounterMetricFamily(
        "cozen_dns_registration_outcomes",
        "DNS registration exchanges by outcome (registered, conflict, BADSIG, timeout, ...).",
        labels=["outcome"],
    )
    for outcome, count in report["outcomes"].items():
        outcomes.add_metric([outcome], count)
    yield outcomes
    states = GaugeMetricFamily(
        "cozen_dns_registration_state",
        "A registered name (forward or reverse) and its state.",
        labels=["zone", "name", "state"],
    )
    for record in report["records"]:
        states.add_metric([record["zone"], record["name"], record["state"]], 1)
    yield states


def _reloads(view: DaemonView) -> Iterator[Metric]:
    record = view.reload_record
    family = CounterMetricFamily(
        "cozen_reloads", "Config reloads (SIGHUP) by result.", labels=["result"]
    )
    family.add_metric(["ok"], record.ok)
    family.add_metric(["failed"], record.failed)
    yield family
    failed = 1 if record.last_ok is False else 0
    yield _gauge("cozen_last_reload_failed", "1 when the latest reload failed.", failed)


def _capture() -> Iterator[Metric]:
    """``run --pcap``: records written and dropped (queue full); absent when not recording."""
    if tap.current is None:
        return
    status = tap.current.status()
    family = CounterMetricFamily(
        "cozen_capture_records", "Capture records by outcome (run --pcap).", labels=["outcome"]
    )
    for outcome in ("written", "dropped"):
        value = status.get(outcome, 0)
        family.add_metric([outcome], value if isinstance(value, int) else 0)
    yield family


def _self_probes(probes: SelfProbes) -> Iterator[Metric]:
    histogram = HistogramMetricFamily(
        "cozen_self_probe_seconds", "Latency of answered self-probes.", labels=["protocol"]
    )
    for protocol, data in probes.histograms.items():
        histogram.add_metric([protocol], data.cumulative(), data.total)
    yield histogram
    outcomes = CounterMetricFamily(
        "cozen_self_probes", "Self-probes run, by result.", labels=["protocol", "result"]
    )
    for (protocol, outcome), count in sorted(probes.outcomes.items()):
        outcomes.add_metric([protocol, outcome], count)
    yield outcomes
    up = GaugeMetricFamily(
        "cozen_self_probe_up",
        "1 when every self-probe of the node and protocol passed in the latest round.",
        labels=["node", "protocol"],
    )
    latest: dict[tuple[str, str], bool] = {}
    for result in probes.results:
        key = (result.node, result.protocol)
        latest[key] = latest.get(key, True) and result.ok
    for (node, protocol), ok in sorted(latest.items()):
        up.add_metric([node, protocol], int(ok))
    yield up
    yield CounterMetricFamily(
        "cozen_self_probe_rounds", "Self-probe rounds completed.", value=probes.rounds
    )
