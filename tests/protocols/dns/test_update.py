"""protocols.dns.update and update_messages: registration messages and state, without a network.

Messages are checked section by section against RFC 2136 §2.4 (prerequisite
encodings) and §2.5 (update encodings); the engine is driven with made-up
answers, an injected clock and an injected random draw.
"""

from __future__ import annotations

import base64
import dataclasses

import dns.exception
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import dns.tsig
import dns.update
import pytest

from protocols.dns.ownership import RecordSet, mac_dhcid
from protocols.dns.update import (
    Backoff,
    EventKind,
    Exchange,
    HmacSigner,
    RecordState,
    Registrar,
    Settings,
    make_key,
    outcome_of,
)
from protocols.dns.update_messages import (
    ConflictMode,
    Observation,
    Step,
    build_queries,
    build_update,
    decide,
    explain,
    observe,
    wanted,
)

IN, ANY, NONE = dns.rdataclass.IN, dns.rdataclass.ANY, dns.rdataclass.NONE
A, AAAA, PTR, DHCID = (dns.rdatatype.A, dns.rdatatype.AAAA, dns.rdatatype.PTR, dns.rdatatype.DHCID)
OWNER = "sql01-cz1.corp.example"
MINE = mac_dhcid(bytes.fromhex("02005e100011"), OWNER)
OTHER = mac_dhcid(bytes.fromhex("02005e100099"), OWNER)
KEY = make_key("cozen-key", b"0123456789abcdef0123456789abcdef", "hmac-sha256")
SIGNER = HmacSigner(KEY)
FORWARD = RecordSet(
    "corp.example",
    OWNER,
    "SQL01-CZ1",
    ("A", "AAAA"),
    (("A", "127.0.0.11"), ("AAAA", "fd00::11")),
    MINE,
    300,
)
REVERSE = RecordSet(
    "0.0.127.in-addr.arpa",
    "11.0.0.127.in-addr.arpa",
    "SQL01-CZ1",
    ("PTR",),
    (("PTR", f"{OWNER}."),),
    MINE,
    300,
)


def rd(rdtype: str, text: str) -> dns.rdata.Rdata:
    return dns.rdata.from_text(IN, rdtype, text)


def dhcid(data: bytes) -> dns.rdata.Rdata:
    return rd("DHCID", base64.b64encode(data).decode())


def seen(*records: tuple[str, str], ttl: int = 300, exists: bool = True) -> Observation:
    """An observation holding ``records`` (type, text); DHCID text may be raw bytes' base64."""
    rrsets: dict = {}
    for rdtype, text in records:
        kind = dns.rdatatype.from_text(rdtype)
        rrsets.setdefault(kind, (ttl, frozenset()))
        rrsets[kind] = (ttl, rrsets[kind][1] | {rd(rdtype, text)})
    return Observation(exists, rrsets)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def section(message: dns.message.Message, index: int) -> list[tuple[str, int, int, int, str]]:
    """(owner, class, type, ttl, rdata) of every RR of a section, in order."""
    rows = []
    for rrset in message.sections[index]:
        items = list(rrset) or [None]
        rdclass = rrset.deleting if rrset.deleting is not None else rrset.rdclass
        for item in items:
            text = str(item or "").replace(" ", "")  # DHCID's base64 comes in chunks
            rows.append((rrset.name.to_text(), rdclass, rrset.rdtype, rrset.ttl, text))
    return rows


PREREQ, UPDATE = 1, 2


# ---------------------------------------------------------------- messages per mode


def test_add_is_name_not_in_use_plus_records_and_dhcid():
    want = wanted(FORWARD)
    assert decide(want, Observation(False, {}), ConflictMode.CHECK_WITH_DHCID) is Step.ADD
    update = build_update(Step.ADD, want, None, SIGNER)
    assert (
        update.zone[0].name.to_text() == "corp.example."
        and update.zone[0].rdtype == dns.rdatatype.SOA
    )
    # RFC 2136 §2.4.5: class NONE, type ANY, TTL 0, no RDATA
    assert section(update, PREREQ) == [(f"{OWNER}.", NONE, dns.rdatatype.ANY, 0, "")]
    assert section(update, UPDATE) == [
        (f"{OWNER}.", IN, A, 300, "127.0.0.11"),
        (f"{OWNER}.", IN, AAAA, 300, "fd00::11"),
        (f"{OWNER}.", IN, DHCID, 300, b64(MINE)),
    ]
    assert update.keyname == dns.name.from_text("cozen-key")
    wire = update.to_wire()  # signed on the way out (RFC 8945 §5.1): the server verifies it
    assert dns.message.from_wire(wire, keyring=KEY).had_tsig


def test_replace_requires_exactly_our_dhcid_and_fixes_only_what_differs():
    want = wanted(FORWARD)
    held = seen(("A", "127.0.0.99"), ("AAAA", "fd00::11"), ("DHCID", b64(MINE)))
    assert decide(want, held, ConflictMode.CHECK_WITH_DHCID) is Step.REPLACE
    update = build_update(Step.REPLACE, want, held, SIGNER)
    # RFC 2136 §2.4.2: value-dependent, class IN, TTL 0
    assert section(update, PREREQ) == [(f"{OWNER}.", IN, DHCID, 0, b64(MINE))]
    # §2.5.2 delete the A RRset (class ANY, TTL 0, no RDATA), then add ours; AAAA untouched
    assert section(update, UPDATE) == [
        (f"{OWNER}.", ANY, A, 0, ""),
        (f"{OWNER}.", IN, A, 300, "127.0.0.11"),
    ]


def test_a_ttl_change_is_a_difference():
    want = wanted(FORWARD)
    held = seen(("A", "127.0.0.11"), ("AAAA", "fd00::11"), ("DHCID", b64(MINE)), ttl=60)
    update = build_update(decide(want, held, ConflictMode.CHECK_WITH_DHCID), want, held, SIGNER)
    assert [row[2] for row in section(update, UPDATE)] == [A, A, AAAA, AAAA, DHCID, DHCID]


def test_an_extra_aaaa_is_removed_when_the_node_has_none():
    record_set = RecordSet(
        "corp.example", OWNER, "N", ("A", "AAAA"), (("A", "127.0.0.11"),), MINE, 300
    )
    want = wanted(record_set)
    held = seen(("A", "127.0.0.11"), ("AAAA", "fd00::11"), ("DHCID", b64(MINE)))
    update = build_update(Step.REPLACE, want, held, SIGNER)
    assert section(update, UPDATE) == [(f"{OWNER}.", ANY, AAAA, 0, "")]


def test_in_sync_sends_nothing():
    held = seen(("A", "127.0.0.11"), ("AAAA", "fd00::11"), ("DHCID", b64(MINE)))
    for mode in ConflictMode:
        assert decide(wanted(FORWARD), held, mode) is None


@pytest.mark.parametrize(
    ("mode", "static", "other_dhcid"),
    [
        (ConflictMode.CHECK_WITH_DHCID, Step.CONFLICT, Step.CONFLICT),
        (ConflictMode.CHECK_EXISTS_WITH_DHCID, Step.CONFLICT, Step.TAKEOVER),
        (ConflictMode.NO_CHECK, Step.OVERWRITE, Step.OVERWRITE),
    ],
)
def test_conflict_modes(mode, static, other_dhcid):
    want = wanted(FORWARD)
    assert decide(want, seen(("A", "10.0.0.9")), mode) is static
    assert decide(want, seen(("A", "10.0.0.9"), ("DHCID", b64(OTHER))), mode) is other_dhcid


def test_a_cname_is_a_conflict_in_every_mode():
    held = Observation(True, {}, ("CNAME elsewhere.corp.example.",))
    for mode in ConflictMode:
        assert decide(wanted(FORWARD), held, mode) is Step.CONFLICT


def test_takeover_requires_a_dhcid_and_replaces_it():
    want = wanted(FORWARD)
    held = seen(("A", "10.0.0.9"), ("DHCID", b64(OTHER)))
    update = build_update(Step.TAKEOVER, want, held, SIGNER)
    # RFC 2136 §2.4.1: value-independent, class ANY, TTL 0, no RDATA
    assert section(update, PREREQ) == [(f"{OWNER}.", ANY, DHCID, 0, "")]
    assert section(update, UPDATE) == [
        (f"{OWNER}.", ANY, A, 0, ""),
        (f"{OWNER}.", IN, A, 300, "127.0.0.11"),
        (f"{OWNER}.", ANY, AAAA, 0, ""),
        (f"{OWNER}.", IN, AAAA, 300, "fd00::11"),
        (f"{OWNER}.", ANY, DHCID, 0, ""),
        (f"{OWNER}.", IN, DHCID, 300, b64(MINE)),
    ]


def test_overwrite_has_no_prerequisite():
    want = wanted(FORWARD)
    update = build_update(Step.OVERWRITE, want, seen(("A", "10.0.0.9")), SIGNER)
    assert section(update, PREREQ) == []
    assert (f"{OWNER}.", IN, DHCID, 300, b64(MINE)) in section(update, UPDATE)


def test_withdraw_deletes_exactly_our_records_under_our_dhcid():
    update = build_update(Step.WITHDRAW, wanted(REVERSE), None, SIGNER)
    owner = "11.0.0.127.in-addr.arpa."
    assert update.zone[0].name.to_text() == "0.0.127.in-addr.arpa."
    assert section(update, PREREQ) == [(owner, IN, DHCID, 0, b64(MINE))]
    # §2.5.4: class NONE, TTL 0, with the RDATA to delete
    assert section(update, UPDATE) == [
        (owner, NONE, PTR, 0, f"{OWNER}."),
        (owner, NONE, DHCID, 0, b64(MINE)),
    ]


def test_queries_are_non_recursive_one_per_type():
    queries = build_queries(wanted(FORWARD))
    assert [q.question[0].rdtype for q in queries] == [A, AAAA, DHCID]
    assert not any(q.flags & dns.flags.RD for q in queries)


def test_query_and_conflict_send_no_update():
    for step in (Step.QUERY, Step.CONFLICT):
        with pytest.raises(ValueError):
            build_update(step, wanted(FORWARD), None, SIGNER)


# ---------------------------------------------------------------- answers and outcomes


def reply(query: dns.message.Message, *records: str, rcode: int = 0) -> dns.message.Message:
    """An answer to ``query`` holding ``records`` ("NAME TTL TYPE DATA")."""
    response = dns.message.make_response(query)
    response.set_rcode(rcode)
    for text in records:
        name, ttl, rdtype, data = text.split(" ", 3)
        response.answer.append(dns.rrset.from_text(name, int(ttl), "IN", rdtype, data))
    return response


def test_observe_reads_the_owner_only_and_notes_aliases():
    want = wanted(FORWARD)
    a, aaaa, dh = build_queries(want)
    responses = [
        reply(a, f"{OWNER}. 60 A 127.0.0.11"),
        reply(aaaa, rcode=0),
        reply(dh, f"{OWNER}. 300 DHCID {b64(MINE)}"),
    ]
    held = observe(want, responses)
    assert held.exists and held.rrsets[A] == (60, frozenset({rd("A", "127.0.0.11")}))
    assert AAAA not in held.rrsets and held.held(DHCID) == {dhcid(MINE)}
    nx = [reply(q, rcode=dns.rcode.NXDOMAIN) for q in (a, aaaa, dh)]
    assert not observe(want, nx).exists
    alias = [reply(q, f"{OWNER}. 60 CNAME x.corp.example.") for q in (a, aaaa, dh)]
    assert observe(want, alias).aliases == ("CNAME x.corp.example.",)


def test_observation_describes_the_other_data():
    assert seen(("A", "10.0.0.9")).describe() == "A 10.0.0.9; no DHCID"
    assert Observation(False, {}).describe() == "nothing (NXDOMAIN)"


def signed_exchange(tsig_error: int = 0, key: dns.tsig.Key = KEY) -> tuple[bytes, bytes]:
    """(request MAC, response wire) for an UPDATE signed with KEY, answered by ``key``."""
    request = build_update(Step.ADD, wanted(FORWARD), None, SIGNER)
    server_view = dns.message.from_wire(request.to_wire(), keyring=KEY)
    response = dns.message.make_response(server_view)
    if key is not KEY or tsig_error:
        response.use_tsig(key, tsig_error=tsig_error)
    return request.mac, response.to_wire()


def client_outcome(mac: bytes, wire: bytes) -> str:
    try:
        dns.message.from_wire(wire, keyring=KEY, request_mac=mac)
    except Exception as exc:  # classified by outcome_of
        return outcome_of(exc)
    return "OK"


@pytest.mark.parametrize(
    ("tsig_error", "outcome"),
    [
        (dns.rcode.BADKEY, "BADKEY"),
        (dns.rcode.BADSIG, "BADSIG"),
        (dns.rcode.BADTIME, "BADTIME"),
    ],
)
def test_the_servers_tsig_errors(tsig_error, outcome):
    assert client_outcome(*signed_exchange(tsig_error)) == outcome


def test_a_good_signature_passes_and_a_bad_or_missing_one_does_not():
    assert client_outcome(*signed_exchange()) == "OK"
    wrong = make_key("cozen-key", b"another secret, same name.......", "hmac-sha256")
    assert client_outcome(*signed_exchange(key=wrong)) == "BAD_RESPONSE_SIGNATURE"
    request = build_update(Step.ADD, wanted(FORWARD), None, SIGNER)
    request.to_wire()
    unsigned = dns.message.make_response(dns.message.from_wire(request.to_wire(), keyring=KEY))
    unsigned.tsig = None
    unsigned.keyring = None
    assert client_outcome(request.mac, unsigned.to_wire()) == "UNSIGNED_RESPONSE"


def test_transport_outcomes():
    assert outcome_of(dns.exception.Timeout()) == "TIMEOUT"
    assert outcome_of(TimeoutError()) == "TIMEOUT"
    assert outcome_of(ConnectionRefusedError(111, "refused")) == "UNREACHABLE"
    assert outcome_of(EOFError()) == "UNREACHABLE"
    assert outcome_of(dns.exception.FormError("junk")) == "MALFORMED_RESPONSE"
    assert outcome_of(dns.exception.DNSException("odd")) == "FAILED"


def test_explanations_name_the_key():
    assert "cozen-key" in explain("BADSIG", SIGNER) and "secret" in explain("BADSIG", SIGNER)
    assert "hmac-sha256" in explain("BADKEY", SIGNER)
    assert "clock" in explain("BADTIME", SIGNER)
    assert explain("YXRRSET", SIGNER) == "the server answered YXRRSET"


# ---------------------------------------------------------------- the engine


class Harness:
    """A registrar with a clock, a zero random draw and a fake server."""

    def __init__(self, mode: ConflictMode = ConflictMode.CHECK_WITH_DHCID, draw: float = 0.0):
        self.now = 100.0
        settings = Settings(SIGNER, mode, refresh=600.0, backoff=Backoff(1.0, 60.0, 0.5))
        self.registrar = Registrar(settings, draw=lambda: draw)

    def poll(self) -> list[Exchange]:
        return self.registrar.poll(self.now)

    def one(self, step: Step) -> Exchange:
        exchanges = self.poll()
        assert [e.step for e in exchanges] == [step], exchanges
        return exchanges[0]

    def answer_query(self, exchange: Exchange, *records: str, rcode: int = 0) -> None:
        responses = []
        for query in exchange.messages:
            rdtype = dns.rdatatype.to_text(query.question[0].rdtype)
            texts = [r for r in records if r.split(" ")[2] == rdtype]
            responses.append(reply(query, *texts, rcode=rcode))
        self.registrar.receive(exchange, responses, self.now)

    def answer_update(self, exchange: Exchange, rcode: int) -> None:
        response = dns.message.make_response(exchange.messages[0])
        response.set_rcode(rcode)
        self.registrar.receive(exchange, [response], self.now)

    def state(self) -> RecordState:
        (status,) = self.registrar.status()
        return status.state

    def kinds(self) -> list[EventKind]:
        return [e.kind for e in self.registrar.events()]


HELD_MINE = (
    f"{OWNER}. 300 A 127.0.0.11",
    f"{OWNER}. 300 AAAA fd00::11",
    f"{OWNER}. 300 DHCID {b64(MINE)}",
)


def register(h: Harness) -> None:
    h.registrar.set_desired([FORWARD], h.now)
    h.answer_query(h.one(Step.QUERY), rcode=dns.rcode.NXDOMAIN)
    h.answer_update(h.one(Step.ADD), dns.rcode.NOERROR)


def test_first_registration_then_quiet_refresh():
    h = Harness()
    register(h)
    assert h.state() is RecordState.REGISTERED and h.kinds() == [EventKind.REGISTERED]
    assert h.registrar.next_timer() == h.now + 600.0
    assert h.poll() == []
    h.now += 600.0
    h.answer_query(h.one(Step.QUERY), *HELD_MINE)
    assert h.poll() == [] and h.kinds() == []  # in sync: no UPDATE, nothing to log
    assert h.registrar.counts == {"QUERY": 2, "NOERROR": 1}


def test_a_record_deleted_behind_our_back_is_restored_at_refresh():
    h = Harness()
    register(h)
    h.kinds()
    h.now += 600.0
    h.answer_query(h.one(Step.QUERY), *HELD_MINE[1:])  # the A record is gone
    update = h.one(Step.REPLACE)
    assert section(update.messages[0], UPDATE) == [
        (f"{OWNER}.", ANY, A, 0, ""),
        (f"{OWNER}.", IN, A, 300, "127.0.0.11"),
    ]
    h.answer_update(update, dns.rcode.NOERROR)
    (event,) = h.registrar.events()
    assert event.kind is EventKind.REGISTERED and event.detail == "replaced (A)"


@pytest.mark.parametrize(
    ("mode", "rung"),
    [
        (ConflictMode.CHECK_WITH_DHCID, Step.REPLACE),
        (ConflictMode.CHECK_EXISTS_WITH_DHCID, Step.TAKEOVER),
        (ConflictMode.NO_CHECK, Step.OVERWRITE),
    ],
)
def test_add_refused_with_yxdomain_goes_on_with_the_next_rung(mode, rung):
    h = Harness(mode)
    h.registrar.set_desired([FORWARD], h.now)
    h.answer_query(h.one(Step.QUERY), rcode=dns.rcode.NXDOMAIN)
    h.answer_update(h.one(Step.ADD), dns.rcode.YXDOMAIN)
    exchange = h.one(rung)
    assert section(exchange.messages[0], UPDATE)[0] == (f"{OWNER}.", ANY, A, 0, "")  # all rewritten
    h.answer_update(exchange, dns.rcode.NOERROR)
    assert h.state() is RecordState.REGISTERED


def test_a_failed_prerequisite_looks_again_once_then_is_a_conflict():
    h = Harness()
    h.registrar.set_desired([FORWARD], h.now)
    h.answer_query(h.one(Step.QUERY), f"{OWNER}. 300 DHCID {b64(MINE)}")
    h.answer_update(h.one(Step.REPLACE), dns.rcode.NXRRSET)
    h.answer_query(h.one(Step.QUERY), f"{OWNER}. 300 DHCID {b64(MINE)}")  # looks ours again
    h.answer_update(h.one(Step.REPLACE), dns.rcode.NXRRSET)
    assert h.state() is RecordState.CONFLICT and h.poll() == []


def test_a_static_record_is_a_conflict_logged_once_and_never_overwritten():
    h = Harness()
    h.registrar.set_desired([FORWARD], h.now)
    for _ in range(3):
        h.answer_query(h.one(Step.QUERY), f"{OWNER}. 300 A 10.0.0.9")
        assert h.poll() == []  # no UPDATE at all
        h.now += 600.0
    events = h.registrar.events()
    assert [e.kind for e in events] == [EventKind.CONFLICT]
    assert events[0].detail == "A 10.0.0.9; no DHCID"
    (status,) = h.registrar.status()
    assert status.state is RecordState.CONFLICT and status.conflict_with == "A 10.0.0.9; no DHCID"
    assert h.registrar.counts["CONFLICT"] == 3


@pytest.mark.parametrize(
    "rcode", ["REFUSED", "NOTAUTH", "NOTZONE", "SERVFAIL", "FORMERR", "NOTIMP"]
)
def test_each_error_rcode_is_an_error_with_backoff(rcode):
    h = Harness()
    h.registrar.set_desired([FORWARD], h.now)
    h.answer_query(h.one(Step.QUERY), rcode=dns.rcode.NXDOMAIN)
    h.answer_update(h.one(Step.ADD), dns.rcode.from_text(rcode))
    (status,) = h.registrar.status()
    assert status.state is RecordState.ERROR and status.outcome == rcode
    assert status.failures == 1 and status.next_attempt == h.now + 1.0
    (event,) = h.registrar.events()
    assert (
        event.kind is EventKind.ERROR
        and event.outcome == rcode
        and event.detail.startswith("add: ")
    )
    assert h.registrar.counts[rcode] == 1


def test_a_query_refused_is_an_error_too():
    h = Harness()
    h.registrar.set_desired([FORWARD], h.now)
    h.answer_query(h.one(Step.QUERY), rcode=dns.rcode.REFUSED)
    assert h.state() is RecordState.ERROR and h.registrar.counts["REFUSED"] == 1


@pytest.mark.parametrize(
    "outcome", ["BADKEY", "BADSIG", "BADTIME", "TIMEOUT", "UNREACHABLE", "UNSIGNED_RESPONSE"]
)
def test_failures_back_off_exponentially_up_to_the_cap_and_log_once(outcome):
    h = Harness()
    h.registrar.set_desired([FORWARD], h.now)
    waits = []
    for _ in range(9):
        exchange = h.poll()[0]
        h.registrar.fail(exchange, outcome, "detail", h.now)
        due = h.registrar.next_timer()
        waits.append(due - h.now)
        h.now = due
    assert waits == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0, 60.0]
    assert [e.kind for e in h.registrar.events()] == [EventKind.ERROR]
    assert h.registrar.counts[outcome] == 9


def test_backoff_jitter_shortens_by_up_to_half():
    backoff = Backoff(1.0, 300.0, 0.5)
    assert backoff.delay(3, 0.0) == 4.0
    assert backoff.delay(3, 0.5) == 3.0
    assert 2.0 < backoff.delay(3, 0.999) < 2.01
    assert backoff.delay(40, 0.0) == 300.0 and backoff.delay(10_000, 0.0) == 300.0
    h = Harness(draw=0.5)
    h.registrar.set_desired([FORWARD], h.now)
    h.registrar.fail(h.poll()[0], "TIMEOUT", "", h.now)
    assert h.registrar.next_timer() == h.now + 0.75


def test_recovery_after_errors_is_reported_and_resets_the_backoff():
    h = Harness()
    h.registrar.set_desired([FORWARD], h.now)
    for _ in range(3):
        h.registrar.fail(h.poll()[0], "UNREACHABLE", "refused", h.now)
        h.now = h.registrar.next_timer()
    h.answer_query(h.one(Step.QUERY), *HELD_MINE)  # records still there from a previous run
    assert h.kinds() == [EventKind.ERROR, EventKind.REGISTERED]
    (status,) = h.registrar.status()
    assert status.failures == 0 and status.next_attempt == h.now + 600.0


def test_a_readdressed_node_is_replaced():
    h = Harness()
    register(h)
    moved = RecordSet(
        FORWARD.zone, OWNER, "SQL01-CZ1", FORWARD.types, (("A", "127.0.0.21"),), MINE, 300
    )
    h.registrar.set_desired([moved], h.now)
    assert h.state() is RecordState.PENDING
    h.answer_query(h.one(Step.QUERY), *HELD_MINE)
    update = h.one(Step.REPLACE).messages[0]
    assert section(update, UPDATE) == [
        (f"{OWNER}.", ANY, A, 0, ""),
        (f"{OWNER}.", IN, A, 300, "127.0.0.21"),
        (f"{OWNER}.", ANY, AAAA, 0, ""),
    ]


def test_a_change_while_an_exchange_is_out_drops_the_late_answer():
    h = Harness()
    h.registrar.set_desired([FORWARD], h.now)
    query = h.one(Step.QUERY)
    h.registrar.set_desired([], h.now)  # removed while the query was out
    assert h.poll() == []  # one exchange per set at a time
    h.answer_query(query, rcode=dns.rcode.NXDOMAIN)  # stale: ignored
    withdraw = h.one(Step.WITHDRAW)
    h.answer_update(withdraw, dns.rcode.NXRRSET)
    assert h.kinds() == [EventKind.LEFT_ALONE] and h.registrar.finished()


def test_a_removed_set_is_withdrawn():
    h = Harness()
    register(h)
    h.kinds()
    h.registrar.set_desired([], h.now)
    assert h.state() is RecordState.WITHDRAWING
    h.answer_update(h.one(Step.WITHDRAW), dns.rcode.NOERROR)
    assert h.kinds() == [EventKind.WITHDRAWN] and h.registrar.status() == []


def test_withdrawal_retries_after_a_reload_but_not_at_stop():
    h = Harness()
    register(h)
    h.registrar.set_desired([], h.now)
    h.registrar.fail(h.one(Step.WITHDRAW), "TIMEOUT", "", h.now)
    assert h.state() is RecordState.WITHDRAWING and not h.registrar.finished()
    h.registrar.withdraw_all(h.now)  # stop: due at once, one try
    h.registrar.fail(h.one(Step.WITHDRAW), "TIMEOUT", "", h.now)
    assert h.registrar.finished()
    assert h.kinds()[-1] is EventKind.GAVE_UP


def test_stop_does_not_withdraw_a_conflict():
    h = Harness()
    h.registrar.set_desired([FORWARD, REVERSE], h.now)
    forward, reverse = h.poll()
    h.answer_query(forward, f"{OWNER}. 300 A 10.0.0.9")
    h.answer_query(reverse, rcode=dns.rcode.NXDOMAIN)
    h.registrar.withdraw_all(h.now)
    assert [s.record_set for s in h.registrar.status()] == [REVERSE]
    assert h.registrar.remaining() == [REVERSE]


def test_a_new_key_retries_failed_sets_at_once():
    h = Harness()
    h.registrar.set_desired([FORWARD], h.now)
    h.registrar.fail(h.poll()[0], "BADSIG", "", h.now)
    assert h.poll() == []  # backing off
    key = make_key("cozen-key", b"a fixed secret", "hmac-sha512")
    h.registrar.configure(Settings(HmacSigner(key), refresh=600.0), h.now)
    exchange = h.one(Step.QUERY)
    h.answer_query(exchange, rcode=dns.rcode.NXDOMAIN)
    add = h.one(Step.ADD).messages[0]
    assert add.keyalgorithm == dns.tsig.HMAC_SHA512


REVERSE_OF_FORWARD = dataclasses.replace(REVERSE, forward=FORWARD.key)
HELD_PTR = (
    f"11.0.0.127.in-addr.arpa. 300 PTR {OWNER}.",
    f"11.0.0.127.in-addr.arpa. 300 DHCID {b64(MINE)}",
)


def status_of(h: Harness, record_set: RecordSet):
    return next(s for s in h.registrar.status() if s.record_set == record_set)


def test_a_ptr_waits_for_its_forward_name_and_is_not_added_after_a_conflict():
    h = Harness()
    h.registrar.set_desired([FORWARD, REVERSE_OF_FORWARD], h.now)
    (forward,) = h.poll()  # the reverse set waits for the forward set's outcome
    assert forward.owner == OWNER and h.registrar.next_timer() is None
    h.answer_query(forward, f"{OWNER}. 300 A 10.0.0.9")
    h.answer_query(h.one(Step.QUERY), rcode=dns.rcode.NXDOMAIN)
    assert h.poll() == []  # no ADD of a PTR naming someone else's name
    reverse = status_of(h, REVERSE_OF_FORWARD)
    assert reverse.state is RecordState.CONFLICT
    assert reverse.conflict_with == (
        f"its forward name {OWNER} is someone else's (A 10.0.0.9; no DHCID); "
        "last seen: nothing (NXDOMAIN)"
    )


def test_our_ptr_is_taken_back_when_the_forward_name_is_lost():
    h = Harness()
    h.registrar.set_desired([FORWARD, REVERSE_OF_FORWARD], h.now)
    h.answer_query(h.one(Step.QUERY), *HELD_MINE)
    h.answer_query(h.one(Step.QUERY), *HELD_PTR)
    assert {s.state for s in h.registrar.status()} == {RecordState.REGISTERED}
    h.now += 600.0
    forward, reverse = h.poll()
    h.answer_query(forward, f"{OWNER}. 300 A 10.0.0.9")  # an admin made it static
    h.answer_query(reverse, *HELD_PTR)
    withdraw = h.one(Step.WITHDRAW)
    assert section(withdraw.messages[0], PREREQ) == [
        ("11.0.0.127.in-addr.arpa.", IN, DHCID, 0, b64(MINE))
    ]
    h.answer_update(withdraw, dns.rcode.NOERROR)
    assert status_of(h, REVERSE_OF_FORWARD).state is RecordState.CONFLICT
    assert h.registrar.remaining() == [FORWARD, REVERSE_OF_FORWARD]  # still wanted


def test_refresh_comes_up_to_a_tenth_early_by_the_draw():
    """1,000 names registered together must not query the server together forever after."""
    for draw, due in ((0.0, 600.0), (0.5, 570.0), (0.999, 540.06)):
        h = Harness(draw=draw)
        register(h)
        assert h.registrar.next_timer() == pytest.approx(h.now + due)
