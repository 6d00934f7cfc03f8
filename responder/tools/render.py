"""Probe results as a table for people and as JSON for machines.

The JSON is :func:`dataclasses.asdict` of each :class:`ProbeResult` plus the
names each protocol presents, so every field the table shows is there too.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from responder.tools.result import (
    PROTOCOLS,
    DnsView,
    NbnsView,
    NbssView,
    NtlmView,
    ProbeResult,
    Smb1View,
    Smb2View,
    Status,
    presented_names,
)
from responder.tools.table import render_table

Rows = list[tuple[str, str]]


def to_json(results: list[ProbeResult]) -> str:
    """``{"results": [...]}``, one object per address with a ``presents`` map added."""
    return json.dumps({"results": [_as_dict(r) for r in results]}, indent=2)


def _as_dict(result: ProbeResult) -> dict[str, Any]:
    data = asdict(result)
    data["presents"] = {p: list(n) for p, n in presented_names(result).items()}
    data["dns"]["points_back"] = result.dns.points_back
    data["smb2"]["server_guid"] = result.smb2.server_guid
    return data


def to_table(results: list[ProbeResult]) -> str:
    """One table per address: protocol, field, value; then the verdict if --expect was given."""
    return "\n\n".join(_table(r) for r in results)


def _table(result: ProbeResult) -> str:
    sections = [(protocol, _rows(result, protocol)) for protocol in PROTOCOLS]
    if result.expect is not None:
        sections.append(("expect", _verdict_rows(result)))
    rows = [
        (name if index == 0 else "", key, value)
        for name, section in sections
        for index, (key, value) in enumerate(section)
    ]
    return result.address + "\n" + render_table(("protocol", "field", "value"), rows)


def _rows(result: ProbeResult, protocol: str) -> Rows:
    view = result.view(protocol)
    if view.status is not Status.ANSWERED:
        return [(str(view.status), view.detail)]
    render = {
        "dns": _dns,
        "nbns": _nbns,
        "nbss": _nbss,
        "smb2": _smb2,
        "ntlm": _ntlm,
        "smb1": _smb1,
    }[protocol]
    return render(view) or [("answered", "")]  # type: ignore[operator]


def _dns(view: DnsView) -> Rows:
    rows: Rows = [("server", view.server)]
    rows += [("PTR " + view.reverse_name, name) for name in view.ptr] or [
        ("PTR " + view.reverse_name, f"none ({view.rcode})")
    ]
    for forward in view.forward:
        back = "points back" if forward.points_back else "does NOT point back"
        found = ", ".join(forward.addresses) or forward.rcode
        rows.append((f"A {forward.name}", f"{found} ({back})"))
    return rows


def _nbns(view: NbnsView) -> Rows:
    rows: Rows = [
        (entry.label, f"{'group' if entry.group else 'unique'} {' '.join(entry.flags)}")
        for entry in view.names
    ]
    rows.append(("MAC", view.mac))
    if view.query is not None:
        query = view.query
        answer = ", ".join(query.addresses) if query.status is Status.ANSWERED else query.detail
        if query.status is Status.ANSWERED and query.rcode:
            answer = f"negative, rcode {query.rcode}"
        rows.append((f"query {query.name}", answer or str(query.status)))
    return rows


def _nbss(view: NbssView) -> Rows:
    return [
        (f"called {c.name}<20>", "accepted" if c.accepted else f"refused: {c.answer}")
        for c in view.called
    ]


def _smb2(view: Smb2View) -> Rows:
    rows: Rows = []
    for n in view.negotiations:
        offered = "{" + ", ".join(n.offered) + "}"
        rows.append((offered, n.dialect or f"{n.status}: {n.detail}".rstrip(": ")))
    chosen = next((n for n in view.negotiations if n.dialect), None)
    if chosen is not None:
        skew = "" if chosen.skew_seconds is None else f" (skew {chosen.skew_seconds:+.3f} s)"
        rows += [
            ("ServerGuid", chosen.server_guid),
            ("SecurityMode", " ".join(chosen.security_mode) or "0"),
            ("Capabilities", " ".join(chosen.capabilities) or "0"),
            ("SystemTime", (chosen.system_time or "0 (hidden)") + skew),
        ]
    return rows


def _ntlm(view: NtlmView) -> Rows:
    if view.detail:
        return [("answered", view.detail)]
    return [
        ("NetBIOS computer", view.nb_computer_name),
        ("NetBIOS domain", view.nb_domain_name),
        ("DNS computer", view.dns_computer_name),
        ("DNS domain", view.dns_domain_name),
        ("DNS tree", view.dns_tree_name),
        ("OS version", view.os_version),
    ]


def _smb1(view: Smb1View) -> Rows:
    if not view.dialect:
        return [("answered", view.detail)]
    rows: Rows = [
        ("dialect", view.dialect),
        ("server", view.server_name),
        ("domain", view.domain_name),
        ("session setup", view.setup_status or "-"),
    ]
    if view.native_os or view.native_lanman:
        rows += [("native OS", view.native_os), ("native LAN manager", view.native_lanman)]
    return rows


def _verdict_rows(result: ProbeResult) -> Rows:
    names = presented_names(result)
    rows: Rows = []
    for protocol in result.mismatched:
        rows.append(
            (protocol, "presents " + ", ".join(names[protocol]) + ", not " + str(result.expect))
        )
    if not result.mismatched:
        rows.append(("agree", f"every answering protocol presents {result.expect}"))
    if result.silent:
        rows.append(("silent", ", ".join(result.silent) + " (not counted as a different name)"))
    return rows
