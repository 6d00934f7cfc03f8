"""B-node name claim at start-up and release at stop (sans-IO).

Theory of operation (RFC 1002 §5.1.1.1 "B-node add name", §5.1.1.5 "B-node
release name", §6 timer constants):

- :meth:`BNodeClaim.start` broadcasts one NAME REGISTRATION REQUEST (opcode 5,
  RD and B set) per name, and repeats it every BCAST_REQ_RETRY_TIMEOUT
  (250 ms) until BCAST_REQ_RETRY_COUNT (3) requests went out. When the last
  interval ends without an objection the name is CLAIMED (RFC 1002 leaves
  the optional NAME OVERWRITE DEMAND out of what Windows sends; so do we).
  Each name keeps one transaction ID across its retries, as Windows and Samba do.
- A NEGATIVE NAME REGISTRATION RESPONSE (any non-zero RCODE, ACT_ERR in
  practice) carrying a claiming name's transaction ID puts it in CONFLICT and
  queues a :class:`ClaimEvent` for the adapter to log. Conflicts of unique
  names are reported by :meth:`BNodeClaim.conflicted`, which the node engine
  uses to stop answering and defending them; group names are shared by
  nature, so their conflicts only show in :meth:`BNodeClaim.state_of`.
- :meth:`BNodeClaim.release` broadcasts NAME RELEASE REQUESTs (opcode 6, B)
  for every name not in conflict, three times 250 ms apart (a new transaction
  ID per name), then marks them RELEASED. No response is expected from B-nodes.
- aioquic-style interface: ``receive(datagram, now)``, ``handle_timer(now)``,
  ``next_timer()`` and ``datagrams_to_send()``; the caller owns the clock,
  the socket and the first transaction ID (inject randomness).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

from protocols.netbios.names import NetbiosName
from protocols.netbios.nbns import (
    NBNS_PORT,
    NameRegistrationRequest,
    NameReleaseRequest,
    NbFlags,
    NbnsMessage,
    NmFlags,
    Opcode,
    RegistrationResponse,
)
from protocols.netbios.nbns_encode import (
    encode_name_registration_request,
    encode_name_release_request,
)
from protocols.netbios.registration import Address, OwnedName, RegistrationEngine

BCAST_REQ_RETRY_TIMEOUT = 0.25
BCAST_REQ_RETRY_COUNT = 3


class ClaimState(enum.Enum):
    IDLE = "idle"
    CLAIMING = "claiming"
    CLAIMED = "claimed"
    CONFLICT = "conflict"
    RELEASING = "releasing"
    RELEASED = "released"


@dataclass(frozen=True, slots=True)
class ClaimEvent:
    """A conflict to log: which name, the RCODE, and the objector's reply address field."""

    name: NetbiosName
    rcode: int
    address: str


@dataclass(slots=True)
class _Record:
    entry: OwnedName
    trn_id: int
    state: ClaimState = ClaimState.IDLE
    sent: int = 0
    due: float | None = None


class BNodeClaim(RegistrationEngine[_Record, ClaimState, "ClaimEvent"]):
    """Claims a node's names by broadcast and releases them at stop."""

    CONFLICT = ClaimState.CONFLICT

    def __init__(
        self,
        names: Iterable[OwnedName],
        address: str,
        *,
        first_trn_id: int,
        ttl: int = 300_000,
        node_type: NbFlags = NbFlags.ONT_B,
        broadcast: Address = ("255.255.255.255", NBNS_PORT),
        retry_timeout: float = BCAST_REQ_RETRY_TIMEOUT,
        retry_count: int = BCAST_REQ_RETRY_COUNT,
    ) -> None:
        super().__init__(address, node_type)
        self.ttl = ttl
        self.broadcast = broadcast
        self.retry_timeout = retry_timeout
        self.retry_count = retry_count
        self._records = {
            n.name.key(): _Record(n, (first_trn_id + i) & 0xFFFF) for i, n in enumerate(names)
        }

    # -------------------------------------------------------------- driving

    def start(self, now: float) -> None:
        """Begin claiming every name (first broadcast now)."""
        for record in self._records.values():
            record.state, record.sent = ClaimState.CLAIMING, 0
            self._send(record, now)

    def release(self, now: float) -> None:
        """Stop claiming and broadcast releases for every name not in conflict."""
        for record in self._records.values():
            if record.state in (ClaimState.CLAIMING, ClaimState.CLAIMED):
                record.state, record.sent = ClaimState.RELEASING, 0
                record.trn_id = (record.trn_id + len(self._records)) & 0xFFFF
                self._send(record, now)

    def receive_message(self, message: NbnsMessage, now: float) -> None:
        """Feed one decoded message (the node engine forwards responses here)."""
        if not isinstance(message, RegistrationResponse) or message.rcode == 0:
            return
        record = self._records.get(message.name.key())
        if record is None or record.state != ClaimState.CLAIMING:
            return
        if record.trn_id != message.trn_id:
            return
        record.state, record.due = ClaimState.CONFLICT, None
        self._events.append(ClaimEvent(record.entry.name, message.rcode, message.address))

    # -------------------------------------------------------------- status

    def finished(self) -> bool:
        """True when no name is claiming or releasing."""
        busy = (ClaimState.CLAIMING, ClaimState.RELEASING)
        return all(r.state not in busy for r in self._records.values())

    # -------------------------------------------------------------- internals

    def _expire(self, record: _Record, now: float) -> None:
        if record.sent < self.retry_count:
            self._send(record, now)
            return
        record.due = None
        if record.state == ClaimState.CLAIMING:
            record.state = ClaimState.CLAIMED
        elif record.state == ClaimState.RELEASING:
            record.state = ClaimState.RELEASED

    def _send(self, record: _Record, now: float) -> None:
        record.sent += 1
        record.due = now + self.retry_timeout
        flags = self._nb_flags(record.entry)
        name = record.entry.name
        if record.state == ClaimState.RELEASING:
            data = encode_name_release_request(
                NameReleaseRequest(record.trn_id, name, NmFlags.B, 0, flags, self.address)
            )
        else:
            request = NameRegistrationRequest(
                record.trn_id,
                Opcode.REGISTRATION,
                name,
                NmFlags.RD | NmFlags.B,
                self.ttl,
                flags,
                self.address,
            )
            data = encode_name_registration_request(request)
        self._outbox.append((data, self.broadcast))
