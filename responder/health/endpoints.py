"""The health endpoint's routes: one :class:`~responder.health.http.Request` in, a Response out.

- ``/livez``: 200 ``ok`` whenever the event loop turns (a stuck loop cannot
  answer at all); no dependency is checked.
- ``/readyz`` (and its alias ``/healthz``): 200 when ready, 503 otherwise
  (:mod:`responder.health.readiness`); a JSON body per node and protocol, or
  with ``?verbose`` a text one that also tells whether the last reload failed.
- ``/status``: JSON, every service's ``status()``, the reload record and the
  latest self-probes.
- ``/metrics``: the Prometheus text exposition (:mod:`responder.health.metrics`).
- ``/``: the HTML status page (:mod:`responder.health.page`).
"""

from __future__ import annotations

import json
from dataclasses import asdict

from responder.health import page
from responder.health.audits import PeriodicAudit
from responder.health.http import Request, Response, text
from responder.health.probes import SelfProbes
from responder.health.readiness import assess
from responder.health.view import DaemonView

JSON = "application/json"
HTML = "text/html; charset=utf-8"


def _json(status: int, body: object) -> Response:
    return Response(status, json.dumps(body, indent=2, default=str).encode() + b"\n", JSON)


class Endpoints:
    """Routes requests to the daemon's state; one instance per health service."""

    def __init__(
        self, view: DaemonView, probes: SelfProbes | None, audits: PeriodicAudit | None = None
    ) -> None:
        self.view = view
        self.probes = probes
        self.audits = audits
        self._routes = {
            "/livez": self.livez,
            "/readyz": self.readyz,
            "/healthz": self.readyz,
            "/status": self.status,
            "/metrics": self.metrics,
            "/": self.page,
        }

    def __call__(self, request: Request) -> Response:
        route = self._routes.get(request.path)
        return text(404, "not found\n") if route is None else route(request)

    def livez(self, request: Request) -> Response:
        return text(200, "ok\n")

    def readyz(self, request: Request) -> Response:
        readiness = assess(self.view, self.probes)
        code = 200 if readiness.ready else 503
        if "verbose" in request.query:
            return text(code, readiness.as_text())
        return _json(code, readiness.as_dict())

    def status(self, request: Request) -> Response:
        return _json(200, self.report())

    def report(self) -> dict[str, object]:
        """The /status document: the daemon's report and the latest self-probes."""
        report = self.view.status()
        if self.probes is not None:
            report["self_probes"] = {
                "rounds": self.probes.rounds,
                "results": [asdict(result) for result in self.probes.results],
            }
        if self.audits is not None:
            report["audit"] = audit_report(self.audits)
        return report

    def metrics(self, request: Request) -> Response:
        from responder.health.metrics import CONTENT_TYPE, exposition

        return Response(200, exposition(self.view, self.probes, self.audits), CONTENT_TYPE)

    def page(self, request: Request) -> Response:
        results = [] if self.probes is None else self.probes.results
        audit = None if self.audits is None else audit_report(self.audits)
        html = page.render(assess(self.view, self.probes), results, self.view.status(), audit)
        return Response(200, html.encode(), HTML)


def audit_report(audits: PeriodicAudit) -> dict[str, object]:
    """``{"interval": s, "runs": n, "last": {...} or None}`` for /status and the page."""
    last = None if audits.last is None else audits.last.as_dict()
    return {"interval": audits.interval, "runs": audits.runs, "last": last}
