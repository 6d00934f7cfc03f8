"""Keep record sets registered in the site's DNS: RFC 2136 UPDATE, RFC 4703 ownership (sans-IO).

Theory of operation. A :class:`Registrar` holds one entry per
:class:`~protocols.dns.ownership.RecordSet` (one owner name in one zone)
and drives it through rounds; the adapter sends what :meth:`Registrar.poll`
hands out and feeds back the answers (:meth:`~Registrar.receive`) or the
failure (:meth:`~Registrar.fail`), with the time. Nothing here opens a
socket or reads the clock; what is sent and what answers mean is
:mod:`protocols.dns.update_messages`.

- A round starts with a QUERY of what the server holds at the owner. When
  it holds exactly what the set wants (same RRsets, same TTL), nothing is
  sent: refreshing an intact registration never changes the zone, so the
  two sidecars of a pair converge and stay quiet.
- Otherwise one UPDATE fixes what differs, guarded by the prerequisites
  of the conflict mode (RFC 4703 §5.3). An ADD refused with YXDOMAIN (the
  name appeared meanwhile) goes on with the next rung at once (§5.3.2); any
  other failed prerequisite sends the set back to a fresh QUERY once per
  round, and a second one makes it a conflict. A conflict is never
  overwritten; it is looked at again every ``refresh`` seconds (each
  round up to :data:`REFRESH_JITTER` of it early, so sets registered
  together spread out).
- States: PENDING (not confirmed yet), REGISTERED, CONFLICT, ERROR (the
  last exchange failed), WITHDRAWING. Every other answer (REFUSED, NOTAUTH,
  NOTZONE, SERVFAIL, BADKEY, BADSIG, BADTIME, ...) and every transport
  failure is an ERROR: counted per outcome, reported as an :class:`Event`
  once per change of outcome, and retried after a capped exponential
  backoff with jitter (:class:`Backoff`; the random draw is injected).
- A reverse set (PTR) waits until its forward set has an outcome, and is
  published only while the node holds the forward name: when the forward
  set is in conflict, no PTR is added, and one we added before is
  withdrawn (Kea does no reverse update after a forward conflict either).
- Removing a set (reload) or :meth:`~Registrar.withdraw_all` (stop)
  withdraws it (RFC 4703 §5.5); a stop tries each set once, so it is
  bounded by what the adapter waits for.
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import dns.message
import dns.rcode
import dns.rdatatype

from protocols.dns.ownership import RecordSet
from protocols.dns.update_messages import (
    PREREQUISITE_FAILED,
    TRANSPORT_ERRORS,
    ConflictMode,
    HmacSigner,
    Observation,
    Signer,
    Step,
    Wanted,
    build_queries,
    build_update,
    decide,
    describe_step,
    explain,
    make_key,
    next_rung,
    observe,
    outcome_of,
    wanted,
)

__all__ = [
    "TRANSPORT_ERRORS",
    "Backoff",
    "ConflictMode",
    "Event",
    "EventKind",
    "Exchange",
    "HmacSigner",
    "RecordState",
    "RecordStatus",
    "Registrar",
    "Settings",
    "Signer",
    "make_key",
    "outcome_of",
]

Rcode = dns.rcode.Rcode
Key = tuple[str, str]  # (zone, owner)

BACKOFF_INITIAL = 1.0  # seconds after the first failure in a row
BACKOFF_CAP = 300.0  # the longest wait between tries (the adapter caps it at the refresh too)
BACKOFF_JITTER = 0.5  # each wait is shortened by up to half, so sidecars spread out
# each refresh comes up to a tenth early, so 1,000 names registered together do not query
# the server together every ``refresh`` seconds ever after
REFRESH_JITTER = 0.1

_NOERROR = dns.rcode.NOERROR


class RecordState(enum.Enum):
    PENDING = "pending"  # not confirmed yet
    REGISTERED = "registered"
    CONFLICT = "conflict"  # someone else holds the name; never overwritten
    ERROR = "error"  # the last exchange failed; retried with backoff
    WITHDRAWING = "withdrawing"


class EventKind(enum.Enum):
    REGISTERED = "registered"
    CONFLICT = "conflict"
    ERROR = "error"
    WITHDRAWN = "withdrawn"
    LEFT_ALONE = "left alone"  # not withdrawn: the name is no longer ours
    GAVE_UP = "not withdrawn"  # stopping, and the withdrawal failed


@dataclass(frozen=True, slots=True)
class Event:
    """Something worth one log line: what happened to which set, and why."""

    kind: EventKind
    record_set: RecordSet
    outcome: str  # an rcode name, or a transport outcome such as TIMEOUT
    detail: str


@dataclass(frozen=True, slots=True)
class RecordStatus:
    """One set's state for /status; times are the injected clock's."""

    record_set: RecordSet
    state: RecordState
    outcome: str | None
    outcome_at: float | None
    next_attempt: float | None
    failures: int
    conflict_with: str | None


@dataclass(frozen=True, slots=True)
class Backoff:
    """Capped exponential backoff with jitter: the n-th failure waits
    ``min(cap, initial * 2**(n-1))``, shortened by up to ``jitter`` of it."""

    initial: float = BACKOFF_INITIAL
    cap: float = BACKOFF_CAP
    jitter: float = BACKOFF_JITTER

    def delay(self, failures: int, draw: float) -> float:
        """Seconds to wait after ``failures`` failures in a row; ``draw`` is uniform in [0, 1)."""
        base = min(self.cap, self.initial * 2.0 ** min(max(failures, 1) - 1, 62))
        return base * (1.0 - self.jitter * draw)


@dataclass(frozen=True, slots=True, eq=False)
class Exchange:
    """Messages to send to the zone's primary, in order; the answers go back together."""

    zone: str
    owner: str
    step: Step
    messages: tuple[dns.message.Message, ...]
    generation: int


@dataclass(slots=True)
class _Entry:
    want: Wanted
    state: RecordState = RecordState.PENDING
    due: float | None = 0.0  # next round; None while an exchange is out
    inflight: Exchange | None = None
    generation: int = 0  # bumped when the wanted data changes: late answers are dropped
    retiring: bool = False
    then: tuple[Step, Observation | None] | None = None  # the step to send next
    seen: Observation | None = None
    restarted: bool = False  # this round already went back to QUERY once
    failures: int = 0
    outcome: str | None = None
    outcome_at: float | None = None
    conflict_with: str | None = None
    held_back: str = ""  # a reverse set whose forward name is in conflict: why
    reported: tuple[EventKind, str, str] | None = None


@dataclass(slots=True)
class Settings:
    """What a reload may change besides the record sets."""

    signer: Signer | None  # HMAC TSIG or GSS-TSIG: the rest of the flow is the same
    mode: ConflictMode = ConflictMode.CHECK_WITH_DHCID
    refresh: float = 600.0
    backoff: Backoff = field(default_factory=Backoff)


class Registrar:
    """Every record set's registration state; driven by poll / receive / fail.

    Raises nothing for server behaviour: every answer and failure becomes
    a state, a count and (on change) an :class:`Event`.
    """

    def __init__(self, settings: Settings, *, draw: Callable[[], float]) -> None:
        self.settings = settings
        self._draw = draw  # uniform in [0, 1): the backoff's and the refresh's jitter
        self._entries: dict[Key, _Entry] = {}
        self._events: list[Event] = []
        self.counts: Counter[str] = Counter()
        self.stopping = False

    # ------------------------------------------------------------ driving

    def set_desired(self, record_sets: Iterable[RecordSet], now: float) -> None:
        """Register these sets from now on: new ones start, changed ones are
        fixed, ones no longer listed are withdrawn."""
        desired = {rs.key: rs for rs in record_sets}
        for key, entry in list(self._entries.items()):
            if key not in desired:
                self._retire(key, entry, now)
        for key, record_set in desired.items():
            known = self._entries.get(key)
            if known is None:
                self._entries[key] = _Entry(wanted(record_set), due=now)
            elif known.retiring or known.want.record_set != record_set:
                known.want, known.retiring = wanted(record_set), False
                self._restart(known, RecordState.PENDING, now)

    def configure(self, settings: Settings, now: float) -> None:
        """New key, mode, refresh or backoff: every set not in step tries again now."""
        if settings == self.settings:
            return
        self.settings = settings
        for entry in self._entries.values():
            if entry.state is not RecordState.REGISTERED and entry.inflight is None:
                entry.due, entry.failures = now, 0

    def withdraw_all(self, now: float) -> None:
        """Stop: withdraw every set that may be ours, once (no retries)."""
        self.stopping = True
        for key, entry in list(self._entries.items()):
            if entry.retiring and entry.inflight is None:
                entry.due = now
            self._retire(key, entry, now)

    def drop_all(self) -> None:
        """Stop without withdrawing anything."""
        self.stopping = True
        self._entries.clear()

    def poll(self, now: float) -> list[Exchange]:
        """The exchanges due at ``now``; each is out until its answer or failure comes back."""
        return [
            self._begin(entry)
            for entry in list(self._entries.values())
            if self._waiting(entry) and entry.due is not None and entry.due <= now
        ]

    def next_timer(self) -> float | None:
        """When :meth:`poll` next has work (None: nothing scheduled)."""
        times = [e.due for e in self._entries.values() if self._waiting(e) and e.due is not None]
        return min(times, default=None)

    def _waiting(self, entry: _Entry) -> bool:
        """Free to start: nothing out, and a reverse set's forward set is no longer PENDING."""
        if entry.inflight is not None:
            return False
        forward = self._forward(entry)
        return entry.retiring or forward is None or forward.state is not RecordState.PENDING

    def _forward(self, entry: _Entry) -> _Entry | None:
        key = entry.want.record_set.forward
        return None if key is None else self._entries.get(key)

    def receive(
        self, exchange: Exchange, responses: Sequence[dns.message.Message], now: float
    ) -> None:
        """The answers to ``exchange``'s messages, in order."""
        entry = self._current(exchange, now)
        if entry is None:
            return
        if exchange.step is Step.QUERY:
            self._observed(entry, responses, now)
            return
        rcode = responses[-1].rcode()
        self.counts[dns.rcode.to_text(rcode)] += 1
        if exchange.step is Step.WITHDRAW:
            self._withdraw_answer(entry, rcode, now)
        else:
            self._update_answer(entry, exchange.step, rcode, now)

    def fail(self, exchange: Exchange, outcome: str, detail: str, now: float) -> None:
        """``exchange`` got no usable answer: ``outcome`` from :func:`outcome_of`."""
        entry = self._current(exchange, now)
        if entry is not None:
            self.counts[outcome] += 1
            self._error(entry, exchange.step, outcome, detail, now)

    def events(self) -> list[Event]:
        """What happened since the last call, oldest first."""
        events, self._events = self._events, []
        return events

    # ------------------------------------------------------------ status

    def status(self) -> list[RecordStatus]:
        """One line per record set, in the order they were first wanted."""
        return [
            RecordStatus(
                e.want.record_set,
                e.state,
                e.outcome,
                e.outcome_at,
                e.due,
                e.failures,
                e.conflict_with,
            )
            for e in self._entries.values()
        ]

    def finished(self) -> bool:
        """True when nothing is left to withdraw (after :meth:`withdraw_all`)."""
        return not self._entries

    def remaining(self) -> list[RecordSet]:
        """The sets still held (after a stop: the ones not withdrawn)."""
        return [e.want.record_set for e in self._entries.values()]

    # ------------------------------------------------------------ internals

    def _begin(self, entry: _Entry) -> Exchange:
        if entry.then is not None:
            step, seen = entry.then
            entry.then = None
        elif entry.retiring:
            step, seen = Step.WITHDRAW, None
        else:
            step, seen, entry.restarted = Step.QUERY, None, False
        want = entry.want
        if step is Step.QUERY:
            messages: tuple[dns.message.Message, ...] = build_queries(want)
        else:
            messages = (build_update(step, want, seen, self.settings.signer),)
        exchange = Exchange(
            want.record_set.zone, want.record_set.owner, step, messages, entry.generation
        )
        entry.inflight, entry.due = exchange, None
        return exchange

    def _current(self, exchange: Exchange, now: float) -> _Entry | None:
        entry = self._entries.get((exchange.zone, exchange.owner))
        if entry is None or entry.inflight is not exchange:
            return None
        entry.inflight = None
        if exchange.generation != entry.generation:
            entry.due = now  # the wanted data changed meanwhile: start over
            return None
        return entry

    def _restart(self, entry: _Entry, state: RecordState, now: float) -> None:
        entry.generation += 1
        entry.state, entry.then, entry.failures, entry.reported = state, None, 0, None
        entry.due = now if entry.inflight is None else None

    def _retire(self, key: Key, entry: _Entry, now: float) -> None:
        if entry.retiring:
            return
        if entry.state is RecordState.CONFLICT and entry.inflight is None:
            del self._entries[key]  # never ours: nothing to withdraw
            return
        entry.retiring = True
        self._restart(entry, RecordState.WITHDRAWING, now)

    def _observed(
        self, entry: _Entry, responses: Sequence[dns.message.Message], now: float
    ) -> None:
        for response in responses:
            rcode = response.rcode()
            if rcode not in (_NOERROR, dns.rcode.NXDOMAIN):
                name = dns.rcode.to_text(rcode)
                self.counts[name] += 1
                self._error(entry, Step.QUERY, name, "", now)
                return
        self.counts["QUERY"] += 1
        seen = entry.seen = observe(entry.want, responses)
        forward = self._forward(entry)
        if forward is not None and forward.state is RecordState.CONFLICT:
            self._hold_back(entry, seen, forward, now)
            return
        step = decide(entry.want, seen, self.settings.mode)
        if step is None:
            self._registered(entry, now, "in place")
        elif step is Step.CONFLICT:
            self._conflict(entry, seen, now)
        else:
            entry.then, entry.due = (step, seen), now

    def _update_answer(self, entry: _Entry, step: Step, rcode: Rcode, now: float) -> None:
        if rcode == _NOERROR:
            self._registered(entry, now, describe_step(step, entry.want, entry.seen))
        elif rcode not in PREREQUISITE_FAILED:
            self._error(entry, step, dns.rcode.to_text(rcode), "", now)
        elif step is Step.ADD and rcode == dns.rcode.YXDOMAIN:
            entry.then, entry.due = (next_rung(self.settings.mode), None), now
        elif not entry.restarted:
            entry.restarted = True  # the zone changed since our query: look again, once
            entry.then, entry.due = (Step.QUERY, None), now
        else:
            why = f"{step.value} refused twice with {dns.rcode.to_text(rcode)}"
            self._conflict(entry, entry.seen, now, why)

    def _hold_back(self, entry: _Entry, seen: Observation, forward: _Entry, now: float) -> None:
        """No PTR to a forward name someone else holds: take ours back, or add none."""
        entry.held_back = (
            f"its forward name {forward.want.record_set.owner} is someone else's "
            f"({forward.conflict_with})"
        )
        if seen.held(dns.rdatatype.DHCID) == frozenset({entry.want.dhcid}):
            entry.then, entry.due = (Step.WITHDRAW, None), now
        else:
            self._conflict(entry, seen, now, entry.held_back)

    def _withdraw_answer(self, entry: _Entry, rcode: Rcode, now: float) -> None:
        if not entry.retiring:  # held back: ours is gone (or was never ours), stay out
            if rcode == _NOERROR or rcode in PREREQUISITE_FAILED:
                self._conflict(entry, entry.seen, now, entry.held_back)
            else:
                self._error(entry, Step.WITHDRAW, dns.rcode.to_text(rcode), "", now)
            return
        if rcode == _NOERROR:
            self._finish(entry, EventKind.WITHDRAWN, "NOERROR", "our records and DHCID deleted")
        elif rcode in PREREQUISITE_FAILED:
            detail = "the name no longer carries our DHCID (someone else's now, or gone)"
            self._finish(entry, EventKind.LEFT_ALONE, dns.rcode.to_text(rcode), detail)
        else:
            self._error(entry, Step.WITHDRAW, dns.rcode.to_text(rcode), "", now)

    def _finish(self, entry: _Entry, kind: EventKind, outcome: str, detail: str) -> None:
        record_set = entry.want.record_set
        del self._entries[record_set.key]
        self._events.append(Event(kind, record_set, outcome, detail))

    def _registered(self, entry: _Entry, now: float, how: str) -> None:
        changed = how != "in place"
        if entry.state is not RecordState.REGISTERED or changed:
            self._report(entry, EventKind.REGISTERED, "NOERROR", how, force=changed)
        entry.state, entry.failures, entry.conflict_with = RecordState.REGISTERED, 0, None
        self._settle(entry, "NOERROR", now, now + self._refresh_delay())

    def _conflict(self, entry: _Entry, seen: Observation | None, now: float, why: str = "") -> None:
        other = seen.describe() if seen is not None else "unknown"
        if why:
            other = f"{why}; last seen: {other}"
        self.counts["CONFLICT"] += 1
        entry.state, entry.failures, entry.conflict_with = RecordState.CONFLICT, 0, other
        self._report(entry, EventKind.CONFLICT, "CONFLICT", other)
        self._settle(entry, "CONFLICT", now, now + self._refresh_delay())

    def _error(self, entry: _Entry, step: Step, outcome: str, detail: str, now: float) -> None:
        if entry.retiring and self.stopping:
            self._finish(entry, EventKind.GAVE_UP, outcome, self._reason(outcome, detail))
            return
        entry.failures += 1
        if not entry.retiring:
            entry.state = RecordState.ERROR
        reason = f"{step.value}: {self._reason(outcome, detail)}"
        self._report(entry, EventKind.ERROR, outcome, reason)
        delay = self.settings.backoff.delay(entry.failures, self._draw())
        self._settle(entry, outcome, now, now + delay)

    def _refresh_delay(self) -> float:
        return self.settings.refresh * (1.0 - REFRESH_JITTER * self._draw())

    def _reason(self, outcome: str, detail: str) -> str:
        text = explain(outcome, self.settings.signer)
        return f"{text} ({detail})" if detail else text

    def _settle(self, entry: _Entry, outcome: str, now: float, due: float) -> None:
        entry.outcome, entry.outcome_at, entry.due = outcome, now, due

    def _report(
        self, entry: _Entry, kind: EventKind, outcome: str, detail: str, force: bool = False
    ) -> None:
        """Queue an event unless the same one was the last reported for this set."""
        what = (kind, outcome, detail)
        if force or entry.reported != what:
            entry.reported = what
            self._events.append(Event(kind, entry.want.record_set, outcome, detail))
