"""The NetBIOS name service (UDP 137): binds sockets and routes datagrams to nodes.

Each node's NBNS (RFC 1002 §4.2 answers and defense, §5.1.1 B-node claim,
§5.1.2 WINS registration) is one sans-IO :class:`~protocols.netbios.node.NbnsNode`.
Sockets follow nmbd's layout: one per management address (unicast queries,
node status, responses to our registrations, and everything we send, with
SO_BROADCAST for the claim) and one per subnet broadcast address. A unicast
datagram goes to ``receive_datagram`` of the node on that address (exact
repeats were answered before, by the compiled UDP loop from the node's
``repeats``; see responder/net/udp.py). A broadcast one goes to every node on
the subnet: fast path first, then ``receive_message``, decoded at most once;
replies leave from each node's own unicast socket. Malformed datagrams are
counted and dropped. Whenever a node's engines ran, :meth:`NbnsService._transmit`
logs its events and sends its datagrams; one timer drives every node.

Addresses come and go (a VRRP standby, ``[daemon] freebind``): an
:class:`~responder.net.addresses.AddressWatch` follows them through rtnetlink.
A node whose address is absent keeps its unicast socket (bound with
IP_FREEBIND, or bound before the address went: Linux keeps it bound) but
neither claims nor registers; when the address arrives, the plans are made
again (the broadcast address from a fresh read of the interfaces) and the
node starts claiming, as a new node would. When it goes, the node releases
its names by broadcast as at stop; since the kernel no longer sends from that
address, the release leaves on the link layer of the interface that held it
(:mod:`responder.net.linksend`).

Every socket applies the service's guard (``[limits]``,
responder/services/limits.py): datagrams from reflection sources are dropped
unread, and answers are rate-limited per source prefix, node status at its
own lower rate; a limited NBNS answer is dropped (no TCP to retry on, so no
slip). Replies to broadcasts, sent from each node's own socket, go through
the same limiter.

A reload swaps the node view in one assignment: new nodes start claiming,
unchanged ones keep their state, removed or changed ones retire: they release
their names (unless the same names stay on the same address) and keep their
address and socket until finished; a datagram on an address they share is
decoded once and given to all. :meth:`NbnsService.stop` releases every name
and waits at most :data:`STOP_BUDGET` seconds for it.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
import secrets
from collections import Counter
from collections.abc import Callable, Container, Iterable, Mapping
from dataclasses import dataclass

from protocols.errors import MalformedMessage
from protocols.netbios.claim import ClaimEvent
from protocols.netbios.nbns import NbnsMessage, decode_packet
from protocols.netbios.node import NbnsIdentity, NbnsNode, NodeEvent
from protocols.netbios.wins import WinsEvent, WinsState, WinsStateChange
from protocols.ratelimit import NBNS_STATUS_SUFFIX
from protocols.repeats import Repeats
from responder.config import Config
from responder.identity import NodeIdentity, node_identities
from responder.net.addresses import AddressChange, AddressInfo, AddressWatch
from responder.net.guard import ListenerGuard
from responder.net.interfaces import BroadcastMap, subnet_broadcasts
from responder.net.linksend import LinkSender
from responder.net.listeners import ListenerSet, open_udp, update_together
from responder.net.udp import Address, DatagramHandler, RepeatSource, UdpListener
from responder.offload import off_loop
from responder.services.limits import limits_policy, updated_guard

log = logging.getLogger(__name__)

Endpoint = tuple[str, int]
STOP_BUDGET = 1.2  # seconds stop() waits for releases (SIGTERM must end us within 2 s)
_CONFLICT = "nbns: %s on %s is in conflict: %s refused our registration (rcode %d)"
_REFUSED = "nbns: WINS server %s refused %s for %s (rcode %d)"
_WINS_STATE = "nbns: WINS %s: %s for %s is %s (ttl %s)"


@dataclass(frozen=True, slots=True)
class NodePlan:
    """One node's settings, from the config and the host's interfaces: compared on reload."""

    identity: NbnsIdentity
    port: int
    broadcast: str | None  # subnet broadcast address, None: no claim, no broadcast socket
    wins: Address | None
    fast_path: bool
    present: bool = True  # the address is on an interface: claim and register

    @property
    def address(self) -> str:
        return self.identity.ipv4

    def build(self, trn_id: Callable[[], int]) -> NbnsNode:
        """The node this plan describes (its engines' first IDs drawn from ``trn_id``)."""
        bcast = None if self.broadcast is None else (self.broadcast, self.port)
        return NbnsNode(
            self.identity, fast_path=self.fast_path, broadcast=bcast, wins=self.wins, trn_id=trn_id
        )


def plan_nodes(
    config: Config,
    interfaces: BroadcastMap,
    presence: Container[str] | None,
    last: Mapping[str, AddressInfo],
) -> dict[str, NodePlan]:
    """Every node's plan, by address (pure: safe to run off the event loop).

    ``presence``: the addresses on an interface now (None: addresses are not
    followed, every one counts as present); ``last``: where each address was
    last seen, for the broadcast addresses ``ip`` did not list.
    """
    nodes = node_identities(config)
    broadcasts = dict(interfaces) if config.netbios.broadcast else {}
    for node in nodes if config.netbios.broadcast else ():
        where = last.get(node.address)
        if node.ipv4 not in broadcasts and where is not None and where.broadcast:
            broadcasts[node.ipv4] = ipaddress.IPv4Address(where.broadcast)
    return {
        n.address: plan_node(config, n, broadcasts, presence is None or n.address in presence)
        for n in nodes
    }


def rebuild(
    old: Mapping[str, NodePlan], new: Mapping[str, NodePlan], trn_id: Callable[[], int]
) -> tuple[list[str], dict[str, NbnsNode]]:
    """The addresses whose old node goes, and a node for each new or changed plan (pure)."""
    stale = [ip for ip, plan in old.items() if new.get(ip) != plan]
    built = {ip: plan.build(trn_id) for ip, plan in new.items() if old.get(ip) != plan}
    return stale, built


def plan_node(
    config: Config, node: NodeIdentity, broadcasts: BroadcastMap, present: bool = True
) -> NodePlan:
    netbios = config.netbios
    wins = None if netbios.wins_server is None else (str(netbios.wins_server), netbios.wins_port)
    bcast = broadcasts.get(node.ipv4) if netbios.broadcast and present else None
    broadcast = None if bcast is None else str(bcast)
    return NodePlan(node.nbns, netbios.port, broadcast, wins, netbios.fast_path, present)


@dataclass(eq=False, slots=True)
class _Node:
    """A node with the plan it was built from and the socket it sends from."""

    plan: NodePlan
    nbns: NbnsNode
    listener: UdpListener
    started: bool = False  # claimed or registered: leaving means releasing


@dataclass(frozen=True, slots=True)
class _View:
    """Everything one config load answers with; swapped whole on reload."""

    by_address: dict[str, _Node]
    by_broadcast: dict[str, list[_Node]]

    @staticmethod
    def of(by_address: dict[str, _Node]) -> _View:
        by_broadcast: dict[str, list[_Node]] = {}
        for node in by_address.values():
            if node.plan.broadcast is not None:
                by_broadcast.setdefault(node.plan.broadcast, []).append(node)
        return _View(by_address, by_broadcast)


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
        addresses: AddressWatch | None = None,
    ) -> None:
        """``addresses``: the watch to follow (default: one of its own, opened at apply)."""
        self.loop = loop
        self._interfaces = interfaces
        self._trn_id = trn_id
        self.view = _View.of({})
        self.retiring: list[_Node] = []
        self.malformed = 0
        self.fast_path_answers = 0  # replies from the nodes' fast paths (Python; repeats too)
        # For /readyz and /metrics: who objected to a name ((address, "NAME<xx>") -> objector),
        # and the WINS outcomes seen (registered, conflict, refused, ...), both from events.
        self.objectors: dict[tuple[str, str], str] = {}
        self.wins_outcomes: Counter[str] = Counter()
        self.guard: ListenerGuard | None = None  # set by apply()
        self.wins_server: Address | None = None
        self.unicast: ListenerSet[Endpoint, UdpListener] = ListenerSet(self._open_unicast)
        self.broadcast: ListenerSet[Endpoint, UdpListener] = ListenerSet(self._open_broadcast)
        self._timer: asyncio.TimerHandle | None = None
        self._lock = asyncio.Lock()
        self._released = asyncio.Event()
        self._cleanup: set[asyncio.Task[None]] = set()
        self.addresses = AddressWatch(loop) if addresses is None else addresses
        self._watching = False  # the watch is open and subscribed to
        self._link = LinkSender()
        self._config: Config | None = None
        self._serial = 0
        self._freebind = False
        self._ip_ttl = 128  # [daemon] ip_ttl

    # ------------------------------------------------------------ lifecycle

    async def apply(self, config: Config, serial: int) -> None:
        """Start serving ``config``, or switch to it.

        Raises:
            BindError: a new address could not be bound (nothing changed).
        """
        self._watch()
        # `ip` runs in a thread: a child process to wait for is no work for the event loop
        interfaces = await off_loop(self._interfaces)
        async with self._lock:
            self._freebind = config.daemon.freebind
            self._ip_ttl = self._link.ttl = config.daemon.ip_ttl
            # Planning and precomputing 1,000 nodes' answers is ~0.2 s of pure work: in a
            # thread, from snapshots, so that the loop keeps answering meanwhile.
            presence = self.addresses.presence() if self._watching else None
            last = self.addresses.last_known() if self._watching else {}
            old = self.view.by_address  # changed only under the lock we hold
            old_plans = {ip: node.plan for ip, node in old.items()}

            def prepare() -> tuple[dict[str, NodePlan], list[str], dict[str, NbnsNode]]:
                plans = plan_nodes(config, interfaces, presence, last)
                return plans, *rebuild(old_plans, plans, self._trn_id)

            plans, stale, built = await off_loop(prepare)
            leaving = [old[ip] for ip in stale]
            policy = limits_policy(
                config.limits,
                config.netbios.port,
                interfaces.values(),
                slips=False,
                heavy=NBNS_STATUS_SUFFIX,
            )
            previous, self.guard = self.guard, updated_guard(self.guard, policy, None, "nbns/udp")
            try:
                await self._bind(plans.values(), [*self.retiring, *leaving])
            except BaseException:
                self.guard = previous
                raise
            self._switch(plans, leaving, built)
            self._config, self._serial = config, serial
        server = config.netbios.wins_server
        self.wins_server = None if server is None else (str(server), config.netbios.wins_port)
        self._transmit(self._all())

    def _watch(self) -> None:
        if self._watching:
            return
        try:
            self.addresses.open()
        except OSError as exc:  # every address then counts as present, as before
            log.warning("nbns: %s", exc)
            return
        self.addresses.subscribe(self._on_address_change)
        self._link.open()
        self._watching = True

    @property
    def watch(self) -> AddressWatch | None:
        """The address watch while it is open (rtnetlink), else None."""
        return self.addresses if self._watching else None

    def _present(self, address: str) -> bool:
        return not self._watching or self.addresses.present(address)

    def _on_address_change(self, change: AddressChange) -> None:
        """An address came or went: plan again if a node's presence changed."""
        nodes = self.view.by_address.items()
        changed = [a for a, n in nodes if n.plan.present != self._present(a)]
        if self._config is None or not changed:
            return
        for address in changed:
            what = "arrived: claiming" if self._present(address) else "went away: releasing"
            log.info("nbns: address %s %s its names", address, what)
        task = self.loop.create_task(self._replan(self._config, self._serial))
        self._cleanup.add(task)
        task.add_done_callback(self._cleanup.discard)

    async def _replan(self, config: Config, serial: int) -> None:
        try:
            await self.apply(config, serial)
        except OSError as exc:
            log.error("nbns: cannot follow the address change: %s", exc)

    async def stop(self) -> None:
        """Release every name (bounded by :data:`STOP_BUDGET`), then unbind."""
        if self._watching:
            self.addresses.unsubscribe(self._on_address_change)
        now = self.loop.time()
        nodes = self._all()
        self.view = _View.of({})
        self.retiring = nodes
        for node in nodes:
            node.nbns.release(now)
        self._transmit(nodes)
        if not all(node.nbns.finished() for node in nodes):
            self._released.clear()
            try:
                await asyncio.wait_for(self._released.wait(), STOP_BUDGET)
            except TimeoutError:
                log.warning("nbns: stopping before every name release was sent")
        self._cancel_timer()
        self.retiring = []
        for task in list(self._cleanup):
            task.cancel()
        async with self._lock:
            await self.broadcast.close()
            await self.unicast.close()
        if self._watching:
            self.addresses.close()
            self._link.close()
            self._watching = False
        self._config = None

    async def _bind(self, plans: Iterable[NodePlan], keep: list[_Node]) -> None:
        plans = list(plans)
        unicast = [(p.address, p.port) for p in plans]
        unicast += [(n.plan.address, n.plan.port) for n in keep]
        bcast = [(p.broadcast, p.port) for p in plans if p.broadcast is not None]
        await update_together((self.unicast, unicast), (self.broadcast, bcast))
        self.unicast.set_ip_ttl(self._ip_ttl)
        self.broadcast.set_ip_ttl(self._ip_ttl)

    def _switch(
        self, plans: dict[str, NodePlan], leaving: list[_Node], built: dict[str, NbnsNode]
    ) -> None:
        old = self.view.by_address
        by_address: dict[str, _Node] = {}
        fresh: list[_Node] = []
        for ip, plan in plans.items():
            node = old.get(ip)
            if node is None or node.plan != plan:
                listener = self.unicast.active[(plan.address, plan.port)]
                node = _Node(plan, built[ip], listener)
                fresh.append(node)
            by_address[ip] = node
        self.view = _View.of(by_address)
        now = self.loop.time()
        for node in leaving:
            self._retire(node, plans, now)
        for node in fresh:
            if node.plan.present:  # a standby's node waits for its address
                node.nbns.start(now)
                node.started = True
            else:
                log.info("nbns: %s is on no interface: its names wait for it", node.plan.address)

    def _retire(self, node: _Node, plans: dict[str, NodePlan], now: float) -> None:
        if not node.started:
            return  # it never claimed: nothing to release
        successor = plans.get(node.plan.address)
        if (
            successor is not None
            and successor.present
            and successor.identity.cozen_name == node.plan.identity.cozen_name
        ):
            return  # same names on the same address: the new engines take over, no release
        node.nbns.release(now)
        self.retiring.append(node)

    # ------------------------------------------------------------ routing

    def _on_unicast(self, address: str, data: bytes, source: Address) -> bytes | None:
        node = self.view.by_address.get(address)
        if self.retiring:  # rare: names being released, perhaps on this address
            return self._to_all(self._sharing(address, node), data, source)
        if node is None:
            return None
        # The hot path: a precomputed answer needs no clock read and no transmit check.
        reply = node.nbns.fast_answer(data, broadcast=False) if node.plan.fast_path else None
        if reply is None:
            return self._receive(node, data, source)
        self.fast_path_answers += 1
        return reply

    def _receive(self, node: _Node, data: bytes, source: Address) -> bytes | None:
        try:
            reply = node.nbns.receive_datagram(data, broadcast=False, now=self.loop.time())
        except MalformedMessage as exc:
            self._count_malformed(source, exc)
            return None
        if node.nbns.needs_transmit:
            self._transmit([node], source[0])
        return reply

    def _repeats(self, address: str) -> Repeats | None:
        node = self.view.by_address.get(address)
        return node.nbns.repeats if node is not None and node.plan.fast_path else None

    def _on_broadcast(self, address: str, data: bytes, source: Address) -> None:
        # One datagram, every node on the subnet: decode it at most once, on the first miss.
        message: NbnsMessage | None = None
        for node in self.view.by_broadcast.get(address, ()):
            reply = node.nbns.fast_answer(data, broadcast=True)
            if reply is not None:
                self.fast_path_answers += 1
            else:
                if message is None:
                    message = self._decode(data, source)
                    if message is None:
                        return
                nodes = self._sharing(node.plan.address, node)
                reply = self._deliver(nodes, message, source, broadcast=True)
            if reply is not None and self.guard is not None:
                reply = self.guard.limit_sent(data, source, reply)
            if reply is not None:
                node.listener.sendto(reply, source)

    def _sharing(self, address: str, live: _Node | None) -> list[_Node]:
        """The nodes on ``address``: the live one first, then the retiring ones."""
        nodes = [] if live is None else [live]
        if self.retiring:
            nodes += [n for n in self.retiring if n.plan.address == address]
        return nodes

    def _to_all(self, nodes: list[_Node], data: bytes, source: Address) -> bytes | None:
        """A unicast datagram for the nodes on one address, the live one first."""
        if len(nodes) < 2:
            return self._receive(nodes[0], data, source) if nodes else None
        reply = nodes[0].nbns.fast_answer(data, broadcast=False)
        if reply is not None:
            self.fast_path_answers += 1
            return reply
        message = self._decode(data, source)
        return None if message is None else self._deliver(nodes, message, source, broadcast=False)

    def _deliver(
        self, nodes: list[_Node], message: NbnsMessage, source: Address, *, broadcast: bool
    ) -> bytes | None:
        """Give ``message`` to every node on one address; the first one's reply."""
        now = self.loop.time()
        first, *others = nodes
        reply = first.nbns.receive_message(message, broadcast=broadcast, now=now)
        for node in others:
            node.nbns.receive_message(message, broadcast=broadcast, now=now)
        if others or first.nbns.needs_transmit:
            self._transmit(nodes, source[0])
        return reply

    def _decode(self, data: bytes, source: Address) -> NbnsMessage | None:
        try:
            return decode_packet(data)
        except MalformedMessage as exc:
            self._count_malformed(source, exc)
            return None

    def _count_malformed(self, source: Address, exc: MalformedMessage) -> None:
        self.malformed += 1
        log.debug("nbns: dropped malformed datagram from %s: %s", source, exc)

    # ------------------------------------------------------------ driving

    def _all(self) -> list[_Node]:
        return [*self.view.by_address.values(), *self.retiring]

    def _on_timer(self) -> None:
        self._timer = None
        now = self.loop.time()
        nodes = self._all()
        for node in nodes:
            node.nbns.handle_timer(now)
        self._transmit(nodes)
        self._drop_finished()

    def _transmit(self, nodes: list[_Node], sender: str | None = None) -> None:
        """Log the events and send the datagrams of the ``nodes`` whose engines ran.

        Each node sends from its own unicast socket; the timer is then rescheduled.
        ``sender``: whose datagram made them run (named in conflict lines), None
        for the timer, start and release.
        """
        ran = [n for n in nodes if n.nbns.needs_transmit]
        for node in ran:
            for event in node.nbns.events():
                _log_event(node.plan, event, sender)
                self._note_event(node.plan, event, sender)
            for data, destination in node.nbns.datagrams_to_send():
                self._send(node, data, destination)
        if ran:
            self._reschedule()

    def _note_event(self, plan: NodePlan, event: NodeEvent, sender: str | None) -> None:
        match event:
            case ClaimEvent(name=name, address=objector):
                self.objectors[plan.address, str(name)] = sender or objector
            case WinsEvent(name=name):
                self.wins_outcomes["refused"] += 1
                server = plan.wins[0] if plan.wins else "?"
                self.objectors[plan.address, str(name)] = sender or server
            case WinsStateChange(state=state):
                self.wins_outcomes[state.value] += 1

    def _drop_finished(self) -> None:
        if not any(n.nbns.finished() for n in self.retiring):
            return
        self.retiring = [n for n in self.retiring if not n.nbns.finished()]
        if not self.retiring:
            self._released.set()
        task = self.loop.create_task(self._unbind_retired())
        self._cleanup.add(task)
        task.add_done_callback(self._cleanup.discard)

    async def _unbind_retired(self) -> None:
        async with self._lock:
            if not self.unicast.active:
                return  # stopped meanwhile
            await self.unicast.update([(n.plan.address, n.plan.port) for n in self._all()])

    def _reschedule(self) -> None:
        times = [t for n in self._all() if (t := n.nbns.next_timer()) is not None]
        self._cancel_timer()
        if times:
            self._timer = self.loop.call_at(min(times), self._on_timer)
        # A release may finish on a response, long before any timer (a WINS
        # refresh can be hours away): let go of finished nodes now.
        self._drop_finished()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # ------------------------------------------------------------ sockets

    async def _open_unicast(self, endpoint: Endpoint) -> UdpListener:
        address = endpoint[0]
        handler = functools.partial(self._on_unicast, address)
        return await self._open("nbns/udp", endpoint, handler, lambda: self._repeats(address))

    async def _open_broadcast(self, endpoint: Endpoint) -> UdpListener:
        handler = functools.partial(self._on_broadcast, endpoint[0])
        # Always free: a new address is announced just before the kernel adds its
        # broadcast route, and a broadcast address comes from the interfaces anyway.
        return await self._open("nbns/udp-broadcast", endpoint, handler, freebind=True)

    async def _open(
        self,
        what: str,
        endpoint: Endpoint,
        handler: DatagramHandler,
        repeats: RepeatSource | None = None,
        *,
        freebind: bool = False,
    ) -> UdpListener:
        """Unicast and broadcast sockets share port 137 (and may send broadcasts)."""
        return await open_udp(
            self.loop,
            what,
            endpoint,
            handler,
            repeats=repeats,
            guard=lambda: self.guard,
            broadcast=True,
            reuse_addr=True,
            freebind=freebind or self._freebind,
            ip_ttl=self._ip_ttl,
        )

    def _send(self, node: _Node, data: bytes, destination: Address) -> None:
        """From the node's socket; a broadcast from a vanished address on the link layer."""
        if node.listener.sendto(data, destination) or self._present(node.plan.address):
            return
        where = self.addresses.where(node.plan.address)
        if where is not None and destination[0] == node.plan.broadcast:
            self._link.broadcast(
                where.ifindex, (node.plan.address, node.plan.port), destination, data
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
            "listeners": self._listener_status(),
            "wins_server": self.wins_server and f"{self.wins_server[0]}:{self.wins_server[1]}",
            "received": sum(li.counters.received for li in listeners),
            "answered": sum(li.counters.answered for li in listeners),
            "malformed": self.malformed,
            "nodes": [
                {**n.nbns.status(), "address_present": n.plan.present}
                for n in self.view.by_address.values()
            ],
            "releasing": [n.plan.identity.cozen_name for n in self.retiring],
            **({} if self.guard is None else self.guard.status()),
        }

    def _listener_status(self) -> list[dict[str, object]]:
        """Per socket: ``address_present`` False while its address is on no interface."""
        found = [
            {"address": f"{h}:{p}", "kind": "unicast", "address_present": self._present(h)}
            for h, p in self.unicast.active
        ]
        found += [
            {"address": f"{h}:{p}", "kind": "broadcast", "address_present": True}
            for h, p in self.broadcast.active
        ]
        return found


def _log_event(plan: NodePlan, event: NodeEvent, sender: str | None) -> None:
    server = plan.wins[0] if plan.wins else "?"
    fields = {"node": plan.identity.cozen_name, "address": plan.address}  # --log-format json
    match event:
        case ClaimEvent(name=name, rcode=rcode, address=objector):
            log.warning(_CONFLICT, name, plan.address, sender or objector, rcode, extra=fields)
        case WinsEvent(name=name, rcode=rcode):
            log.warning(_REFUSED, server, name, plan.address, rcode, extra=fields)
        case WinsStateChange(name=name, state=state, ttl=ttl):
            level = logging.WARNING if state == WinsState.UNREACHABLE else logging.INFO
            log.log(level, _WINS_STATE, server, name, plan.address, state.value, ttl, extra=fields)
