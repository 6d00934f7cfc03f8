"""The status page at ``/``: one self-contained HTML document, refreshed by the browser.

No external assets (inline CSS, no script) and a ``<meta http-equiv="refresh">``
so an operator can leave it open. It shows the nodes x protocols readiness
table, the latest self-probes with their latency, every node's NetBIOS names
with their claim/WINS state and conflicts, the last reload, and every
service's ``status()`` (so a new service, e.g. DNS registration, appears
without a change here). Every value is HTML-escaped.
"""

from __future__ import annotations

import json
import time
from html import escape
from typing import Any

from responder.health.probes import ProbeResult
from responder.health.readiness import Readiness

REFRESH_SECONDS = 10

_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;background:#fafafa}
h1{font-size:1.4em;margin:0 0 .3em}h2{font-size:1.1em;margin:1.4em 0 .4em}
table{border-collapse:collapse;background:#fff}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#eee}.ok{color:#176b2c;font-weight:600}.failing{color:#b00020;font-weight:600}
.badge{display:inline-block;padding:.15em .6em;border-radius:.3em;color:#fff}
.badge.ok{background:#2e7d32;color:#fff}.badge.failing{background:#c62828;color:#fff}
.reason{font-size:.9em;color:#555}pre{background:#fff;border:1px solid #ddd;padding:.5em;
overflow:auto;max-height:20em}small{color:#666}
"""


def render(
    ready: Readiness,
    probes: list[ProbeResult],
    status: dict[str, Any],
    audit: dict[str, Any] | None = None,
) -> str:
    """The whole page for the current readiness, probe results and status report.

    Raises:
        Nothing: every value is formatted defensively and escaped.
    """
    verdict = "ok" if ready.ready else "failing"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="refresh" content="{REFRESH_SECONDS}">',
        "<title>cozen-responder status</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>cozen-responder</h1>",
        f'<p>Ready: <span id="ready" class="badge {verdict}">'
        f"{'ready' if ready.ready else 'not ready'}</span> "
        f"<small>config {escape(str(status.get('config')))}, up "
        f"{status.get('uptime_seconds')} s, UDP loop {escape(str(status.get('udp_loop')))}, "
        f"generated {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}</small></p>",
        _reload(status.get("reload")),
        _nodes_table(ready),
        _probes_table(probes),
        _audit(audit),
        _names_table(status.get("nbns")),
        _services(status),
        "</body></html>",
    ]
    return "\n".join(parts)


def _audit(audit: dict[str, Any] | None) -> str:
    """The last periodic audit: verdict, and its failing cells with their reasons."""
    if audit is None or not audit.get("interval"):
        return ""
    last = audit.get("last")
    if not isinstance(last, dict):
        return "<h2>Audit</h2><p>No audit run yet.</p>"
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(last.get("at") or 0))
    verdict = "ok" if last.get("passed") else "failing"
    head = (
        f"<h2>Audit <small>(run at {when}, every {audit['interval']} s)</small></h2>"
        f'<p id="audit"><span class="badge {verdict}">'
        f"{'pass' if last.get('passed') else 'FAIL'}</span> {last.get('nodes')} node(s)</p>"
    )
    rows = "".join(
        f"<tr><td>{escape(str(f.get('node')))}</td><td>{escape(str(f.get('check')))}</td>"
        f'<td class="reason">{"<br>".join(escape(str(r)) for r in f.get("reasons", ()))}</td></tr>'
        for f in last.get("failures", ())
    )
    if not rows:
        return head
    return (
        head + '<table id="audit-failures"><thead><tr><th>node</th><th>check</th><th>reasons</th>'
        f"</tr></thead><tbody>{rows}</tbody></table>"
    )


def _reload(record: Any) -> str:
    if not isinstance(record, dict) or record.get("last") is None:
        return "<p>Last reload: none since start.</p>"
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(record.get("last_at") or 0))
    if record["last"] == "ok":
        return f'<p>Last reload: <span class="ok">ok</span> at {when}.</p>'
    reason = escape(str(record.get("last_reason")))
    return (
        f'<p id="reload">Last reload: <span class="failing">failed</span> at {when}: '
        f"{reason} (the previous config keeps serving).</p>"
    )


def _nodes_table(ready: Readiness) -> str:
    protocols = list(dict.fromkeys(p for node in ready.nodes.values() for p in node))
    head = "".join(f"<th>{escape(p)}</th>" for p in protocols)
    rows = []
    for name, node in ready.nodes.items():
        cells = "".join(_cell(node.get(p)) for p in protocols)
        address = escape(ready.addresses[name])
        rows.append(
            f'<tr data-node="{escape(name)}"><td>{escape(name)}</td><td>{address}</td>{cells}</tr>'
        )
    return (
        '<h2>Nodes</h2><table id="nodes"><thead><tr><th>node</th><th>address</th>'
        f"{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _cell(reasons: list[str] | None) -> str:
    if reasons is None:
        return "<td>-</td>"
    if not reasons:
        return '<td class="ok">ok</td>'
    detail = "<br>".join(f'<span class="reason">{escape(r)}</span>' for r in reasons)
    return f'<td class="failing">failing<br>{detail}</td>'


def _probes_table(probes: list[ProbeResult]) -> str:
    if not probes:
        return "<h2>Self-probes</h2><p>No self-probe round yet.</p>"
    rows = []
    for p in probes:
        latency = "-" if p.seconds is None else f"{p.seconds * 1000:.2f} ms"
        result = '<span class="ok">ok</span>' if p.ok else '<span class="failing">failed</span>'
        rows.append(
            f"<tr><td>{escape(p.node)}</td><td>{escape(p.protocol)}</td><td>{escape(p.check)}</td>"
            f"<td>{result}</td><td>{latency}</td><td>{escape(p.reason)}</td></tr>"
        )
    when = time.strftime("%H:%M:%S UTC", time.gmtime(probes[0].at))
    return (
        f"<h2>Self-probes <small>(round at {when})</small></h2>"
        '<table id="probes"><thead><tr><th>node</th><th>protocol</th><th>check</th>'
        "<th>result</th><th>latency</th><th>reason</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _names_table(nbns: Any) -> str:
    if not isinstance(nbns, dict):
        return ""
    rows = []
    for node in nbns.get("nodes", []):
        for item in node.get("names", []):
            state = "conflict" if item.get("conflict") else "ok"
            rows.append(
                f"<tr><td>{escape(str(node.get('cozen_name')))}</td>"
                f"<td>{escape(str(item.get('name')))}</td>"
                f"<td>{'group' if item.get('group') else 'unique'}</td>"
                f"<td>{escape(str(item.get('claim', '-')))}</td>"
                f"<td>{escape(str(item.get('wins', '-')))}</td>"
                f'<td class="{"failing" if item.get("conflict") else "ok"}">{state}</td></tr>'
            )
    wins = escape(str(nbns.get("wins_server") or "none"))
    return (
        f"<h2>NetBIOS names and registrations <small>(WINS server: {wins})</small></h2>"
        '<table id="names"><thead><tr><th>node</th><th>name</th><th>kind</th>'
        "<th>broadcast claim</th><th>WINS</th><th>conflict</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _services(status: dict[str, Any]) -> str:
    blocks = []
    for name, value in status.items():
        if isinstance(value, dict) and name != "reload":
            text = escape(json.dumps(value, indent=2, default=str))
            blocks.append(f"<details><summary>{escape(name)}</summary><pre>{text}</pre></details>")
    return "<h2>Services</h2>" + "".join(blocks)
