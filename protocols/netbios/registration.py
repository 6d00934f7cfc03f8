"""What the two NBNS registration engines share (sans-IO).

:class:`~protocols.netbios.claim.BNodeClaim` (broadcast claim and release) and
:class:`~protocols.netbios.wins.WinsClient` (unicast registration with a WINS
server) differ in their timing and state machines, but are driven the same
way, aioquic-style, by the node that owns them
(:class:`~protocols.netbios.node.NbnsNode`): it feeds
``receive_message(message, now)``, runs ``handle_timer(now)`` at
``next_timer()``, and hands ``datagrams_to_send()`` and ``events()`` on to
the daemon. That driving surface, and the per-name records keyed by the
case-insensitive name key, live here once.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from protocols.netbios.names import NetbiosName
from protocols.netbios.nbns import NbFlags, NbnsMessage

NameKey = tuple[str, int, str]
Address = tuple[str, int]


@dataclass(frozen=True, slots=True)
class OwnedName:
    """One name of a node's table: unique, or a group name (never defended)."""

    name: NetbiosName
    group: bool


S = TypeVar("S", bound=enum.Enum)
S_co = TypeVar("S_co", bound=enum.Enum, covariant=True)


class _Record(Protocol[S_co]):
    entry: OwnedName
    due: float | None

    @property
    def state(self) -> S_co: ...


R = TypeVar("R", bound=_Record[Any])
E = TypeVar("E")


class RegistrationEngine(Generic[R, S, E]):
    """Records per name, an outbox of datagrams and a queue of events to log.

    Subclasses set ``CONFLICT`` to their state meaning "refused by another owner".
    """

    CONFLICT: S

    def __init__(self, address: str, node_type: NbFlags) -> None:
        self.address = address
        self.node_type = node_type
        self._records: dict[NameKey, R] = {}
        self._outbox: list[tuple[bytes, Address]] = []
        self._events: list[E] = []

    def receive_message(self, message: NbnsMessage, now: float) -> None:
        raise NotImplementedError

    def handle_timer(self, now: float) -> None:
        """Run every resend, refresh or completion whose time has come."""
        for record in self._records.values():
            if record.due is not None and record.due <= now:
                self._expire(record, now)

    def _expire(self, record: R, now: float) -> None:
        raise NotImplementedError

    def next_timer(self) -> float | None:
        """When :meth:`handle_timer` must next run, or ``None``."""
        return min((r.due for r in self._records.values() if r.due is not None), default=None)

    def datagrams_to_send(self) -> list[tuple[bytes, Address]]:
        """Hand over (and forget) the queued datagrams with their destinations."""
        out, self._outbox = self._outbox, []
        return out

    def events(self) -> list[E]:
        """Hand over (and forget) the conflicts or refusals seen since the last call."""
        out, self._events = self._events, []
        return out

    def state_of(self, name: NetbiosName) -> S:
        """State of ``name``.

        Raises:
            KeyError: ``name`` is not one of ours.
        """
        state: S = self._records[name.key()].state
        return state

    def conflicted(self) -> frozenset[NameKey]:
        """Keys of unique names in conflict (group names are shared by nature)."""
        return frozenset(
            key
            for key, r in self._records.items()
            if r.state == self.CONFLICT and not r.entry.group
        )

    def _nb_flags(self, entry: OwnedName) -> NbFlags:
        return NbFlags(self.node_type | (NbFlags.G if entry.group else 0))
