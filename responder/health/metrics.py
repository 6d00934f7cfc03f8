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

DNS answers are counted where they are decided (issue 13). Whatever Python
answers, the fast path, its repeats and the general path, over UDP or TCP,
is counted by (qtype, outcome) in ``cozen_dns_queries_total``: the fast path
with a key it worked out when the table was built, the general path from its
reply (see :mod:`protocols.dns.outcome` and responder/services/dns.py). The
compiled UDP loop answers exact repeats without entering Python; those are
one total per listener, ``cozen_dns_repeats_answered_total``, never in
``cozen_dns_queries_total``. So every answer sent is in exactly one of the
two, and ``cozen_udp_loop_info`` says which loop runs (the Python loop
answers no repeats in C: its total stays 0).
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

from protocols.ratelimit import (
    BAD_SOURCE,
    COUNTER_NAMES,
    LIMITED_DROPPED,
    LIMITED_SLIPPED,
    LOG_ONLY,
    PORT_ZERO,
    REFLECTION_PORT,
)
from responder.health.audits import PeriodicAudit
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


def exposition(
    view: DaemonView, probes: SelfProbes | None, audits: PeriodicAudit | None = None
) -> bytes:
    """The text exposition of every family, for one scrape.

    Raises:
        Nothing expected: the families are read from in-memory counters.
    """
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DaemonCollector(view, probes, audits))
    return generate_latest(registry)


class DaemonCollector(Collector):
    """Builds every ``cozen_*`` family from the daemon's state when collected."""

    def __init__(
        self, view: DaemonView, probes: SelfProbes | None, audits: PeriodicAudit | None = None
    ) -> None:
        self._view = view
        self._probes = probes
        self._audits = audits

    def collect(self) -> Iterator[Metric]:
        yield from _process(self._view, self._probes)
        dns_totals = _dns_totals(self._view)
        yield from _dns(dns_totals)
        yield from _nbns(self._view)
        yield from _guards(self._view, dns_totals)
        yield from _smb(self._view)
        yield from _registration(self._view)
        yield from _reloads(self._view)
        yield from _capture()
        if self._probes is not None:
            yield from _self_probes(self._probes)
        if self._audits is not None:
            yield from _audit(self._audits)


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


def _dns_totals(view: DaemonView) -> dict[str, dict[str, list[int]]]:
    """The DNS counters of this process and every worker's latest copy, added up."""
    own = worker_counters(view.services)
    return merge([own, *(view.board.others() if view.board is not None else [])])


def _dns(totals: dict[str, dict[str, list[int]]]) -> Iterator[Metric]:
    yield from _udp_families("cozen_dns_udp", totals["dns_udp"], "on a DNS UDP listener")
    yield _repeats(
        "cozen_dns_repeats_answered",
        "DNS replies the compiled UDP loop sent from the repeats table without entering "
        "Python (exact repeats of a query the fast path answered); "
        "not in cozen_dns_queries_total.",
        totals["dns_udp"],
    )
    yield from _tcp_families("cozen_dns_tcp", totals["dns_tcp"], "a DNS TCP listener", [])
    yield from _dns_queries(totals["dns_queries"])


def _repeats(name: str, doc: str, rows: dict[str, list[int]]) -> Metric:
    """The fifth column of listener rows: answers from the repeats table, in C."""
    family = CounterMetricFamily(name, doc, labels=["address"])
    for address, row in sorted(rows.items()):
        family.add_metric([address], row[4] if len(row) > 4 else 0)
    return family


def _dns_queries(rows: dict[str, list[int]]) -> Iterator[Metric]:
    """``rows``: "protocol|path|qtype|outcome" -> [answers], from :mod:`board`."""
    queries = CounterMetricFamily(
        "cozen_dns_queries",
        "DNS queries decided in Python, over UDP or TCP, by query type (none: no question "
        "echoed; other: a type outside the known set) and outcome (answered, nodata, "
        "nxdomain, refused, formerr, notimp, badvers, servfail, dropped: no reply, as for "
        "an unreadable header or a response). UDP repeats answered by the compiled loop "
        "are counted in cozen_dns_repeats_answered_total instead.",
        labels=["protocol", "qtype", "outcome"],
    )
    fast = CounterMetricFamily(
        "cozen_dns_fast_path_answers",
        "DNS UDP answers from the Python fast path: the precomputed table, or its own "
        "lookup of an exact repeat (the Python UDP loop's repeats).",
    )
    general = CounterMetricFamily(
        "cozen_dns_general_path_queries",
        "DNS queries the general path decided (the fast path declined, or TCP), answered "
        "or dropped.",
        labels=["protocol"],
    )
    by_label: dict[tuple[str, str, str], int] = {}
    by_path = {"fast": 0, "udp": 0, "tcp": 0}
    for key, (count, *_) in rows.items():
        protocol, path, qtype, outcome = key.split("|")
        label = (protocol, qtype, outcome)
        by_label[label] = by_label.get(label, 0) + count
        by_path["fast" if path == "fast" else protocol] += count
    for label, count in sorted(by_label.items()):
        queries.add_metric(list(label), count)
    fast.add_metric([], by_path["fast"])
    general.add_metric(["udp"], by_path["udp"])
    general.add_metric(["tcp"], by_path["tcp"])
    yield queries
    yield fast
    yield general


def _tcp_families(
    prefix: str, rows: dict[str, list[int]], what: str, extra: list[str]
) -> Iterator[Metric]:
    """``rows``: label value(s) joined by "|" -> [open connections, evicted, accepted]."""
    labels = ["address", *extra]
    open_ = GaugeMetricFamily(
        f"{prefix}_connections", f"Open connections on {what}.", labels=labels
    )
    evicted = CounterMetricFamily(
        f"{prefix}_evicted", f"Connections closed to make room on {what}.", labels=labels
    )
    accepted = CounterMetricFamily(
        f"{prefix}_connections_accepted",
        f"Connections accepted on {what} since it opened.",
        labels=labels,
    )
    for key, (count, dropped, *more) in sorted(rows.items()):
        open_.add_metric(key.split("|"), count)
        evicted.add_metric(key.split("|"), dropped)
        accepted.add_metric(key.split("|"), more[0] if more else 0)
    yield open_
    yield evicted
    yield accepted


_LIMIT_ACTIONS = (  # cozen_rate_limited_total's action label, from the guard's counters
    ("dropped", LIMITED_DROPPED),
    ("slipped", LIMITED_SLIPPED),
    ("would_limit", LOG_ONLY),
)


def _guards(view: DaemonView, dns_totals: dict[str, dict[str, list[int]]]) -> Iterator[Metric]:
    """What the reflection filter and the rate limiter held back, per service."""
    rows = dict(dns_totals.get("guard", {}))
    nbns = _service(view, "nbns")
    if nbns is not None and nbns.guard is not None:
        rows["nbns"] = list(nbns.guard.counts())
    dropped = CounterMetricFamily(
        "cozen_dropped_sources",
        "Datagrams dropped before parsing for their source: port 0, a reflection port "
        "([limits] reflection_ports) or an address no client has.",
        labels=["service", "reason"],
    )
    limited = CounterMetricFamily(
        "cozen_rate_limited",
        "Answers over a source's rate limit: dropped, slipped (sent truncated, DNS only) "
        "or would_limit (counted and sent anyway: [limits] log_only).",
        labels=["service", "action"],
    )
    for service, counts in sorted(rows.items()):
        for index in (PORT_ZERO, REFLECTION_PORT, BAD_SOURCE):
            dropped.add_metric([service, COUNTER_NAMES[index]], counts[index])
        for action, index in _LIMIT_ACTIONS:
            limited.add_metric([service, action], counts[index])
    yield dropped
    yield limited


def _nbns(view: DaemonView) -> Iterator[Metric]:
    nbns = _service(view, "nbns")
    if nbns is None:
        return
    rows: dict[str, list[int]] = {}
    for (host, port), listener in [*nbns.unicast.active.items(), *nbns.broadcast.active.items()]:
        c = listener.counters
        row = [c.received, c.answered, c.dropped_send, c.handler_bugs, c.repeats_answered]
        rows[f"{host}:{port}"] = row
    yield from _udp_families("cozen_nbns_udp", rows, "on an NBNS UDP socket")
    yield CounterMetricFamily(
        "cozen_nbns_fast_path_answers",
        "NBNS replies from the Python fast path (precomputed answers and their repeats); "
        "the compiled loop's repeats are in cozen_nbns_repeats_answered_total.",
        value=nbns.fast_path_answers,
    )
    yield _repeats(
        "cozen_nbns_repeats_answered",
        "NBNS replies the compiled UDP loop sent from a node's repeats table without "
        "entering Python.",
        rows,
    )
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
        f"{host}:{port}|{'nbss' if netbios else 'direct'}": [
            len(li.connections),
            li.evicted,
            li.accepted,
        ]
        for (host, port, netbios), li in smb.tcp.active.items()
    }
    yield from _tcp_families("cozen_smb_tcp", rows, "an SMB/NBSS listener", ["transport"])
    negotiations = CounterMetricFamily(
        "cozen_smb_negotiations",
        "SMB NEGOTIATE requests answered, by the dialect chosen (NT LM 0.12 is SMB1; "
        "2.??? the wildcard answer to an SMB1 multi-protocol NEGOTIATE; refused: none "
        "in common).",
        labels=["dialect"],
    )
    for dialect, count in sorted(smb.counters.negotiations.items()):
        negotiations.add_metric([dialect], count)
    yield negotiations
    setups = CounterMetricFamily(
        "cozen_smb_session_setups",
        "SMB SESSION_SETUP requests answered, by result (challenge_sent: the NTLMSSP "
        "CHALLENGE; mech_offered: SPNEGO selecting NTLMSSP; null_session; logon_failure; "
        "access_denied; invalid; other).",
        labels=["result"],
    )
    for result, count in sorted(smb.counters.session_setups.items()):
        setups.add_metric([result], count)
    yield setups


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


def _audit(audits: PeriodicAudit) -> Iterator[Metric]:
    yield CounterMetricFamily(
        "cozen_audit_runs", "Audit runs completed ([health] audit_interval).", value=audits.runs
    )
    last = audits.last
    if last is None:
        return
    yield _gauge("cozen_audit_passed", "1 when the last audit run passed.", int(last.passed))
    yield _gauge(
        "cozen_audit_last_run_timestamp_seconds", "When the last audit run started.", last.at
    )
    failures = GaugeMetricFamily(
        "cozen_audit_failures",
        "1 per failing cell of the last audit run (reasons in /status), by node and check.",
        labels=["node", "check"],
    )
    for failure in last.failures:
        failures.add_metric([failure.node, failure.check], 1)
    yield failures
