"""A service's reflection filter and rate limiter, as its UDP listeners apply it.

The policy and its reference implementation are sans-IO, in
:mod:`protocols.ratelimit`; this module builds, from one
:class:`~protocols.ratelimit.Policy`, the table each drain loop uses: the
C mirror (``responder.net._udploop.Guard``) for the compiled loop, the
Python :class:`~protocols.ratelimit.Guard` for the Python loop. Both are
made on first use, so a daemon holds one table per service, and their
counters are added up in :meth:`ListenerGuard.status`.
"""

from __future__ import annotations

import logging
import secrets
import socket
import time
from collections.abc import Callable
from typing import Any

from protocols.ratelimit import COUNTER_NAMES, DROP, SEND, Guard, Policy, rules_blob

try:
    from responder.net import _udploop
except ImportError:  # built without a C compiler: the Python loop serves alone
    _udploop = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

Slip = Callable[[bytes], bytes | None]
LOG_EVERY = 10.0  # seconds between "rate limited" log lines per service


class ListenerGuard:
    """One service's guard: ``slip`` truncates a limited answer (None: drop it)."""

    def __init__(self, policy: Policy, slip: Slip | None = None, *, what: str = "udp") -> None:
        self.policy = policy
        self.slip = slip if policy.slip else None
        self.what = what
        self._python: Guard | None = None
        self._compiled: Any = None
        self._logged_at = float("-inf")
        self.carried: tuple[int, ...] = (0,) * len(COUNTER_NAMES)  # from a previous guard
        self._logged_counts = self.carried

    def python(self) -> Guard:
        """The table the Python loop uses."""
        if self._python is None:
            self._python = Guard(self.policy)
        return self._python

    def compiled(self) -> Any:
        """The table the compiled loop uses (a ``_udploop.Guard``)."""
        if self._compiled is None:
            p = self.policy
            self._compiled = _udploop.Guard(
                p.ports,
                rules_blob(p.bad_sources),
                rules_blob(p.exempt),
                p.interval,
                p.heavy_interval,
                p.tolerance,
                p.slip,
                p.log_only,
                p.ipv4_prefix,
                p.ipv6_prefix,
                p.heavy_suffix,
                p.table_size,
                secrets.randbits(64),
                self.slip,
            )
        return self._compiled

    def limit(self, table: Any, data: bytes, packed: bytes, reply: bytes) -> bytes | None:
        """``reply`` to ``data`` from ``packed``, its truncated form, or None: ``table`` decides."""
        suffix = self.policy.heavy_suffix
        heavy = bool(suffix) and data.endswith(suffix)
        verdict = table.admit(packed, time.monotonic_ns(), heavy)
        if verdict == SEND:
            return reply
        if verdict == DROP or self.slip is None:
            return None
        return self.slip(reply)

    def limit_sent(self, data: bytes, source: tuple[str, int], reply: bytes) -> bytes | None:
        """:meth:`limit` for a reply a service sends itself, with the table in use."""
        if not self.policy.interval:
            return reply
        table = self._compiled if self._compiled is not None else self.python()
        return self.limit(table, data, packed_address(source[0]), reply)

    def counts(self) -> tuple[int, ...]:
        zero = (0,) * len(COUNTER_NAMES)
        python = zero if self._python is None else tuple(self._python.counts)
        compiled = zero if self._compiled is None else self._compiled.counts()
        both = zip(self.carried, python, compiled, strict=True)
        return tuple(a + b + c for a, b, c in both)

    def status(self) -> dict[str, object]:
        """Drops by reason and rate limiting counts (the /status shape)."""
        counts = dict(zip(COUNTER_NAMES, self.counts(), strict=True))
        used = (self._python.sources() if self._python else 0) + (
            self._compiled.sources() if self._compiled is not None else 0
        )
        return {
            "dropped_sources": {k: counts[k] for k in COUNTER_NAMES[:3]},
            "rate_limit": {
                "enabled": self.policy.interval > 0,
                "log_only": self.policy.log_only,
                "limited_dropped": counts["limited_dropped"],
                "limited_slipped": counts["limited_slipped"],
                "would_limit": counts["log_only"],
                "sources": used,
                "table_size": self.policy.table_size,
            },
        }

    def log_changes(self, now: float) -> None:
        """Log, at most every LOG_EVERY seconds, what was dropped or limited since."""
        if now - self._logged_at < LOG_EVERY:
            return  # the common case: one float comparison per wake-up
        self._logged_at = now
        counts = self.counts()
        if counts == self._logged_counts:
            return
        delta = [a - b for a, b in zip(counts, self._logged_counts, strict=True)]
        self._logged_counts = counts
        text = ", ".join(f"{n} {k}" for k, n in zip(COUNTER_NAMES, delta, strict=True) if n)
        log.info("%s: dropped or rate-limited since the last report: %s", self.what, text)


def packed_address(host: str) -> bytes:
    """The address bytes of a numeric IPv4 or IPv6 host string."""
    return socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
