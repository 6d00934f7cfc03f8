"""The NetBIOS name service (UDP 137): answers, claims, defense, WINS.

One :class:`NodeState` (protocols.netbios.node) per node answers for that node's
name table only. Sockets follow nmbd's layout: one per management address
(unicast queries, node status, responses to our own registrations, and every
datagram we send, with SO_BROADCAST for the claim) and one per subnet
broadcast address (B-node traffic). A datagram on a unicast socket goes to
the node owning that address; one on a broadcast socket goes to every node on
that subnet with ``broadcast=True``, and each node's reply leaves from its
own unicast socket towards the request's source.

Per datagram: an exact repeat of a recent unicast query is answered by the
compiled UDP loop from the node's repeats (see responder/net/udp.py); otherwise the
precomputed fast path (one dict lookup) or the general path. Only the
general path looks at responses; after one, the registration
engines' events are logged and the timer rescheduled. Malformed datagrams are
counted and dropped.

Engines (:class:`BNodeClaim` when the node has a broadcast address,
:class:`WinsClient` when ``netbios.wins_server`` is set) run on the loop's
clock through one timer for the whole service. A reload swaps the node view
in one assignment: new nodes start claiming, removed nodes release their
names (their socket stays open until the release is done), nodes whose
settings are unchanged keep their state. :meth:`NbnsService.stop` releases
every name and waits at most :data:`STOP_BUDGET` seconds for it.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from protocols.errors import MalformedMessage
from protocols.netbios.claim import BNodeClaim
from protocols.netbios.names import NetbiosName
from protocols.netbios.nbns import (
    NameQueryResponse,
    NbnsMessage,
    NodeStatusResponse,
    RegistrationResponse,
    ReleaseResponse,
    WaitForAck,
    decode_packet,
)
from protocols.netbios.node import NbnsIdentity, NodeState, fast_answer, handle_message
from protocols.netbios.wins import WinsClient, WinsState
from protocols.repeats import Repeats
from responder.config import Config
from responder.identity import NodeIdentity, node_identities
from responder.net.interfaces import BroadcastMap, subnet_broadcasts
from responder.net.listeners import ListenerSet, open_udp, update_together
from responder.net.udp import Address, DatagramHandler, RepeatSource, UdpListener

log = logging.getLogger(__name__)

Endpoint = tuple[str, int]
Engine = BNodeClaim | WinsClient
STOP_BUDGET = 1.2  # seconds stop() waits for releases (SIGTERM must end us within 2 s)
_TRANSIENT = (WinsState.IDLE, WinsState.REGISTERING, WinsState.RELEASING)  # not worth a log line
_RESPONSES = (
    NameQueryResponse,
    NodeStatusResponse,
    RegistrationResponse,
    ReleaseResponse,
    WaitForAck,
)


@dataclass(frozen=True, slots=True)
class NodePlan:
    """What one node runs, derived from the config and the host's interfaces."""

    identity: NbnsIdentity
    port: int
    broadcast: str | None  # subnet broadcast address, None: no claim, no broadcast socket
    wins: Address | None
    fast_path: bool

    @property
    def address(self) -> str:
        return self.identity.ipv4


def plan_node(config: Config, node: NodeIdentity, broadcasts: BroadcastMap) -> NodePlan:
    netbios = config.netbios
    wins = None if netbios.wins_server is None else (str(netbios.wins_server), netbios.wins_port)
    bcast = broadcasts.get(node.ipv4) if netbios.broadcast else None
    broadcast = None if bcast is None else str(bcast)
    return NodePlan(node.nbns, netbios.port, broadcast, wins, netbios.fast_path)


@dataclass(eq=False, slots=True)
class _Node:
    plan: NodePlan
    state: NodeState
    listener: UdpListener
    claim: BNodeClaim | None = None
    wins: WinsClient | None = None
    wins_seen: dict[NetbiosName, WinsState] = field(default_factory=dict)

    @property
    def engines(self) -> list[Engine]:
        return [e for e in (self.claim, self.wins) if e is not None]

    def finished(self) -> bool:
        return all(engine.finished() for engine in self.engines)


@dataclass(frozen=True, slots=True)
class _View:
    """Everything one config load answers with; swapped whole on reload."""

    by_address: dict[str, _Node]
    by_broadcast: dict[str, tuple[_Node, ...]]


class NbnsService:
    """Serves every node's NBNS names and runs their registration engines."""

    name = "nbns"
    per_worker = False

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        *,
        interfaces: Callable[[], BroadcastMap] = subnet_broadcasts,
        trn_id: Callable[[], int] = lambda: secrets.randbits(16),
    ) -> None:
        self.loop = loop
        self._interfaces = interfaces
        self._trn_id = trn_id
        self.view = _View({}, {})
        self.retiring: list[_Node] = []
        self.malformed = 0
        self.wins_server: Address | None = None
        self.unicast: ListenerSet[Endpoint, UdpListener] = ListenerSet(self._open_unicast)
        self.broadcast: ListenerSet[Endpoint, UdpListener] = ListenerSet(self._open_broadcast)
        self._timer: asyncio.TimerHandle | None = None
        self._lock = asyncio.Lock()
        self._released = asyncio.Event()
        self._cleanup: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------ lifecycle

    async def apply(self, config: Config, serial: int) -> None:
        """Start serving ``config``, or switch to it.

        Raises:
            BindError: a new address could not be bound (nothing changed).
        """
        broadcasts = self._interfaces() if config.netbios.broadcast else {}
        plans = {n.address: plan_node(config, n, broadcasts) for n in node_identities(config)}
        old = self.view.by_address
        leaving = [n for ip, n in old.items() if ip not in plans or old[ip].plan != plans[ip]]
        async with self._lock:
            await self._bind(plans.values(), [*self.retiring, *leaving])
            self._switch(plans, leaving)
        server = config.netbios.wins_server
        self.wins_server = None if server is None else (str(server), config.netbios.wins_port)
        self._flush_all()
        self._reschedule()

    async def stop(self) -> None:
        """Release every name (bounded by :data:`STOP_BUDGET`), then unbind."""
        now = self.loop.time()
        nodes = [*self.view.by_address.values(), *self.retiring]
        self.view = _View({}, {})
        self.retiring = nodes
        for node in nodes:
            for engine in node.engines:
                engine.release(now)
        self._flush_all()
        self._reschedule()
        if not all(node.finished() for node in nodes):
            self._released.clear()
            try:
                await asyncio.wait_for(self._released.wait(), STOP_BUDGET)
            except TimeoutError:
                log.warning("nbns: stopping before every name release was sent")
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.retiring = []
        for task in list(self._cleanup):
            task.cancel()
        async with self._lock:
            await self.broadcast.close()
            await self.unicast.close()

    async def _bind(self, plans: Iterable[NodePlan], keep: list[_Node]) -> None:
        plans = list(plans)
        unicast = [(p.address, p.port) for p in plans]
        unicast += [(n.plan.address, n.plan.port) for n in keep]
        bcast = [(p.broadcast, p.port) for p in plans if p.broadcast is not None]
        await update_together((self.unicast, unicast), (self.broadcast, bcast))

    def _switch(self, plans: dict[str, NodePlan], leaving: list[_Node]) -> None:
        old = self.view.by_address
        by_address: dict[str, _Node] = {}
        fresh: list[_Node] = []
        for ip, plan in plans.items():
            node = old.get(ip)
            if node is None or node.plan != plan:
                node = self._make_node(plan)
                fresh.append(node)
            by_address[ip] = node
        by_broadcast: dict[str, list[_Node]] = {}
        for node in by_address.values():
            if node.plan.broadcast is not None:
                by_broadcast.setdefault(node.plan.broadcast, []).append(node)
        self.view = _View(by_address, {k: tuple(v) for k, v in by_broadcast.items()})
        now = self.loop.time()
        for node in leaving:
            self._retire(node, plans, now)
        for node in fresh:
            for engine in node.engines:
                engine.start(now)

    def _retire(self, node: _Node, plans: dict[str, NodePlan], now: float) -> None:
        successor = plans.get(node.plan.address)
        if successor is not None and successor.identity.cozen_name == node.plan.identity.cozen_name:
            return  # same names on the same address: the new engines take over, no release
        for engine in node.engines:
            engine.release(now)
        self.retiring.append(node)

    def _make_node(self, plan: NodePlan) -> _Node:
        listener = self.unicast.active[(plan.address, plan.port)]
        state = NodeState(plan.identity, fast_path=plan.fast_path)
        node = _Node(plan, state, listener)
        if plan.broadcast is not None:
            names = [e for e in state.table]
            node.claim = BNodeClaim(
                names,
                plan.address,
                first_trn_id=self._trn_id(),
                ttl=plan.identity.ttl,
                node_type=plan.identity.node_type,
                broadcast=(plan.broadcast, plan.port),
            )
        if plan.wins is not None:
            node.wins = WinsClient(
                [e for e in state.table],
                plan.address,
                plan.wins,
                first_trn_id=self._trn_id(),
                ttl=plan.identity.ttl,
                node_type=plan.identity.node_type,
            )
        state.engines.extend(node.engines)
        return node

    # ------------------------------------------------------------ packets

    def _on_unicast(self, address: str, data: bytes, source: Address) -> bytes | None:
        node = self.view.by_address.get(address)
        if node is None:
            self._feed_retiring(address, data, source)
            return None
        state = node.state
        if state.fast_path:
            reply = fast_answer(state, data, broadcast=False)
            if reply is not None:
                return reply
        return self._general(node, data, source, broadcast=False)

    def _repeats(self, address: str) -> Repeats | None:
        node = self.view.by_address.get(address)
        return node.state.repeats if node is not None and node.state.fast_path else None

    def _on_broadcast(self, address: str, data: bytes, source: Address) -> None:
        # One datagram, every node on the subnet: decode it at most once, on the first miss.
        message: NbnsMessage | None = None
        for node in self.view.by_broadcast.get(address, ()):
            state = node.state
            reply = fast_answer(state, data, broadcast=True) if state.fast_path else None
            if reply is None:
                if message is None:
                    message = self._decode(data, source)
                    if message is None:
                        return
                reply = self._dispatch(node, message, source, broadcast=True)
            if reply is not None:
                node.listener.sendto(reply, source)

    def _general(
        self, node: _Node, data: bytes, source: Address, *, broadcast: bool
    ) -> bytes | None:
        message = self._decode(data, source)
        if message is None:
            return None
        return self._dispatch(node, message, source, broadcast=broadcast)

    def _decode(self, data: bytes, source: Address) -> NbnsMessage | None:
        try:
            return decode_packet(data)
        except MalformedMessage as exc:
            self.malformed += 1
            log.debug("nbns: dropped malformed datagram from %s: %s", source, exc)
            return None

    def _dispatch(
        self, node: _Node, message: NbnsMessage, source: Address, *, broadcast: bool
    ) -> bytes | None:
        now = self.loop.time()
        reply = handle_message(node.state, message, broadcast=broadcast, now=now)
        if isinstance(message, _RESPONSES):
            for other in self.retiring:
                if other.plan.address == node.plan.address:
                    for engine in other.engines:
                        engine.receive_message(message, now)
            self._after_response(node, source[0])
        return reply

    def _feed_retiring(self, address: str, data: bytes, source: Address) -> None:
        nodes = [n for n in self.retiring if n.plan.address == address]
        if not nodes:
            return
        now = self.loop.time()
        for node in nodes:
            for engine in node.engines:
                engine.receive(data, now)
            self._after_response(node, source[0])

    def _after_response(self, node: _Node, sender: str) -> None:
        self._log_events(node, sender)
        self._flush(node)
        self._reschedule()

    # ------------------------------------------------------------ engines

    def _on_timer(self) -> None:
        self._timer = None
        now = self.loop.time()
        for node in [*self.view.by_address.values(), *self.retiring]:
            for engine in node.engines:
                engine.handle_timer(now)
            self._log_events(node, None)
            self._flush(node)
        self._drop_finished()
        self._reschedule()

    def _drop_finished(self) -> None:
        done = [n for n in self.retiring if n.finished()]
        if not done:
            return
        self.retiring = [n for n in self.retiring if not n.finished()]
        if not self.retiring:
            self._released.set()
        task = self.loop.create_task(self._unbind_retired())
        self._cleanup.add(task)
        task.add_done_callback(self._cleanup.discard)

    async def _unbind_retired(self) -> None:
        async with self._lock:
            if not self.unicast.active:
                return  # stopped meanwhile
            wanted = [(n.plan.address, n.plan.port) for n in self.view.by_address.values()]
            wanted += [(n.plan.address, n.plan.port) for n in self.retiring]
            await self.unicast.update(wanted)

    def _reschedule(self) -> None:
        nodes = [*self.view.by_address.values(), *self.retiring]
        times = [t for n in nodes for e in n.engines if (t := e.next_timer()) is not None]
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if times:
            self._timer = self.loop.call_at(min(times), self._on_timer)
        elif not self.retiring or all(n.finished() for n in self.retiring):
            self._drop_finished()

    def _flush(self, node: _Node) -> None:
        for engine in node.engines:
            for data, destination in engine.datagrams_to_send():
                node.listener.sendto(data, destination)

    def _flush_all(self) -> None:
        for node in [*self.view.by_address.values(), *self.retiring]:
            self._flush(node)

    def _log_events(self, node: _Node, sender: str | None) -> None:
        address = node.plan.address
        if node.claim is not None:
            for event in node.claim.events():
                log.warning(
                    "nbns: %s on %s is in conflict: %s refused our registration (rcode %d)",
                    event.name,
                    address,
                    sender or event.address,
                    event.rcode,
                )
        if node.wins is not None:
            for refusal in node.wins.events():
                log.warning(
                    "nbns: WINS server %s refused %s for %s (rcode %d)",
                    node.plan.wins and node.plan.wins[0],
                    refusal.name,
                    address,
                    refusal.rcode,
                )
            self._log_wins_states(node, node.wins)

    def _log_wins_states(self, node: _Node, wins: WinsClient) -> None:
        server = node.plan.wins[0] if node.plan.wins else "?"
        for status in wins.status():
            if status.state in _TRANSIENT or node.wins_seen.get(status.name) == status.state:
                continue
            node.wins_seen[status.name] = status.state
            level = logging.WARNING if status.state == WinsState.UNREACHABLE else logging.INFO
            log.log(
                level,
                "nbns: WINS %s: %s for %s is %s (ttl %s)",
                server,
                status.name,
                node.plan.address,
                status.state.value,
                status.ttl,
            )

    # ------------------------------------------------------------ sockets

    async def _open_unicast(self, endpoint: Endpoint) -> UdpListener:
        address = endpoint[0]
        return await _open_nbns(
            self.loop,
            "nbns/udp",
            endpoint,
            lambda d, s: self._on_unicast(address, d, s),
            repeats=lambda: self._repeats(address),
        )

    async def _open_broadcast(self, endpoint: Endpoint) -> UdpListener:
        address = endpoint[0]
        return await _open_nbns(
            self.loop,
            "nbns/udp-broadcast",
            endpoint,
            lambda d, s: self._on_broadcast(address, d, s),
        )

    # ------------------------------------------------------------ status

    def bound(self) -> list[str]:
        endpoints = [*self.unicast.active, *self.broadcast.active]
        return [f"{host}:{port}" for host, port in endpoints]

    def status(self) -> dict[str, object]:
        """Names per node with their claim / WINS state, conflicts and counters."""
        listeners = [*self.unicast.active.values(), *self.broadcast.active.values()]
        return {
            "bound": self.bound(),
            "wins_server": self.wins_server and f"{self.wins_server[0]}:{self.wins_server[1]}",
            "received": sum(li.counters.received for li in listeners),
            "answered": sum(li.counters.answered for li in listeners),
            "malformed": self.malformed,
            "nodes": [_node_status(n) for n in self.view.by_address.values()],
            "releasing": [n.plan.identity.cozen_name for n in self.retiring],
        }


def _node_status(node: _Node) -> dict[str, object]:
    names = []
    for entry in node.state.table:
        key = entry.name.key()
        item: dict[str, object] = {
            "name": str(entry.name),
            "group": entry.group,
            "conflict": key in node.state.conflicted,
        }
        if node.claim is not None:
            item["claim"] = node.claim.state_of(entry.name).value
        if node.wins is not None:
            item["wins"] = node.wins.state_of(entry.name).value
        names.append(item)
    return {
        "cozen_name": node.plan.identity.cozen_name,
        "address": node.plan.address,
        "broadcast": node.plan.broadcast,
        "names": names,
        "conflicts": sorted(
            str(e.name) for e in node.state.table if e.name.key() in node.state.conflicted
        ),
    }


async def _open_nbns(
    loop: asyncio.AbstractEventLoop,
    what: str,
    endpoint: Endpoint,
    handler: DatagramHandler,
    *,
    repeats: RepeatSource | None = None,
) -> UdpListener:
    """Unicast and broadcast sockets share port 137 (and may send broadcasts)."""
    return await open_udp(
        loop, what, endpoint, handler, repeats=repeats, broadcast=True, reuse_addr=True
    )
