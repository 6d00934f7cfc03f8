"""The periodic audit: ``cozen-responder audit``, run by the daemon, so monitoring sees drift.

Every ``[health] audit_interval`` seconds (0: never) worker 0 runs the same
:func:`responder.tools.audit.gather` and :func:`~responder.tools.audit.assemble`
as the command (every node probed on its management address, the answers
checked against :mod:`responder.identity`, the site's DNS when
``[registration.dns]`` is set) and keeps the last result: when it ran, whether
it passed, and each failing cell with its reasons. The probes are ordinary
asyncio clients of the loop, each bounded by :data:`WAIT`, a run by
:data:`RUN_TIMEOUT`; they never hold up answering.

The audit is the network's view of the cluster, not this daemon's ability to
serve, so a failing audit does not make /readyz 503: it shows in /status
(``audit``), /metrics (``cozen_audit_*``) and on the status page.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from responder.config import Config
from responder.health.periodic import Periodic

log = logging.getLogger(__name__)

WAIT = 2.0  # seconds per probe exchange, as the command's default
CONCURRENCY = 8  # nodes probed at once
RUN_TIMEOUT = 120.0  # seconds for a whole run; past it the run fails with that reason


@dataclass(frozen=True, slots=True)
class Failure:
    node: str  # Cozen name, or "(audit)" when the run itself failed
    check: str  # a column of the audit table
    reasons: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class AuditRun:
    """One completed run: ``at`` is time.time() at its start."""

    at: float
    seconds: float
    passed: bool
    nodes: int
    failures: tuple[Failure, ...]

    def as_dict(self) -> dict[str, object]:
        return {
            "at": self.at,
            "seconds": round(self.seconds, 3),
            "passed": self.passed,
            "nodes": self.nodes,
            "failures": [
                {"node": f.node, "check": f.check, "reasons": list(f.reasons)}
                for f in self.failures
            ],
        }


class PeriodicAudit:
    """Runs the audit of one config every interval and keeps the last run."""

    def __init__(self, config: Callable[[], Config]) -> None:
        self._config = config
        self.last: AuditRun | None = None
        self.runs = 0
        self.interval = 0
        self._periodic = Periodic(self.run_once, "audit run")

    def schedule(self, interval: int) -> None:
        """Run now and then every ``interval`` seconds (0: stop auditing).

        Raises:
            RuntimeError: no running event loop.
        """
        self.interval = interval
        self._periodic.schedule(interval)

    async def stop(self) -> None:
        await self._periodic.stop()

    async def run_once(self) -> AuditRun:
        """Audit every node once; the result replaces the previous run's.

        Raises:
            Nothing for network failures: they are failing cells (or a failed run).
        """
        from responder.tools.audit import assemble, gather

        config = self._config()
        at, start = time.time(), time.perf_counter()
        try:
            async with asyncio.timeout(RUN_TIMEOUT):
                results, extras, public = await gather(config, None, WAIT, CONCURRENCY)
            audits = assemble(config, results, extras, public)
            failures = tuple(
                Failure(a.node, check, cell.reasons)
                for a in audits
                for check, cell in a.checks
                if cell.ok is False
            )
            nodes = len(audits)
        except TimeoutError:
            failures = (Failure("(audit)", "run", (f"not done within {RUN_TIMEOUT:g} s",)),)
            nodes = len(config.nodes)
        run = AuditRun(at, time.perf_counter() - start, not failures, nodes, failures)
        if not run.passed and (self.last is None or self.last.passed):
            log.warning("audit: failing: %s", "; ".join(map(_describe, failures)))
        self.last = run
        self.runs += 1
        return run


def _describe(failure: Failure) -> str:
    return f"{failure.node} {failure.check}: {', '.join(failure.reasons)}"
