"""Open files: raise the soft limit, or say why the hard one is too low.

Every listener is a descriptor, and so is every connection. A 1,000-node
cluster needs about 5,000 of them, far over the common default soft limit
of 1,024, where the daemon would fail in the middle of binding. So at start
the soft limit is raised to the hard limit (as systemd recommends for
daemons: ours polls with epoll, never select), and a config that needs more
than even the hard limit is refused before anything is bound, in one line.

The estimate, per process, from what the services open:

- DNS: UDP + TCP on every ``dns.listen`` address;
- per node: NBNS unicast UDP, SMB 139 + 445 TCP when ``smb.enabled``;
- NBNS subnet broadcast listeners, health, the loop, stdio, log: :data:`BASE`;
- connections in flight: :data:`CONNECTION_HEADROOM`.
"""

from __future__ import annotations

import resource

from responder.config import Config

BASE = 64  # stdio, epoll, signal and notify sockets, broadcast listeners, health, threads
CONNECTION_HEADROOM = 256  # TCP connections open at once (DNS, SMB) before EMFILE bites


class LimitError(Exception):
    """Even the hard limit on open files is too low; the message is the one line to print."""


def descriptors_needed(config: Config) -> int:
    """An estimate of the descriptors one process serving ``config`` opens."""
    dns = 2 * len(config.dns.listen)
    per_node = 1 + (2 if config.smb.enabled else 0)
    return BASE + CONNECTION_HEADROOM + dns + per_node * len(config.nodes)


def raise_open_files(config: Config) -> int:
    """Raise RLIMIT_NOFILE's soft limit to its hard limit; return the new soft limit.

    Raises:
        LimitError: the hard limit is below :func:`descriptors_needed` for ``config``.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = descriptors_needed(config)
    if hard != resource.RLIM_INFINITY and hard < needed:
        raise LimitError(
            f"{len(config.nodes)} nodes need about {needed} open files, but the hard limit "
            f"is {hard}: raise it (LimitNOFILE= in the unit, ulimit -Hn) or serve fewer nodes"
        )
    target = max(soft, needed) if hard == resource.RLIM_INFINITY else hard
    if target != soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return target
