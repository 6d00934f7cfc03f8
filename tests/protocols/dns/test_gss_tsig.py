"""GSS-TSIG's sans-IO half: TKEY legs, Kerberos outcomes, the context's timing, the signer."""

from __future__ import annotations

import hashlib
import hmac

import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TKEY
import dns.rrset
import dns.tsig
import pytest

from protocols.dns import gss_tsig
from protocols.dns.gss_tsig import GssSigner, TkeyRefused
from protocols.dns.ownership import RecordSet
from protocols.dns.update import Registrar, Settings
from protocols.dns.update_messages import Step, build_update, explain, wanted

PRINCIPAL = "cozen/sidecar.corp.example@CORP.EXAMPLE"
NAME = dns.name.from_text("0000002a.sig-ns.corp.example.")


class FakeContext:
    """Stands in for a gssapi.SecurityContext: a MIC is an HMAC under a shared secret."""

    def __init__(self, secret: bytes = b"context") -> None:
        self.secret = secret

    def get_signature(self, data: bytes) -> bytes:
        return hmac.new(self.secret, data, hashlib.sha256).digest()

    def verify_signature(self, data: bytes, mic: bytes) -> None:
        if not hmac.compare_digest(self.get_signature(data), mic):
            raise ValueError("bad MIC")


def signer(rekey: float = 2700.0) -> GssSigner:
    return GssSigner(PRINCIPAL, "DNS/ns.corp.example", rekey, 3600)


def tkey(error: int = 0, mode: int = 3, token: bytes = b"server-token") -> dns.rrset.RRset:
    rdata = dns.rdtypes.ANY.TKEY.TKEY(  # type: ignore[no-untyped-call]
        dns.rdataclass.ANY, dns.rdatatype.TKEY, gss_tsig.GSS_TSIG, 1, 2, mode, error, token
    )
    return dns.rrset.from_rdata(NAME, 0, rdata)


# ---------------------------------------------------------------- TKEY legs


def test_key_name_is_fresh_per_nonce():
    assert gss_tsig.key_name("ns.corp.example.", 42) == NAME
    assert gss_tsig.key_name("ns.corp.example", 2**40 + 1).to_text() == (
        "00000001.sig-ns.corp.example."
    )


def test_tkey_query_carries_the_token_in_gss_mode():
    query = gss_tsig.build_tkey_query(NAME, b"client-token", 1_000_000, 3600)
    parsed = dns.message.from_wire(query.to_wire())
    assert parsed.question[0].name == NAME
    assert parsed.question[0].rdtype == dns.rdatatype.TKEY
    assert parsed.question[0].rdclass == dns.rdataclass.ANY
    (rrset,) = parsed.additional
    rdata = rrset[0]
    assert (rdata.mode, rdata.error, rdata.key) == (3, 0, b"client-token")
    assert rdata.algorithm == gss_tsig.GSS_TSIG
    assert (rdata.inception, rdata.expiration) == (1_000_000, 1_003_600)


def answer(*rrsets: dns.rrset.RRset, rcode: int = 0) -> dns.message.Message:
    query = gss_tsig.build_tkey_query(NAME, b"t", 1, 60)
    response = dns.message.make_response(query)
    response.set_rcode(rcode)
    response.answer.extend(rrsets)
    return dns.message.from_wire(response.to_wire())


def test_read_the_servers_token():
    assert gss_tsig.read_tkey_answer(answer(tkey()), NAME) == b"server-token"


@pytest.mark.parametrize(
    ("response", "outcome"),
    [
        (answer(rcode=dns.rcode.REFUSED), "REFUSED"),
        (answer(tkey(error=dns.rcode.BADKEY)), "BADKEY"),
        (answer(tkey(mode=2)), "TKEY_REFUSED"),
        (answer(), "TKEY_REFUSED"),
    ],
)
def test_a_refused_tkey_leg_names_why(response, outcome):
    with pytest.raises(TkeyRefused) as caught:
        gss_tsig.read_tkey_answer(response, NAME)
    assert caught.value.outcome == outcome


# ---------------------------------------------------------------- Kerberos outcomes


@pytest.mark.parametrize(
    ("text", "outcome"),
    [
        ("Major (851968): Unspecified GSS failure. Minor (2529638972): Cannot contact any KDC "
         "for realm 'CORP.EXAMPLE'", "KRB_KDC_UNREACHABLE"),
        ("Minor (2529638936): Clock skew too great", "KRB_CLOCK_SKEW"),
        ("Minor (2529638918): Client 'cozen/x@CORP.EXAMPLE' not found in Kerberos database",
         "KRB_UNKNOWN_PRINCIPAL"),
        ("Minor (2529638919): Server DNS/ns.corp.example@CORP.EXAMPLE not found in Kerberos "
         "database", "KRB_UNKNOWN_SERVER"),
        ("Minor (2529638936): Preauthentication failed", "KRB_BAD_KEYTAB"),
        ("Minor (2529639053): Decrypt integrity check failed", "KRB_BAD_KEYTAB"),
        ("Minor (100001): No Kerberos credentials available (default cache: FILE:/tmp/x)",
         "KRB_NO_CREDENTIALS"),
        ("Minor (2529639111): Ticket expired", "KRB_EXPIRED"),
        ("Minor (1): something new", "KRB_FAILED"),
    ],
)  # fmt: skip
def test_kerberos_outcome(text, outcome):
    assert gss_tsig.kerberos_outcome(text) == outcome


def test_every_kerberos_outcome_is_explained_naming_the_principal():
    gss = signer()
    for outcome in ("KRB_NO_CREDENTIALS", "KRB_BAD_KEYTAB", "KRB_UNKNOWN_PRINCIPAL"):
        assert PRINCIPAL in explain(outcome, gss)
    assert "server_principal" in explain("KRB_UNKNOWN_SERVER", gss)
    assert "clocks" in explain("KRB_CLOCK_SKEW", gss)
    assert "pip install cozen-responder[gss]" in explain("GSS_UNAVAILABLE", gss)


def test_bad_direction_is_read_only_for_a_refusal_and_only_when_allowed():
    assert gss_tsig.accept_bad_direction(dns.rcode.REFUSED, True)
    assert not gss_tsig.accept_bad_direction(dns.rcode.REFUSED, False)
    assert not gss_tsig.accept_bad_direction(dns.rcode.NOERROR, True)


# ---------------------------------------------------------------- the context's timing


def gss_key(context: FakeContext | None = None) -> dns.tsig.Key:
    return dns.tsig.Key(NAME, context or FakeContext(), gss_tsig.GSS_TSIG)


def test_a_context_is_needed_first_and_again_after_rekey():
    gss = signer(rekey=100.0)
    assert gss.needs_context(0.0) and gss.next_rekey() is None
    gss.established(gss_key(), 10.0)
    assert not gss.needs_context(109.9)
    assert gss.needs_context(110.0) and gss.next_rekey() == 110.0
    gss.forget()
    assert gss.needs_context(11.0)


def test_a_failure_stands_for_its_backoff_then_clears_on_success():
    gss = signer()
    gss.failed("KRB_KDC_UNREACHABLE", "Cannot contact any KDC", 50.0, 4.0)
    assert gss.standing_failure(53.9) == ("KRB_KDC_UNREACHABLE", "Cannot contact any KDC")
    assert gss.standing_failure(54.0) is None and gss.failures == 1
    gss.established(gss_key(), 60.0)
    assert gss.standing_failure(60.0) is None and gss.failures == 0


# ---------------------------------------------------------------- the signer in the flow

FORWARD = RecordSet(
    zone="corp.example",
    owner="sql01-cz1.corp.example",
    node="SQL01-CZ1",
    types=("A",),
    records=(("A", "127.0.0.11"),),
    dhcid=b"\x00\x01\x01" + bytes(32),
    ttl=300,
)


def test_an_update_is_signed_with_gss_tsig_and_its_answer_verified():
    gss, context = signer(), FakeContext()
    gss.established(gss_key(context), 0.0)
    update = build_update(Step.ADD, wanted(FORWARD), None, gss)
    wire = update.to_wire()
    server_view = dns.message.from_wire(wire, keyring=gss_key(context))
    assert server_view.had_tsig and server_view.keyalgorithm == gss_tsig.GSS_TSIG
    response = dns.message.make_response(server_view)
    reply = dns.message.from_wire(
        response.to_wire(), keyring=update.keyring, request_mac=update.mac
    )
    assert reply.had_tsig and reply.rcode() == dns.rcode.NOERROR
    wrong = dns.message.make_response(dns.message.from_wire(wire, keyring=gss_key(context)))
    wrong.use_tsig(gss_key(FakeContext(b"someone else")))
    with pytest.raises(dns.tsig.BadSignature):
        dns.message.from_wire(wrong.to_wire(), keyring=update.keyring, request_mac=update.mac)


def test_without_a_context_nothing_is_signed():
    update = build_update(Step.ADD, wanted(FORWARD), None, signer())
    assert not dns.message.from_wire(update.to_wire()).had_tsig


def test_the_registrar_names_the_principal_in_its_errors():
    registrar = Registrar(Settings(signer()), draw=lambda: 0.0)
    registrar.set_desired([FORWARD], 0.0)
    (query,) = registrar.poll(0.0)
    registrar.fail(query, "KRB_BAD_KEYTAB", "Preauthentication failed", 0.0)
    (event,) = registrar.events()
    assert event.outcome == "KRB_BAD_KEYTAB" and PRINCIPAL in event.detail
    assert registrar.counts["KRB_BAD_KEYTAB"] == 1
