"""Health endpoint for monitoring: ``/healthz``, ``/status`` and ``/metrics``.

A deliberately tiny HTTP/1.x responder on ``[health] listen``: one GET per
connection, answered and closed. It runs on the same :class:`TcpListener`
as everything else, so it inherits the connection cap and idle timeout.

* ``/healthz``: ``ok`` while the daemon serves.
* ``/status``: JSON from every service's ``status()`` (listeners, counters,
  NetBIOS name states, WINS registrations, ...).
* ``/metrics``: the numeric leaves of the same report in Prometheus text
  format, e.g. ``cozen_dns_udp_received{address="127.0.0.10:53"} 12``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from responder.config import Config
from responder.net.listeners import ListenerSet, open_tcp
from responder.net.tcp import TcpLimits, TcpListener

Report = Callable[[], dict[str, Any]]
MAX_REQUEST = 8192
HEALTH_LIMITS = TcpLimits(max_connections=32, idle_timeout=5.0)


def _response(code: str, body: bytes, content_type: str) -> bytes:
    head = (
        f"HTTP/1.1 {code}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


def metrics_text(report: dict[str, Any]) -> str:
    """Flatten a status report into Prometheus exposition lines."""
    lines: list[str] = []

    def walk(prefix: str, value: Any, labels: str) -> None:
        if isinstance(value, bool):
            lines.append(f"{prefix}{labels} {int(value)}")
        elif isinstance(value, int | float):
            lines.append(f"{prefix}{labels} {value}")
        elif isinstance(value, dict):
            for key, item in value.items():
                walk(f"{prefix}_{key}", item, labels)
        elif isinstance(value, list):
            for item in value:
                label = item.get("address") or item.get("name") if isinstance(item, dict) else None
                walk(prefix, item, f'{{address="{label}"}}' if label else labels)

    walk("cozen", report, "")
    return "\n".join(lines) + "\n"


class HealthSession:
    """Sans-IO: one HTTP GET in, one response out, then closed."""

    def __init__(self, report: Report) -> None:
        self._report = report
        self._buffer = b""
        self.closed = False

    def receive_data(self, data: bytes) -> bytes:
        self._buffer += data
        if b"\r\n\r\n" not in self._buffer and b"\n\n" not in self._buffer:
            if len(self._buffer) > MAX_REQUEST:
                self.closed = True
                return _response("431 Request Header Fields Too Large", b"", "text/plain")
            return b""
        self.closed = True
        parts = self._buffer.split(b"\r\n", 1)[0].split()
        if len(parts) != 3 or parts[0] not in (b"GET", b"HEAD"):
            return _response("400 Bad Request", b"bad request\n", "text/plain")
        return self._route(parts[1].split(b"?", 1)[0])

    def _route(self, path: bytes) -> bytes:
        if path == b"/healthz":
            return _response("200 OK", b"ok\n", "text/plain")
        if path == b"/status":
            body = json.dumps(self._report(), indent=2, default=str).encode() + b"\n"
            return _response("200 OK", body, "application/json")
        if path == b"/metrics":
            return _response(
                "200 OK", metrics_text(self._report()).encode(), "text/plain; version=0.0.4"
            )
        return _response("404 Not Found", b"not found\n", "text/plain")


class HealthService:
    name = "health"
    per_worker = False

    def __init__(self, loop: asyncio.AbstractEventLoop, report: Report) -> None:
        self.loop = loop
        self.report = report
        self.listeners: ListenerSet[tuple[str, int], TcpListener] = ListenerSet(self._open)

    async def apply(self, config: Config, serial: int) -> None:
        wanted = [] if config.health.listen is None else [config.health.listen]
        await self.listeners.update(wanted)

    async def stop(self) -> None:
        await self.listeners.close()

    def status(self) -> dict[str, object]:
        return {"listen": [f"{h}:{p}" for h, p in self.listeners.active]}

    async def _open(self, endpoint: tuple[str, int]) -> TcpListener:
        return await open_tcp(
            self.loop,
            "health",
            endpoint,
            lambda peer, local: HealthSession(self.report),
            lambda: HEALTH_LIMITS,
        )
