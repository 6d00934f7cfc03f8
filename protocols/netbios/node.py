"""One node's NetBIOS name service (sans-IO): answers, defense, claim, WINS.

Theory of operation (RFC 1002 §4.2.12-§4.2.18, §5.1.1, §5.1.2; MS-NBTE
§3.2.5):

- An :class:`NbnsNode` owns a small name table derived from its identity
  (:func:`build_name_table`): ``<COZEN><00>`` unique, ``<COZEN><20>`` unique
  when it serves SMB, ``<WORKGROUP><00>`` and ``<WORKGROUP><1E>`` groups.
  The cluster's public name is never in the table; building a table whose
  Cozen name equals the public name is refused.
- Names compare case-insensitively (ASCII letters only), suffix exactly, and
  scope case-insensitively: a question whose scope differs from the node's
  (empty by default) is not ours, as on Windows where scopes isolate nodes.
- It also owns the node's registration engines: a B-node claim
  (:class:`~protocols.netbios.claim.BNodeClaim`, §5.1.1.1 and §5.1.1.5) when
  the node has a subnet broadcast address, and a WINS client
  (:class:`~protocols.netbios.wins.WinsClient`, §5.1.2, MS-NBTE §3.2.5.2)
  when a WINS server is set.
- The daemon drives it aioquic-style. A datagram on the node's own address
  goes to :meth:`NbnsNode.receive_datagram`, which returns the reply to send
  back to the datagram's source, or ``None`` (the daemon tries
  :meth:`NbnsNode.fast_answer` itself first, so that a precomputed answer
  costs no clock read). A datagram on a subnet's broadcast address concerns
  every node of the subnet, so the daemon decodes it once: it tries each
  node's :meth:`NbnsNode.fast_answer` and, on the first miss, decodes and
  hands the message to :meth:`NbnsNode.receive_message` of that node and the
  following ones. Both entries answer alike:

  * name query for an active name of ours: positive response (AA, RD; RA
    clear as we are no NBNS), the question name echoed, our address with
    NB_FLAGS G for groups and the configured owner node type, and the TTL.
    Any other name, the public name included, gets silence: we never send
    negative answers. Windows answers NAM_ERR to unicast queries only when it
    is the NBNS (WINS) itself, which we are not.
  * node status for ``*<00>`` or an active name of ours: one NBSTAT record
    echoing the question name, the whole table with NAME_FLAGS (ACT; G for
    groups; CNF for names in conflict) and the unit ID (MAC) in the first six
    statistics bytes. Node status is point-to-point (§4.2.17), so a request
    that arrived on a broadcast address gets silence.
  * registration or refresh (opcodes 5/8/9/0xF) of one of our active unique
    names for another address: a negative registration response with RCODE
    ACT_ERR (§4.2.6), whether it arrived by broadcast or unicast. Group names
    are never defended.
  * responses (R=1) are never answered; they go to the node's own engines,
    whose conflicts mark our names. A name in conflict is no longer answered
    or defended.
  * everything else (releases, requests from other nodes' engines): silence.

- :meth:`NbnsNode.start` begins the claim and the WINS registration,
  :meth:`NbnsNode.handle_timer` runs at :meth:`NbnsNode.next_timer`. While
  :attr:`NbnsNode.needs_transmit` is set the adapter sends
  :meth:`NbnsNode.datagrams_to_send` (each with its destination, from the
  node's own address) and logs :meth:`NbnsNode.events`: conflicts
  (:class:`~protocols.netbios.claim.ClaimEvent`), WINS refusals
  (:class:`~protocols.netbios.wins.WinsEvent`) and lasting WINS state changes
  (:class:`~protocols.netbios.wins.WinsStateChange`).
- :meth:`NbnsNode.release` (§5.1.1.5, §5.1.2.5) stops answering and defending
  at once and releases every name; responses still reach the engines, and
  :meth:`NbnsNode.finished` says when the last release is done.
- The fast path (DESIGN.md "precomputed answer table"): at build time the
  general reply functions run once per answerable question; the wire bytes of
  the question (name, type, class) key the reply without its transaction ID.
  :meth:`NbnsNode.fast_answer` checks the header, looks the rest of the
  datagram up and patches the ID; it remembers unicast hits in
  :attr:`NbnsNode.repeats` (:mod:`protocols.repeats`). Anything else falls
  through to the general path. Both tables are rebuilt when a name enters
  conflict, and emptied at release.

Time is injected (``now``) and only passed on to the engines; so is the
randomness of their first transaction IDs (``trn_id``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from protocols.netbios.claim import BNodeClaim, ClaimEvent
from protocols.netbios.names import WILDCARD, NetbiosName, encode_netbios_name
from protocols.netbios.nbns import (
    REGISTRATION_OPCODES,
    AddressEntry,
    NameFlags,
    NameQueryRequest,
    NameQueryResponse,
    NameRegistrationRequest,
    NbFlags,
    NbnsMessage,
    NmFlags,
    NodeStatusEntry,
    NodeStatusRequest,
    NodeStatusResponse,
    Rcode,
    RegistrationResponse,
    ReleaseResponse,
    RRType,
    WaitForAck,
    decode_packet,
    make_statistics,
)
from protocols.netbios.nbns_encode import (
    encode_name_query_response,
    encode_node_status_response,
    encode_registration_response,
)
from protocols.netbios.registration import Address, NameKey, OwnedName
from protocols.netbios.wins import WinsClient, WinsEvent, WinsState, WinsStateChange
from protocols.repeats import Repeats, recall, remember

DEFAULT_TTL = 300_000  # seconds; the Windows default for registered names

NodeEvent = ClaimEvent | WinsEvent | WinsStateChange

_QUERY_FLAGS = NmFlags.AA | NmFlags.RD
_STATUS_FLAGS = NmFlags.AA
_DEFENSE_FLAGS = NmFlags.AA | NmFlags.RD | NmFlags.RA
_QUESTION_TAIL = {RRType.NB: b"\x00\x20\x00\x01", RRType.NBSTAT: b"\x00\x21\x00\x01"}
_REQUEST_COUNTS = b"\x00\x01\x00\x00\x00\x00\x00\x00"
_RESPONSES = (
    NameQueryResponse,
    NodeStatusResponse,
    RegistrationResponse,
    ReleaseResponse,
    WaitForAck,
)
_PASSING = (WinsState.IDLE, WinsState.REGISTERING, WinsState.RELEASING)  # no state change event


@dataclass(frozen=True, slots=True)
class NbnsIdentity:
    """What a node presents over NBNS. ``node_type`` is ONT_H with a WINS server."""

    cozen_name: str
    workgroup: str
    ipv4: str
    mac: bytes
    serve_smb: bool = True
    public_name: str = ""
    ttl: int = DEFAULT_TTL
    scope: str = ""
    node_type: NbFlags = NbFlags.ONT_B


def build_name_table(identity: NbnsIdentity) -> tuple[OwnedName, ...]:
    """Return the node's names: Cozen <00> (and <20> with SMB), workgroup <00>/<1E>.

    Raises:
        ValueError: a name is invalid, or the Cozen name is the public name.
    """
    cozen = NetbiosName.make(identity.cozen_name, 0x00, identity.scope)
    if identity.public_name and cozen.key() == NetbiosName.make(identity.public_name).key():
        raise ValueError("the Cozen name must differ from the cluster's public name")
    entries = [OwnedName(cozen, False)]
    if identity.serve_smb:
        entries.append(
            OwnedName(NetbiosName.make(identity.cozen_name, 0x20, identity.scope), False)
        )
    entries.extend(
        OwnedName(NetbiosName.make(identity.workgroup, suffix, identity.scope), True)
        for suffix in (0x00, 0x1E)
    )
    return tuple(entries)


class NbnsNode:
    """One node's NBNS: its names, conflicts, precomputed answers and registration engines."""

    __slots__ = (
        "_by_key",
        "_fast",
        "_needs_transmit",
        "_released",
        "_wins_changes",
        "_wins_seen",
        "broadcast",
        "claim",
        "conflicted",
        "fast_path",
        "identity",
        "repeats",
        "table",
        "wins",
    )

    def __init__(
        self,
        identity: NbnsIdentity,
        *,
        fast_path: bool = True,
        broadcast: Address | None = None,
        wins: Address | None = None,
        trn_id: Callable[[], int] | None = None,
    ) -> None:
        """``broadcast``: where the B-node claim goes; ``wins``: the WINS server.

        ``trn_id`` draws the first transaction ID of each engine (claim, then WINS).

        Raises:
            ValueError: a name is invalid, the Cozen name is the public name, or
                an engine is asked for without ``trn_id``.
        """
        self.identity = identity
        self.table = build_name_table(identity)
        self._by_key = {entry.name.key(): entry for entry in self.table}
        self.conflicted: set[NameKey] = set()
        self.fast_path = fast_path
        self.broadcast = broadcast
        self._fast: dict[bytes, tuple[bytes, bool]] = {}
        # Unicast repeats, as fast_answer gave them; cleared with _fast, so
        # they never outlive the answers they copy.
        self.repeats: Repeats = {}
        self._released = False
        self._needs_transmit = False
        self._wins_seen: dict[NetbiosName, WinsState] = {}
        self._wins_changes: list[WinsStateChange] = []
        self.claim = None if broadcast is None else self._make_claim(broadcast, trn_id)
        self.wins = None if wins is None else self._make_wins(wins, trn_id)
        self._rebuild_fast()

    def _make_claim(self, broadcast: Address, trn_id: Callable[[], int] | None) -> BNodeClaim:
        return BNodeClaim(
            self.table,
            self.identity.ipv4,
            first_trn_id=_first_trn_id(trn_id),
            ttl=self.identity.ttl,
            node_type=self.identity.node_type,
            broadcast=broadcast,
        )

    def _make_wins(self, server: Address, trn_id: Callable[[], int] | None) -> WinsClient:
        return WinsClient(
            self.table,
            self.identity.ipv4,
            server,
            first_trn_id=_first_trn_id(trn_id),
            ttl=self.identity.ttl,
            node_type=self.identity.node_type,
        )

    # ------------------------------------------------------------ receiving

    def receive_datagram(self, datagram: bytes, *, broadcast: bool, now: float) -> bytes | None:
        """Return the reply to one datagram, to be sent to its source; or ``None``.

        ``broadcast`` says whether it arrived on a broadcast address. Tries the
        fast path first unless ``fast_path`` is off.

        Raises:
            MalformedMessage: the datagram is not a valid NBNS packet (count it, drop it).
        """
        if self.fast_path:
            reply = self.fast_answer(datagram, broadcast=broadcast)
            if reply is not None:
                return reply
        return self.receive_message(decode_packet(datagram), broadcast=broadcast, now=now)

    def receive_message(self, message: NbnsMessage, *, broadcast: bool, now: float) -> bytes | None:
        """Return the reply to a decoded message (to be sent to its source), or ``None``.

        Responses go to the node's engines, which may put names in conflict.
        """
        if isinstance(message, _RESPONSES):
            self._to_engines(message, now)
            return None
        if self._released:
            return None
        match message:
            case NameQueryRequest():
                return self._query_reply(message.name, message.trn_id)
            case NodeStatusRequest():
                return None if broadcast else self._status_reply(message.name, message.trn_id)
            case NameRegistrationRequest() if message.opcode in REGISTRATION_OPCODES:
                return self._defense_reply(message)
        return None

    def fast_answer(self, datagram: bytes, *, broadcast: bool) -> bytes | None:
        """Answer a common query or node status from the precomputed table.

        Returns ``None`` whenever the general path must decide (it may still
        answer); never a reply the general path would not give.
        """
        if not broadcast:
            reply = recall(self.repeats, datagram)
            if reply is not None:
                return reply
        if len(datagram) < 50 or datagram[2] & 0xF8 or datagram[4:12] != _REQUEST_COUNTS:
            return None
        hit = self._fast.get(datagram[12:])
        if hit is None or (hit[1] and broadcast):
            return None
        reply = datagram[:2] + hit[0]
        if not broadcast:  # a hit has one fixed-size question, so keys stay small
            remember(self.repeats, datagram, reply)
        return reply

    def mark_conflict(self, key: NameKey) -> None:
        """Stop answering and defending the name with ``key`` (if it is ours)."""
        if key in self._by_key and key not in self.conflicted:
            self.conflicted.add(key)
            self._rebuild_fast()

    def _to_engines(self, message: NbnsMessage, now: float) -> None:
        for engine in self._engines():
            engine.receive_message(message, now)
            for key in engine.conflicted():
                self.mark_conflict(key)
        self._ran()

    # ------------------------------------------------------------ engines

    def start(self, now: float) -> None:
        """Begin claiming the names (B-node) and registering them (WINS)."""
        for engine in self._engines():
            engine.start(now)
        self._needs_transmit = True

    def release(self, now: float) -> None:
        """Stop answering and defending now, and release every name."""
        self._released = True
        self._rebuild_fast()
        for engine in self._engines():
            engine.release(now)
        self._needs_transmit = True

    def handle_timer(self, now: float) -> None:
        """Run every engine's resend, refresh or completion whose time has come."""
        for engine in self._engines():
            engine.handle_timer(now)
        self._ran()

    def next_timer(self) -> float | None:
        """When :meth:`handle_timer` must next run, or ``None``."""
        times = [t for e in self._engines() if (t := e.next_timer()) is not None]
        return min(times, default=None)

    @property
    def needs_transmit(self) -> bool:
        """The engines ran (start, release, timer, a response) since :meth:`datagrams_to_send`.

        The adapter then sends those datagrams, logs :meth:`events` and reads
        :meth:`next_timer`. Answering a request never sets it.
        """
        return self._needs_transmit

    def datagrams_to_send(self) -> list[tuple[bytes, Address]]:
        """Hand over (and forget) the engines' datagrams with their destinations."""
        self._needs_transmit = False
        return [item for engine in self._engines() for item in engine.datagrams_to_send()]

    def events(self) -> list[NodeEvent]:
        """Hand over (and forget) conflicts, WINS refusals and WINS state changes."""
        events: list[NodeEvent] = []
        if self.claim is not None:
            events.extend(self.claim.events())
        if self.wins is not None:
            events.extend(self.wins.events())
        events.extend(self._wins_changes)
        self._wins_changes = []
        return events

    def finished(self) -> bool:
        """True when no engine has a claim, registration or release in flight."""
        return all(engine.finished() for engine in self._engines())

    def _engines(self) -> list[BNodeClaim | WinsClient]:
        return [e for e in (self.claim, self.wins) if e is not None]

    def _ran(self) -> None:
        # The engines ran: there may be datagrams, events, a new timer, new WINS states.
        self._needs_transmit = True
        if self.wins is None:
            return
        for status in self.wins.status():
            if status.state in _PASSING or self._wins_seen.get(status.name) == status.state:
                continue
            self._wins_seen[status.name] = status.state
            self._wins_changes.append(WinsStateChange(status.name, status.state, status.ttl))

    # ------------------------------------------------------------ status

    def status(self) -> dict[str, object]:
        """Names with their conflict, claim and WINS states (the /status shape)."""
        return {
            "cozen_name": self.identity.cozen_name,
            "address": self.identity.ipv4,
            "broadcast": None if self.broadcast is None else self.broadcast[0],
            "names": [self._name_status(entry) for entry in self.table],
            "conflicts": sorted(str(e.name) for e in self.table if e.name.key() in self.conflicted),
        }

    def _name_status(self, entry: OwnedName) -> dict[str, object]:
        item: dict[str, object] = {
            "name": str(entry.name),
            "group": entry.group,
            "conflict": entry.name.key() in self.conflicted,
        }
        if self.claim is not None:
            item["claim"] = self.claim.state_of(entry.name).value
        if self.wins is not None:
            item["wins"] = self.wins.state_of(entry.name).value
        return item

    # ------------------------------------------------------------ answers

    def _active_entry(self, name: NetbiosName) -> OwnedName | None:
        key = name.key()
        entry = self._by_key.get(key)
        return None if entry is None or key in self.conflicted else entry

    def _wildcard(self) -> NetbiosName:
        return NetbiosName(WILDCARD, 0x00, self.identity.scope)

    def _rebuild_fast(self) -> None:
        self._fast.clear()
        self.repeats.clear()
        if not self.fast_path or self._released:
            return
        for entry in self.table:
            if entry.name.key() not in self.conflicted:
                self._add_fast(entry.name, RRType.NB, self._query_reply(entry.name, 0))
                self._add_fast(entry.name, RRType.NBSTAT, self._status_reply(entry.name, 0))
        wildcard = self._wildcard()
        self._add_fast(wildcard, RRType.NBSTAT, self._status_reply(wildcard, 0))

    def _add_fast(self, name: NetbiosName, rr_type: RRType, reply: bytes | None) -> None:
        if reply is not None:
            key = encode_netbios_name(name) + _QUESTION_TAIL[rr_type]
            self._fast[key] = (reply[2:], rr_type == RRType.NBSTAT)

    def _query_reply(self, name: NetbiosName, trn_id: int) -> bytes | None:
        entry = self._active_entry(name)
        if entry is None:
            return None
        flags = self.identity.node_type | (NbFlags.G if entry.group else 0)
        response = NameQueryResponse(
            trn_id=trn_id,
            name=name,
            nm_flags=_QUERY_FLAGS,
            rcode=Rcode.NOERROR,
            ttl=self.identity.ttl,
            entries=(AddressEntry(NbFlags(flags), self.identity.ipv4),),
        )
        return encode_name_query_response(response)

    def _status_entries(self) -> tuple[NodeStatusEntry, ...]:
        ont = NameFlags(int(self.identity.node_type))
        entries = []
        for entry in self.table:
            flags = ont | NameFlags.ACT
            if entry.group:
                flags |= NameFlags.G
            if entry.name.key() in self.conflicted:
                flags |= NameFlags.CNF
            entries.append(NodeStatusEntry(entry.name.name, entry.name.suffix, flags))
        return tuple(entries)

    def _status_reply(self, name: NetbiosName, trn_id: int) -> bytes | None:
        if name.key() != self._wildcard().key() and self._active_entry(name) is None:
            return None
        response = NodeStatusResponse(
            trn_id=trn_id,
            name=name,
            nm_flags=_STATUS_FLAGS,
            names=self._status_entries(),
            statistics=make_statistics(self.identity.mac),
        )
        return encode_node_status_response(response)

    def _defense_reply(self, request: NameRegistrationRequest) -> bytes | None:
        entry = self._active_entry(request.name)
        if entry is None or entry.group or request.address == self.identity.ipv4:
            return None
        response = RegistrationResponse(
            trn_id=request.trn_id,
            opcode=request.opcode,
            name=request.name,
            nm_flags=_DEFENSE_FLAGS,
            rcode=Rcode.ACT_ERR,
            ttl=0,
            flags=request.flags,
            address=request.address,
        )
        return encode_registration_response(response)


def _first_trn_id(trn_id: Callable[[], int] | None) -> int:
    if trn_id is None:
        raise ValueError("a registration engine needs a trn_id source")
    return trn_id()
