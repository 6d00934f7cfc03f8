"""The SMB identity service: NBSS on TCP 139 and direct SMB on TCP 445, per node.

Every node gets two listeners on its management address: ``smb.netbios_port``
(NetBIOS session service, the first frame is a SESSION REQUEST) and
``smb.port`` (direct TCP). Each accepted connection runs one sans-IO
:class:`~protocols.smb.session.SmbSession` built from the identity of the node
whose address it arrived on.

Per config load we build one :class:`SmbIdentity` per management address and
swap the whole mapping at once, so a connection sees either the old identities
or the new ones. Listeners are opened before the swap (bind new first, see
:class:`~responder.net.listeners.ListenerSet`); while they come up the mapping
holds old and new nodes together, so a new listener never meets a missing
identity.

Limits come from ``TcpListener``: at most ``smb.max_connections`` connections
per listener (a new client evicts the one idle the longest, so a flood of idle
or half-sent connections cannot lock anyone out) and ``smb.idle_timeout``
seconds without bytes before a connection is closed. No session ever
authenticates, so every connection is pre-authentication and the idle timeout
applies throughout.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from collections.abc import Mapping
from functools import partial

from protocols.smb.counters import SmbCounters
from protocols.smb.session import SmbIdentity, SmbSession
from responder.config import Config
from responder.identity import node_identities, smb_identity
from responder.net.addresses import present_now
from responder.net.listeners import BindError, ListenerSet, open_tcp
from responder.net.tcp import Address, StreamSession, TcpLimits, TcpListener
from responder.offload import off_loop

log = logging.getLogger(__name__)

# (host, port, netbios): the NBSS flag is part of the key so that swapping the
# two port numbers on reload rebinds instead of reusing a listener of the other kind.
Endpoint = tuple[str, int, bool]


class _Refused:
    """Session for a connection whose node vanished in a reload: close at once."""

    closed = True

    def receive_data(self, data: bytes) -> bytes:
        return b""


def smb_identities(config: Config) -> dict[str, SmbIdentity]:
    """What each node presents over SMB, by management address (none when SMB is off)."""
    nodes = node_identities(config) if config.smb.enabled else ()
    return {node.address: smb_identity(config, node) for node in nodes}


class SmbService:
    """Binds 139 and 445 on every node's management address and runs the sessions."""

    name = "smb"
    per_worker = False

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.identities: Mapping[str, SmbIdentity] = {}
        self.limits = TcpLimits(max_connections=0, idle_timeout=0.0)  # set by apply()
        self.counters = SmbCounters()  # every session's NEGOTIATE and SESSION_SETUP answers
        self._max_message_size = 65536
        self._freebind = False  # [daemon] freebind: bind addresses not (yet) present
        self._ip_ttl = 128  # [daemon] ip_ttl
        self.tcp: ListenerSet[Endpoint, TcpListener] = ListenerSet(self._open)

    async def apply(self, config: Config, serial: int) -> None:
        """Start serving ``config``, or switch to it.

        Raises:
            BindError: a new address could not be bound (nothing changed).
        """
        smb = config.smb
        identities = await off_loop(partial(smb_identities, config))  # ~3 ms per 1,000 nodes
        endpoints: list[Endpoint] = []
        for address in identities:
            endpoints += [(address, smb.netbios_port, True), (address, smb.port, False)]
        previous = self.identities, self.limits, self._max_message_size
        self.identities = {**self.identities, **identities}
        self.limits = TcpLimits(smb.max_connections, smb.idle_timeout)
        self._max_message_size = smb.max_message_size
        self._freebind = config.daemon.freebind
        self._ip_ttl = config.daemon.ip_ttl
        try:
            await self.tcp.update(endpoints)
        except BindError:
            self.identities, self.limits, self._max_message_size = previous
            raise
        self.tcp.set_ip_ttl(self._ip_ttl)
        self.identities = identities

    async def stop(self) -> None:
        await self.tcp.close()

    def status(self) -> dict[str, object]:
        """Listeners (``address_present`` False: on no interface now), nodes, counters."""
        present = present_now([host for host, _, _ in self.tcp.active])
        return {
            "listeners": [
                {
                    "address": f"{host}:{port}",
                    "address_present": present[host],
                    "transport": "nbss" if netbios else "direct",
                    "connections": len(listener.connections),
                    "evicted": listener.evicted,
                    "accepted": listener.accepted,
                }
                for (host, port, netbios), listener in self.tcp.active.items()
            ],
            "nodes": {
                address: {
                    "cozen_name": identity.cozen_name,
                    "server_guid": str(uuid.UUID(bytes_le=identity.server_guid)),
                }
                for address, identity in self.identities.items()
            },
        }

    def _session(self, local: Address, netbios: bool) -> StreamSession:
        identity = self.identities.get(local[0])
        if identity is None:
            return _Refused()
        return SmbSession(
            identity,
            netbios=netbios,
            random_bytes=os.urandom,
            clock=time.time,
            max_message_size=self._max_message_size,
            counters=self.counters,
        )

    async def _open(self, endpoint: Endpoint) -> TcpListener:
        host, port, netbios = endpoint
        return await open_tcp(
            self.loop,
            "nbss/tcp" if netbios else "smb/tcp",
            (host, port),
            lambda peer, local: self._session(local, netbios),
            lambda: self.limits,
            freebind=self._freebind,
            ip_ttl=self._ip_ttl,
        )
