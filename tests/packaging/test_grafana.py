"""packaging/grafana-dashboard.json: valid JSON, and every metric it queries is exported."""

from __future__ import annotations

import base64
import http.client
import json
import re
import subprocess
import time

from tests.helpers import BASE_CONFIG, REPO

DASHBOARD = REPO / "packaging" / "grafana-dashboard.json"
# Registration (to a port nobody listens on: its outcomes are still counted) and the
# periodic audit on, so that their families are exported too.
CONFIG = BASE_CONFIG + (
    '\n[health]\nlisten = "127.0.0.1:9137"\naudit_interval = 1\n'
    '[registration.dns]\nserver = "127.0.0.58"\ntsig_name = "k"\n'
    f'tsig_secret = "{base64.b64encode(b"g" * 32).decode()}"\n'
)
METRIC = re.compile(r"\bcozen_[a-z0-9_]+")


def exprs(node: object) -> list[str]:
    """Every ``expr`` string anywhere in the dashboard."""
    if isinstance(node, dict):
        found = [node["expr"]] if isinstance(node.get("expr"), str) else []
        return found + [e for value in node.values() for e in exprs(value)]
    if isinstance(node, list):
        return [e for item in node for e in exprs(item)]
    return []


def exported_names(text: str) -> set[str]:
    """Family names from ``# TYPE`` lines and every sample's name."""
    names = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            names.add(line.split()[2])
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


def scrape() -> str | None:
    conn = http.client.HTTPConnection("127.0.0.1", 9137, timeout=5)
    try:
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
    except OSError:
        return None
    finally:
        conn.close()
    first_rounds_done = "cozen_self_probe_rounds_total 1.0" in text and "cozen_audit_passed" in text
    return text if first_rounds_done else None


def test_dashboard_is_valid_and_queries_only_exported_metrics(write_config, start_daemon):
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "cozen-responder" and dashboard["panels"]
    queried = {name for expr in exprs(dashboard) for name in METRIC.findall(expr)}
    assert len(queried) >= 20
    start_daemon(write_config(CONFIG))
    deadline = time.monotonic() + 15
    while (text := scrape()) is None:
        assert time.monotonic() < deadline, "no /metrics with a finished probe and audit round"
        time.sleep(0.1)
    missing = sorted(queried - exported_names(text))
    assert not missing, f"the dashboard queries metrics /metrics does not export: {missing}"


def test_dashboard_queries_are_valid_promql(tmp_path):
    """promtool parses each expr (Grafana's variables replaced) as a recording rule."""
    dashboard = json.loads(DASHBOARD.read_text())
    rules = []
    for index, expr in enumerate(exprs(dashboard)):
        plain = expr.replace("$__rate_interval", "5m").replace("$instance", ".*")
        rules.append(f"      - record: dashboard:expr_{index}\n        expr: {json.dumps(plain)}\n")
    path = tmp_path / "rules.yml"
    path.write_text("groups:\n  - name: dashboard\n    rules:\n" + "".join(rules))
    result = subprocess.run(
        ["promtool", "check", "rules", str(path)], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stdout + result.stderr
