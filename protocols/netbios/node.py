"""Per-node NBNS answering and defense engine (sans-IO).

Theory of operation (RFC 1002 §4.2.12-§4.2.18, §5.1.1.4, §5.1.1.6; MS-NBTE
§3.2.5):

- A node owns a small name table derived from its identity
  (:func:`build_name_table`): ``<COZEN><00>`` unique, ``<COZEN><20>`` unique
  when it serves SMB, ``<WORKGROUP><00>`` and ``<WORKGROUP><1E>`` groups.
  The cluster's public name is never in the table; building a table whose
  Cozen name equals the public name is refused.
- Names compare case-insensitively (ASCII letters only), suffix exactly, and
  scope case-insensitively: a question whose scope differs from the node's
  (empty by default) is not ours, as on Windows where scopes isolate nodes.
- :func:`handle_datagram` takes one datagram and returns the reply to send
  back to the datagram's source address and port, or ``None``:

  * name query for an active name of ours: positive response (AA, RD; RA
    clear as we are no NBNS), the question name echoed, our address with
    NB_FLAGS G for groups and the configured owner node type, and the TTL.
    Any other name, the public name included, gets silence: we never send
    negative answers. Windows answers NAM_ERR to unicast queries only when it
    is the NBNS (WINS) itself, which we are not.
  * node status for ``*<00>`` or an active name of ours: one NBSTAT record
    echoing the question name, the whole table with NAME_FLAGS (ACT; G for
    groups; CNF for names in conflict) and the unit ID (MAC) in the first six
    statistics bytes. Node status is point-to-point (RFC 1002 §4.2.17), so a
    request that arrived on a broadcast address gets silence.
  * registration or refresh (opcodes 5/8/9/0xF) of one of our active unique
    names for another address: a negative registration response with RCODE
    ACT_ERR (§4.2.6), whether it arrived by broadcast or unicast. Group names
    are never defended.
  * responses (R=1) are never answered; they go to the registration engines
    attached to the state (B-node claim, WINS client), whose conflicts mark
    our names. A name in conflict is no longer answered or defended.
  * everything else (releases, requests from other nodes' engines): silence.

- The fast path (DESIGN.md "precomputed answer table"): at build time the
  general reply functions run once per answerable question; the wire bytes of
  the question (name, type, class) key the reply without its transaction ID.
  :func:`fast_answer` checks the header, looks the rest of the datagram up and
  patches the ID. Anything else falls through to the general path. The table
  is rebuilt when a name enters conflict.

Time is injected (``now``) and only passed on to the registration engines.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

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
from protocols.netbios.registration import NameKey, OwnedName
from protocols.repeats import Repeats, recall, remember

DEFAULT_TTL = 300_000  # seconds; the Windows default for registered names


_QUERY_FLAGS = NmFlags.AA | NmFlags.RD
_STATUS_FLAGS = NmFlags.AA
_DEFENSE_FLAGS = NmFlags.AA | NmFlags.RD | NmFlags.RA
_QUESTION_TAIL = {RRType.NB: b"\x00\x20\x00\x01", RRType.NBSTAT: b"\x00\x21\x00\x01"}
_REQUEST_COUNTS = b"\x00\x01\x00\x00\x00\x00\x00\x00"


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


class RegistrationObserver(Protocol):
    """What a registration engine offers the node engine."""

    def receive_message(self, message: NbnsMessage, now: float) -> None: ...

    def conflicted(self) -> frozenset[NameKey]: ...


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


class NodeState:
    """Mutable per-node state: name table, conflicts, engines, precomputed replies."""

    __slots__ = (
        "_by_key",
        "_fast",
        "conflicted",
        "engines",
        "fast_path",
        "identity",
        "repeats",
        "table",
    )

    def __init__(self, identity: NbnsIdentity, *, fast_path: bool = True) -> None:
        self.identity = identity
        self.table = build_name_table(identity)
        self._by_key = {entry.name.key(): entry for entry in self.table}
        self.conflicted: set[NameKey] = set()
        self.engines: list[RegistrationObserver] = []
        self.fast_path = fast_path
        self._fast: dict[bytes, tuple[bytes, bool]] = {}
        # Unicast repeats (protocols.repeats), as fast_answer gave them.
        # Cleared with _fast, so it never outlives the answers it copies.
        self.repeats: Repeats = {}
        self._rebuild_fast()

    def active_entry(self, name: NetbiosName) -> OwnedName | None:
        """Our table entry for ``name`` unless absent or in conflict."""
        key = name.key()
        entry = self._by_key.get(key)
        return None if entry is None or key in self.conflicted else entry

    def mark_conflict(self, key: NameKey) -> None:
        """Stop answering and defending the name with ``key`` (if it is ours)."""
        if key in self._by_key and key not in self.conflicted:
            self.conflicted.add(key)
            self._rebuild_fast()

    def wildcard(self) -> NetbiosName:
        return NetbiosName(WILDCARD, 0x00, self.identity.scope)

    def _rebuild_fast(self) -> None:
        self._fast.clear()
        self.repeats.clear()
        for entry in self.table:
            if entry.name.key() not in self.conflicted:
                self._add_fast(entry.name, RRType.NB, _query_reply(self, entry.name, 0))
                self._add_fast(entry.name, RRType.NBSTAT, _status_reply(self, entry.name, 0))
        self._add_fast(self.wildcard(), RRType.NBSTAT, _status_reply(self, self.wildcard(), 0))

    def _add_fast(self, name: NetbiosName, rr_type: RRType, reply: bytes | None) -> None:
        if reply is not None:
            key = encode_netbios_name(name) + _QUESTION_TAIL[rr_type]
            self._fast[key] = (reply[2:], rr_type == RRType.NBSTAT)


def _query_reply(state: NodeState, name: NetbiosName, trn_id: int) -> bytes | None:
    entry = state.active_entry(name)
    if entry is None:
        return None
    flags = state.identity.node_type | (NbFlags.G if entry.group else 0)
    response = NameQueryResponse(
        trn_id=trn_id,
        name=name,
        nm_flags=_QUERY_FLAGS,
        rcode=Rcode.NOERROR,
        ttl=state.identity.ttl,
        entries=(AddressEntry(NbFlags(flags), state.identity.ipv4),),
    )
    return encode_name_query_response(response)


def _status_entries(state: NodeState) -> tuple[NodeStatusEntry, ...]:
    ont = NameFlags(int(state.identity.node_type))
    entries = []
    for entry in state.table:
        flags = ont | NameFlags.ACT
        if entry.group:
            flags |= NameFlags.G
        if entry.name.key() in state.conflicted:
            flags |= NameFlags.CNF
        entries.append(NodeStatusEntry(entry.name.name, entry.name.suffix, flags))
    return tuple(entries)


def _status_reply(state: NodeState, name: NetbiosName, trn_id: int) -> bytes | None:
    wildcard = state.wildcard().key()
    if name.key() != wildcard and state.active_entry(name) is None:
        return None
    response = NodeStatusResponse(
        trn_id=trn_id,
        name=name,
        nm_flags=_STATUS_FLAGS,
        names=_status_entries(state),
        statistics=make_statistics(state.identity.mac),
    )
    return encode_node_status_response(response)


def _defense_reply(state: NodeState, request: NameRegistrationRequest) -> bytes | None:
    entry = state.active_entry(request.name)
    if entry is None or entry.group or request.address == state.identity.ipv4:
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


def fast_answer(state: NodeState, datagram: bytes, *, broadcast: bool) -> bytes | None:
    """Answer a common query or node status from the precomputed table.

    Returns ``None`` whenever the general path must decide (it may still
    answer); never a reply the general path would not give.
    """
    if not broadcast:
        reply = recall(state.repeats, datagram)
        if reply is not None:
            return reply
    if len(datagram) < 50 or datagram[2] & 0xF8 or datagram[4:12] != _REQUEST_COUNTS:
        return None
    hit = state._fast.get(datagram[12:])
    if hit is None or (hit[1] and broadcast):
        return None
    reply = datagram[:2] + hit[0]
    if not broadcast:  # a hit has one fixed-size question, so keys stay small
        remember(state.repeats, datagram, reply)
    return reply


def _notify_engines(state: NodeState, message: NbnsMessage, now: float) -> None:
    for engine in state.engines:
        engine.receive_message(message, now)
        for key in engine.conflicted():
            state.mark_conflict(key)


def handle_message(
    state: NodeState, message: NbnsMessage, *, broadcast: bool, now: float
) -> bytes | None:
    """Return the reply to ``message`` (to be sent to its source), or ``None``."""
    match message:
        case NameQueryRequest():
            return _query_reply(state, message.name, message.trn_id)
        case NodeStatusRequest():
            return None if broadcast else _status_reply(state, message.name, message.trn_id)
        case NameRegistrationRequest() if message.opcode in REGISTRATION_OPCODES:
            return _defense_reply(state, message)
        case (
            NameQueryResponse()
            | NodeStatusResponse()
            | RegistrationResponse()
            | ReleaseResponse()
            | WaitForAck()
        ):
            _notify_engines(state, message, now)
    return None


def handle_datagram(
    state: NodeState, datagram: bytes, *, broadcast: bool, now: float
) -> bytes | None:
    """Return the reply to one datagram, to be sent to its source; or ``None``.

    ``broadcast`` says whether the datagram arrived on a broadcast address.
    Tries the precomputed fast path first unless ``state.fast_path`` is off.

    Raises:
        MalformedMessage: the datagram is not a valid NBNS packet (count it, drop it).
    """
    if state.fast_path:
        reply = fast_answer(state, datagram, broadcast=broadcast)
        if reply is not None:
            return reply
    return handle_message(state, decode_packet(datagram), broadcast=broadcast, now=now)
