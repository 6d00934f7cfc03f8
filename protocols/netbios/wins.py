"""WINS (NBNS) client for an H-node: register, refresh, release (sans-IO).

Theory of operation (RFC 1002 §5.1.2.1-§5.1.2.5 "P-node" name management,
which H-nodes use towards the NBNS, §5.1.3; MS-NBTE §3.2.5.2, §3.2.5.5):

- Each name has one transaction at a time. Registration (opcode 5, RD) goes
  unicast to the server; it is resent every ``retry_timeout``
  (UCAST_REQ_RETRY_TIMEOUT, 5 s) up to ``retry_count`` (3) sends.
- A WACK with the transaction's ID means "still working": the next resend
  waits the WACK's TTL (capped at ``max_wack`` so a hostile server cannot
  stall us forever) instead of ``retry_timeout``.
- A positive response makes the name REGISTERED with the granted TTL; a
  refresh (opcode 8) is due after half of it (RFC 1002 §5.1.2.4; a TTL of 0
  means infinite, so no refresh). A negative response (ACT_ERR, CFT_ERR, ...)
  puts the name in CONFLICT and queues a :class:`WinsEvent`; nothing more is
  sent for it. Conflicts of unique names are reported by
  :meth:`WinsClient.conflicted` for the node engine; group names only show it
  in their status.
- When every send of a registration or refresh went unanswered, the name is
  UNREACHABLE and a fresh registration starts after a backoff that doubles
  from ``backoff_initial`` up to ``backoff_max``; any positive response resets
  it.
- :meth:`WinsClient.release` sends NAME RELEASE REQUESTs (opcode 6) for names
  that are or may be registered, resent every ``release_retry_timeout`` up to
  ``retry_count`` times; any release response, or the last timeout, makes the
  name RELEASED.
- aioquic-style interface: ``receive(datagram, now)``, ``handle_timer(now)``,
  ``next_timer()``, ``datagrams_to_send()``; the caller owns clock and socket
  and injects the first transaction ID.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

from protocols.netbios.names import NetbiosName
from protocols.netbios.nbns import (
    NameRegistrationRequest,
    NameReleaseRequest,
    NbFlags,
    NbnsMessage,
    NmFlags,
    Opcode,
    RegistrationResponse,
    ReleaseResponse,
    WaitForAck,
)
from protocols.netbios.nbns_encode import (
    encode_name_registration_request,
    encode_name_release_request,
)
from protocols.netbios.registration import Address, OwnedName, RegistrationEngine

UCAST_REQ_RETRY_TIMEOUT = 5.0
UCAST_REQ_RETRY_COUNT = 3


class WinsState(enum.Enum):
    IDLE = "idle"
    REGISTERING = "registering"
    REGISTERED = "registered"
    CONFLICT = "conflict"
    UNREACHABLE = "unreachable"
    RELEASING = "releasing"
    RELEASED = "released"


@dataclass(frozen=True, slots=True)
class WinsNameStatus:
    """Per-name status for display: state, granted TTL, last RCODE, next action time."""

    name: NetbiosName
    state: WinsState
    ttl: int | None
    rcode: int | None
    next_event: float | None


@dataclass(frozen=True, slots=True)
class WinsEvent:
    """A refusal to log: the name and the server's RCODE."""

    name: NetbiosName
    rcode: int


@dataclass(frozen=True, slots=True)
class WinsStateChange:
    """A name's new lasting state to log (registered, conflict, unreachable, released)."""

    name: NetbiosName
    state: WinsState
    ttl: int | None


@dataclass(slots=True)
class _Record:
    entry: OwnedName
    trn_id: int
    state: WinsState = WinsState.IDLE
    pending: Opcode | None = None
    sent: int = 0
    due: float | None = None
    ttl: int | None = None
    rcode: int | None = None
    backoff: float = 0.0


class WinsClient(RegistrationEngine[_Record, WinsState, "WinsEvent"]):
    """Registers a node's names with one WINS server and keeps them fresh."""

    CONFLICT = WinsState.CONFLICT

    def __init__(
        self,
        names: Iterable[OwnedName],
        address: str,
        server: Address,
        *,
        first_trn_id: int,
        ttl: int = 300_000,
        node_type: NbFlags = NbFlags.ONT_H,
        retry_timeout: float = UCAST_REQ_RETRY_TIMEOUT,
        retry_count: int = UCAST_REQ_RETRY_COUNT,
        release_retry_timeout: float = 1.0,
        backoff_initial: float = 30.0,
        backoff_max: float = 900.0,
        max_wack: float = 300.0,
    ) -> None:
        super().__init__(address, node_type)
        self.server = server
        self.ttl = ttl
        self.retry_timeout = retry_timeout
        self.retry_count = retry_count
        self.release_retry_timeout = release_retry_timeout
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.max_wack = max_wack
        self._records = {n.name.key(): _Record(n, 0) for n in names}
        self._next_trn_id = first_trn_id & 0xFFFF

    # -------------------------------------------------------------- driving

    def start(self, now: float) -> None:
        """Begin registering every name."""
        for record in self._records.values():
            self._begin(record, WinsState.REGISTERING, Opcode.REGISTRATION, now)

    def release(self, now: float) -> None:
        """Release every name that is, or may be, registered; stop everything else."""
        for record in self._records.values():
            if record.state in (WinsState.REGISTERED, WinsState.REGISTERING):
                self._begin(record, WinsState.RELEASING, Opcode.RELEASE, now)
            elif record.state != WinsState.CONFLICT:
                record.state, record.pending, record.due = WinsState.RELEASED, None, None

    def receive_message(self, message: NbnsMessage, now: float) -> None:
        """Feed one decoded message (the node engine forwards responses here)."""
        if not isinstance(message, RegistrationResponse | ReleaseResponse | WaitForAck):
            return
        record = self._records.get(message.name.key())
        if record is None or record.pending is None or record.trn_id != message.trn_id:
            return
        if isinstance(message, WaitForAck):
            record.due = now + min(float(message.ttl), self.max_wack)
        elif isinstance(message, ReleaseResponse):
            if record.pending == Opcode.RELEASE:
                record.state, record.pending, record.due = WinsState.RELEASED, None, None
        elif record.pending != Opcode.RELEASE:
            self._registration_answer(record, message, now)

    # -------------------------------------------------------------- status

    def status(self) -> list[WinsNameStatus]:
        """One status line per name, in table order."""
        return [
            WinsNameStatus(r.entry.name, r.state, r.ttl, r.rcode, r.due)
            for r in self._records.values()
        ]

    def finished(self) -> bool:
        """True when no registration, refresh or release is in flight."""
        return all(r.pending is None for r in self._records.values())

    # -------------------------------------------------------------- internals

    def _registration_answer(
        self, record: _Record, message: RegistrationResponse, now: float
    ) -> None:
        record.pending, record.rcode = None, message.rcode
        if message.rcode != 0:
            record.state, record.due = WinsState.CONFLICT, None
            self._events.append(WinsEvent(record.entry.name, message.rcode))
            return
        record.state, record.ttl, record.backoff = WinsState.REGISTERED, message.ttl, 0.0
        record.due = now + message.ttl / 2 if message.ttl else None

    def _expire(self, record: _Record, now: float) -> None:
        if record.pending is None:
            if record.state == WinsState.REGISTERED:
                self._begin(record, WinsState.REGISTERED, Opcode.REFRESH, now)
            else:  # UNREACHABLE: try again from scratch
                self._begin(record, WinsState.REGISTERING, Opcode.REGISTRATION, now)
        elif record.sent < self.retry_count:
            self._send(record, now)
        elif record.pending == Opcode.RELEASE:
            record.state, record.pending, record.due = WinsState.RELEASED, None, None
        else:
            record.backoff = min(
                self.backoff_max, record.backoff * 2 if record.backoff else self.backoff_initial
            )
            record.state, record.pending = WinsState.UNREACHABLE, None
            record.due = now + record.backoff

    def _begin(self, record: _Record, state: WinsState, opcode: Opcode, now: float) -> None:
        record.state, record.pending, record.sent = state, opcode, 0
        record.trn_id = self._next_trn_id
        self._next_trn_id = (self._next_trn_id + 1) & 0xFFFF
        self._send(record, now)

    def _send(self, record: _Record, now: float) -> None:
        record.sent += 1
        releasing = record.pending == Opcode.RELEASE
        record.due = now + (self.release_retry_timeout if releasing else self.retry_timeout)
        flags = self._nb_flags(record.entry)
        name = record.entry.name
        if releasing:
            data = encode_name_release_request(
                NameReleaseRequest(record.trn_id, name, NmFlags.NONE, 0, flags, self.address)
            )
        else:
            opcode = record.pending or Opcode.REGISTRATION
            nm_flags = NmFlags.RD if opcode == Opcode.REGISTRATION else NmFlags.NONE
            request = NameRegistrationRequest(
                record.trn_id, opcode, name, nm_flags, self.ttl, flags, self.address
            )
            data = encode_name_registration_request(request)
        self._outbox.append((data, self.server))
