"""``[limits]`` for a UDP service: its reflection filter and rate limiter.

Each UDP service (DNS, NBNS) holds one :class:`~responder.net.guard.ListenerGuard`
built here from the config, the service's own port (never filtered: DNS from
53 and NBNS from 137 are legitimate) and the host's subnet broadcast addresses
(never a legitimate source). A reload that leaves the policy as it was keeps
the guard, buckets and counters included; a changed policy starts a new table
whose counters carry on from the old one's.
"""

from __future__ import annotations

from collections.abc import Iterable

from protocols.ratelimit import Policy, build_policy
from responder.config import LimitSettings
from responder.net.guard import ListenerGuard, Slip


def limits_policy(
    limits: LimitSettings,
    service_port: int,
    broadcasts: Iterable[object],
    *,
    slips: bool,
    heavy: bytes = b"",
) -> Policy:
    """The policy of one service.

    ``slips``: limited answers may go out truncated (DNS); else they are
    dropped (NBNS, which has no TCP to retry on). ``heavy``: the suffix of
    the service's costlier queries (NBNS node status).
    """
    return build_policy(
        reflection_ports=limits.reflection_ports,
        service_port=service_port,
        broadcasts=sorted({str(b) for b in broadcasts}),
        rate=limits.responses_per_second,
        burst=limits.burst,
        slip=limits.slip if slips else 0,
        heavy_rate=min(limits.nbns_status_per_second, limits.responses_per_second)
        if heavy
        else None,
        heavy_suffix=heavy,
        ipv4_prefix=limits.ipv4_prefix,
        ipv6_prefix=limits.ipv6_prefix,
        exempt=limits.exempt,
        log_only=limits.log_only,
        table_size=limits.table_size,
    )


def updated_guard(
    previous: ListenerGuard | None, policy: Policy, slip: Slip | None, what: str
) -> ListenerGuard:
    """``previous`` when its policy is ``policy``, else a new guard counting on from it."""
    if previous is not None and previous.policy == policy:
        return previous
    guard = ListenerGuard(policy, slip, what=what)
    if previous is not None:
        guard.carried = previous.counts()
    return guard
