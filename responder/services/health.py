"""The health service: readiness, liveness, status, metrics and a status page over HTTP.

It binds ``[health] listen`` with the same :class:`TcpListener` as every
other TCP service (connection cap :data:`HEALTH_LIMITS`, idle timeout), runs
one h11 :class:`~responder.health.http.HttpSession` per connection and answers
from :class:`~responder.health.endpoints.Endpoints`. It also schedules the
self-probes (:mod:`responder.health.probes`) every ``[health]
probe_interval`` seconds and the audit (:mod:`responder.health.audits`) every
``[health] audit_interval`` seconds. It runs in worker 0 only (``per_worker = False``).

Everything behind it (h11, prometheus_client, the probes) is imported the
first time ``[health] listen`` is configured, so a daemon without it never
loads them, and none of it is on any answer path.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from responder.config import Config
from responder.net.listeners import ListenerSet, open_tcp
from responder.net.tcp import TcpLimits, TcpListener

if TYPE_CHECKING:
    from responder.health.endpoints import Endpoints
    from responder.health.view import DaemonView

HEALTH_LIMITS = TcpLimits(max_connections=32, idle_timeout=5.0)


class HealthService:
    name = "health"
    per_worker = False

    def __init__(self, loop: asyncio.AbstractEventLoop, daemon: DaemonView) -> None:
        self.loop = loop
        self.daemon = daemon
        self.endpoints: Endpoints | None = None  # built when [health] listen is first set
        self.listeners: ListenerSet[tuple[str, int], TcpListener] = ListenerSet(self._open)

    async def apply(self, config: Config, serial: int) -> None:
        """Bind ``[health] listen`` (or unbind it) and (re)schedule the self-probes.

        Raises:
            BindError: the new address could not be bound (nothing changed).
        """
        listen = config.health.listen
        if listen is not None and self.endpoints is None:
            self.endpoints = self._build()
        await self.listeners.update([] if listen is None else [listen])
        if self.endpoints is not None and self.endpoints.probes is not None:
            self.endpoints.probes.schedule(0 if listen is None else config.health.probe_interval)
        if self.endpoints is not None and self.endpoints.audits is not None:
            self.endpoints.audits.schedule(0 if listen is None else config.health.audit_interval)

    def _build(self) -> Endpoints:
        from responder.health.audits import PeriodicAudit
        from responder.health.endpoints import Endpoints
        from responder.health.probes import SelfProbes

        def config() -> Config:
            return self.daemon.config

        return Endpoints(self.daemon, SelfProbes(config), PeriodicAudit(config))

    async def stop(self) -> None:
        if self.endpoints is not None and self.endpoints.probes is not None:
            await self.endpoints.probes.stop()
        if self.endpoints is not None and self.endpoints.audits is not None:
            await self.endpoints.audits.stop()
        await self.listeners.close()

    def status(self) -> dict[str, object]:
        probes = None if self.endpoints is None else self.endpoints.probes
        failing = [] if probes is None else [r.describe() for r in probes.results if not r.ok]
        return {
            "listen": [f"{h}:{p}" for h, p in self.listeners.active],
            "self_probe_rounds": 0 if probes is None else probes.rounds,
            "self_probes_failing": failing,
        }

    async def _open(self, endpoint: tuple[str, int]) -> TcpListener:
        from responder.health.http import HttpSession

        endpoints = self.endpoints
        assert endpoints is not None  # built by apply() before any listener opens
        return await open_tcp(
            self.loop,
            "health",
            endpoint,
            lambda peer, local: HttpSession(endpoints),
            lambda: HEALTH_LIMITS,
        )
