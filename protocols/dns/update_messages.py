"""What registration sends and what the answers mean (RFC 2136, RFC 4703, RFC 8945; sans-IO).

The message half of :mod:`protocols.dns.update`: pure functions from a
:class:`Wanted` record set and an :class:`Observation` of the server to the
dnspython messages that fix the difference, and from answers and errors
to outcomes. dnspython builds, signs and verifies; its clock gives the TSIG
time signed (RFC 8945 §4.2), which is what makes BADTIME meaningful.

- :func:`build_queries` / :func:`observe`: one non-recursive query per owned
  type and DHCID at the owner (RFC 1035), read back into what the server holds.
- :func:`decide`: which UPDATE brings the server to the wanted data, by the
  conflict mode (the rules below); None when nothing differs.
- :func:`build_update`: the UPDATE with its prerequisites (RFC 2136 §2.4)
  and changes (§2.5), limited to the RRsets that differ:

  ======================== ================================================
  the server holds         UPDATE sent
  ======================== ================================================
  nothing at the name      ADD: "name is not in use" (§2.4.5) + our RRs +
                           our DHCID (RFC 4703 §5.3.1)
  our DHCID                REPLACE: "DHCID RRset is exactly ours" (§2.4.2),
                           then the differing RRsets deleted (§2.5.2) and
                           added back (RFC 4703 §5.3.2)
  another DHCID            check-exists-with-dhcid: TAKEOVER, "a DHCID
                           exists" (§2.4.1), ours replaces it; otherwise a
                           conflict
  no DHCID (static data)   a conflict: nothing is sent (no-check:
                           OVERWRITE, no prerequisite)
  a CNAME at the name      a conflict in every mode
  ======================== ================================================

  WITHDRAW (RFC 4703 §5.5) deletes exactly our RRs and our DHCID (§2.5.4)
  under "DHCID RRset is exactly ours", so a name someone took over is left
  alone. Reverse names follow the same rules with PTR in place of A/AAAA:
  RFC 4703 §5.4 allows PTR updates without a check, but a reverse name
  that someone else holds is theirs too.
- :class:`Signer`: what signs an UPDATE; :class:`HmacSigner` holds a TSIG
  key (RFC 8945), :class:`protocols.dns.gss_tsig.GssSigner` a GSS-TSIG
  security context (RFC 3645). The flow above is the same for both.
- :func:`outcome_of` / :func:`explain`: an exchange that raised (timeout,
  unreachable, the peer's TSIG errors of RFC 8945 §5.2, an unsigned or
  badly signed answer, §5.4) as an outcome name, and what it means.
"""

from __future__ import annotations

import base64
import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.tsig
import dns.update

from protocols.dns.ownership import RecordSet

Rdata = dns.rdata.Rdata
RdataType = dns.rdatatype.RdataType

TSIG_ALGORITHMS = {
    "hmac-sha256": dns.tsig.HMAC_SHA256,
    "hmac-sha512": dns.tsig.HMAC_SHA512,
    "hmac-sha384": dns.tsig.HMAC_SHA384,
    "hmac-sha1": dns.tsig.HMAC_SHA1,
    "hmac-md5": dns.tsig.HMAC_MD5,
}

PREREQUISITE_FAILED = frozenset(
    {dns.rcode.YXDOMAIN, dns.rcode.NXDOMAIN, dns.rcode.YXRRSET, dns.rcode.NXRRSET}
)
_ALIASES = frozenset({dns.rdatatype.CNAME, dns.rdatatype.DNAME})
_DHCID = dns.rdatatype.DHCID


class ConflictMode(enum.Enum):
    CHECK_WITH_DHCID = "check-with-dhcid"  # RFC 4703: only a name carrying our DHCID
    CHECK_EXISTS_WITH_DHCID = "check-exists-with-dhcid"  # any name carrying a DHCID
    NO_CHECK = "no-check"  # overwrite whatever is there (labs)


class Step(enum.Enum):
    QUERY = "query"
    ADD = "add"
    REPLACE = "replace"
    TAKEOVER = "takeover"
    OVERWRITE = "overwrite"
    WITHDRAW = "withdraw"
    CONFLICT = "conflict"  # a verdict of decide(): nothing may be sent


@dataclass(frozen=True, slots=True)
class Observation:
    """What the server holds at an owner for the types looked at."""

    exists: bool  # False: every answer was NXDOMAIN
    rrsets: dict[RdataType, tuple[int, frozenset[Rdata]]]  # rdtype -> (ttl, rdatas)
    aliases: tuple[str, ...] = ()  # CNAME/DNAME found at the owner

    def held(self, rdtype: RdataType) -> frozenset[Rdata]:
        return self.rrsets.get(rdtype, (0, frozenset()))[1]

    def describe(self) -> str:
        """The data, for a conflict line: ``A 10.0.0.9; no DHCID``."""
        if not self.exists:
            return "nothing (NXDOMAIN)"
        parts = list(self.aliases)
        for rdtype, (_, rdatas) in sorted(self.rrsets.items()):
            name = dns.rdatatype.to_text(rdtype)
            parts += sorted(f"{name} {rdata_text(rd)}" for rd in rdatas)
        if dns.rdatatype.DHCID not in self.rrsets:
            parts.append("no DHCID")
        return "; ".join(parts) if parts else "no A/AAAA/PTR/DHCID data"


def rdata_text(rdata: Rdata) -> str:
    """Presentation text on one line (a DHCID's base64 unchunked)."""
    text = rdata.to_text()
    return text.replace(" ", "") if rdata.rdtype == _DHCID else text


@dataclass(frozen=True, slots=True)
class Wanted:
    """A record set as dnspython objects: the RRsets that must hold exactly these RRs."""

    record_set: RecordSet
    zone: dns.name.Name
    owner: dns.name.Name
    dhcid: Rdata
    rrsets: dict[RdataType, frozenset[Rdata]]  # every owned type and DHCID -> wanted RRs

    @property
    def ttl(self) -> int:
        return self.record_set.ttl

    @property
    def rdatas(self) -> list[Rdata]:
        return [rd for rdtype, rds in self.rrsets.items() if rdtype != _DHCID for rd in rds]


def wanted(record_set: RecordSet) -> Wanted:
    """``record_set`` as dnspython names and RDATA.

    Raises:
        dns.exception.SyntaxError: a record's text is not valid for its type.
    """
    dhcid = dns.rdata.from_text(
        dns.rdataclass.IN, _DHCID, base64.b64encode(record_set.dhcid).decode()
    )
    rrsets: dict[RdataType, frozenset[Rdata]] = {}
    for type_name in record_set.types:
        rdtype = dns.rdatatype.from_text(type_name)
        rrsets[rdtype] = frozenset(
            dns.rdata.from_text(dns.rdataclass.IN, rdtype, text)
            for kind, text in record_set.records
            if kind == type_name
        )
    rrsets[_DHCID] = frozenset({dhcid})
    return Wanted(
        record_set,
        dns.name.from_text(record_set.zone),
        dns.name.from_text(record_set.owner),
        dhcid,
        rrsets,
    )


def make_key(name: str, secret: bytes, algorithm: str) -> dns.tsig.Key:
    """A TSIG key (RFC 8945 §4); ``algorithm`` is one of :data:`TSIG_ALGORITHMS`.

    Raises:
        KeyError: the algorithm is not one of :data:`TSIG_ALGORITHMS`.
    """
    return dns.tsig.Key(name, secret, TSIG_ALGORITHMS[algorithm])


class Signer(Protocol):
    """Signs the UPDATEs of one registration (the queries go unsigned)."""

    def sign(self, message: dns.message.Message) -> None:
        """Attach the TSIG the message is to carry when written."""

    def label(self) -> tuple[str, str]:
        """(key or principal name, algorithm): what :func:`explain` names."""


@dataclass(frozen=True, slots=True)
class HmacSigner:
    """An HMAC TSIG key (RFC 8945 §4) shared with the server."""

    key: dns.tsig.Key

    def sign(self, message: dns.message.Message) -> None:
        message.use_tsig(self.key)

    def label(self) -> tuple[str, str]:
        return self.key.name.to_text(), self.key.algorithm.to_text(omit_final_dot=True)


# ---------------------------------------------------------------- messages


def build_queries(want: Wanted) -> tuple[dns.message.Message, ...]:
    """One non-recursive query per owned type and DHCID at the owner, in ``rrsets`` order."""
    queries = []
    for rdtype in want.rrsets:
        query = dns.message.make_query(want.owner, rdtype)
        query.flags &= ~dns.flags.RD
        queries.append(query)
    return tuple(queries)


def observe(want: Wanted, responses: Sequence[dns.message.Message]) -> Observation:
    """What the answers to :func:`build_queries` say the server holds.

    Raises:
        ValueError: the number of answers is not the number of queries.
    """
    if len(responses) != len(want.rrsets):
        raise ValueError(f"{len(responses)} answers for {len(want.rrsets)} queries")
    exists = not all(r.rcode() == dns.rcode.NXDOMAIN for r in responses)
    rrsets: dict[RdataType, tuple[int, frozenset[Rdata]]] = {}
    aliases: set[str] = set()
    for rdtype, response in zip(want.rrsets, responses, strict=True):
        for rrset in response.answer:
            if rrset.name != want.owner:
                continue
            if rrset.rdtype == rdtype:
                rrsets[rdtype] = (rrset.ttl, frozenset(rrset))
            elif rrset.rdtype in _ALIASES:
                kind = dns.rdatatype.to_text(rrset.rdtype)
                aliases.update(f"{kind} {rdata_text(rd)}" for rd in rrset)
    return Observation(exists, rrsets, tuple(sorted(aliases)))


def differing_types(want: Wanted, seen: Observation | None) -> list[RdataType]:
    """The owned types (and DHCID) whose RRset or TTL differs; all of them when unknown."""
    if seen is None:
        return list(want.rrsets)
    return [t for t, rds in want.rrsets.items() if not _same(seen, t, rds, want.ttl)]


def _same(seen: Observation, rdtype: RdataType, rdatas: frozenset[Rdata], ttl: int) -> bool:
    held = seen.rrsets.get(rdtype)
    if held is None:
        return not rdatas
    return held[1] == rdatas and held[0] == ttl


def decide(want: Wanted, seen: Observation, mode: ConflictMode) -> Step | None:
    """The UPDATE that brings the server to ``want`` (None: nothing differs)."""
    if seen.aliases:
        return Step.CONFLICT
    if not differing_types(want, seen):
        return None
    if not seen.exists:
        return Step.ADD
    if mode is ConflictMode.NO_CHECK:
        return Step.OVERWRITE
    dhcids = seen.held(_DHCID)
    if dhcids == frozenset({want.dhcid}):
        return Step.REPLACE
    if mode is ConflictMode.CHECK_EXISTS_WITH_DHCID and dhcids:
        return Step.TAKEOVER
    return Step.CONFLICT


def next_rung(mode: ConflictMode) -> Step:
    """What follows an ADD refused with YXDOMAIN (RFC 4703 §5.3.2)."""
    return {
        ConflictMode.CHECK_WITH_DHCID: Step.REPLACE,
        ConflictMode.CHECK_EXISTS_WITH_DHCID: Step.TAKEOVER,
        ConflictMode.NO_CHECK: Step.OVERWRITE,
    }[mode]


def build_update(
    step: Step, want: Wanted, seen: Observation | None, signer: Signer | None
) -> dns.update.UpdateMessage:
    """The UPDATE of ``step`` for ``want``, signed by ``signer``; see the module's table.

    ``seen`` limits REPLACE, TAKEOVER and OVERWRITE to the RRsets that differ
    (None: every owned RRset is rewritten).

    Raises:
        ValueError: ``step`` is QUERY or CONFLICT, which send no UPDATE.
    """
    update = dns.update.UpdateMessage(want.zone)
    if signer is not None:
        signer.sign(update)
    owner = want.owner
    if step is Step.ADD:
        update.absent(owner)  # RFC 2136 §2.4.5: name is not in use
        for rdatas in want.rrsets.values():
            if rdatas:
                update.add(owner, want.ttl, *_ordered(rdatas))
    elif step is Step.WITHDRAW:
        update.present(owner, want.dhcid)  # §2.4.2: the DHCID RRset is exactly ours
        for rdata in [*_ordered(want.rdatas), want.dhcid]:
            update.delete(owner, rdata)  # §2.5.4: delete an RR from an RRset
    elif step in (Step.REPLACE, Step.TAKEOVER, Step.OVERWRITE):
        if step is Step.REPLACE:
            update.present(owner, want.dhcid)
        elif step is Step.TAKEOVER:
            update.present(owner, "DHCID")  # §2.4.1: a DHCID RRset exists
        _rewrite(update, want, seen, everything=step is not Step.REPLACE)
    else:
        raise ValueError(f"{step.value} sends no UPDATE")
    return update


def _rewrite(
    update: dns.update.UpdateMessage, want: Wanted, seen: Observation | None, everything: bool
) -> None:
    types = differing_types(want, seen)
    if everything and _DHCID not in types:
        types.append(_DHCID)  # taking over: our DHCID replaces whatever was there
    for rdtype in types:
        update.delete(want.owner, rdtype)  # RFC 2136 §2.5.2: delete an RRset
        rdatas = want.rrsets[rdtype]
        if rdatas:
            update.add(want.owner, want.ttl, *_ordered(rdatas))


def _ordered(rdatas: Iterable[Rdata]) -> list[Rdata]:
    return sorted(rdatas, key=lambda rd: rd.to_digestable())


# ---------------------------------------------------------------- outcomes

_EXPLAIN = {
    "REFUSED": "the server refused it: does its update-policy / ACL grant {key} "
    "these names and types?",
    "NOTAUTH": "the server is not authoritative for the zone, or refused {key}",
    "NOTZONE": "the name is not in the zone",
    "SERVFAIL": "the server failed to process it (see the server's log)",
    "FORMERR": "the server could not parse it",
    "NOTIMP": "the server does not implement DNS UPDATE",
    "BADKEY": "the server does not know key {key} ({algorithm})",
    "BADSIG": "the server could not verify our signature: is the secret of key {key} right?",
    "BADTIME": "the server refused our signature's time: this host's clock and the server's "
    "differ by more than the fudge (300 s)",
    "BADTRUNC": "the server refused our truncated signature",
    "TSIG_ERROR": "the server reported a TSIG error",
    "TIMEOUT": "no answer in time",
    "UNREACHABLE": "the server cannot be reached",
    "UNSIGNED_RESPONSE": "the server's answer carries no TSIG, so it is not trusted",
    "BAD_RESPONSE_SIGNATURE": "the server's answer failed TSIG verification, so it is not trusted",
    "MALFORMED_RESPONSE": "the server's answer could not be used",
    "NO_SERVER": "the zone's primary server could not be found",
    "FAILED": "the exchange failed",
    # GSS-TSIG (RFC 3645): {key} is the principal
    "KRB_NO_CREDENTIALS": "no Kerberos credentials for {key}: set keytab, or kinit into the "
    "credential cache (KRB5CCNAME)",
    "KRB_BAD_KEYTAB": "the KDC refused the key of {key}: the keytab is wrong or out of date "
    "(its key version)",
    "KRB_UNKNOWN_PRINCIPAL": "the KDC does not know the principal {key}",
    "KRB_UNKNOWN_SERVER": "the KDC does not know the DNS server's principal (server_principal)",
    "KRB_CLOCK_SKEW": "the clocks of this host and the KDC or the DNS server differ by more "
    "than Kerberos (5 min) or the signature's fudge allows",
    "KRB_KDC_UNREACHABLE": "no KDC of the realm of {key} could be reached",
    "KRB_EXPIRED": "the Kerberos ticket of {key} has expired",
    "KRB_FAILED": "Kerberos failed for {key}",
    "TKEY_REFUSED": "the server refused the GSS-TSIG negotiation (TKEY) of {key}",
    "GSS_UNAVAILABLE": "GSS-TSIG needs the Python GSSAPI binding: pip install cozen-responder[gss]",
}

TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (dns.exception.DNSException, OSError, EOFError)


def outcome_of(exc: BaseException) -> str:
    """The outcome name of an exchange that raised ``exc`` (one of :data:`TRANSPORT_ERRORS`)."""
    if isinstance(exc, dns.tsig.PeerError):
        return _PEER_ERRORS.get(type(exc), "TSIG_ERROR")
    if isinstance(exc, dns.tsig.BadSignature | dns.tsig.BadTime | dns.tsig.BadKey):
        return "BAD_RESPONSE_SIGNATURE"
    if isinstance(exc, dns.tsig.BadAlgorithm | dns.message.UnknownTSIGKey):
        return "BAD_RESPONSE_SIGNATURE"
    if isinstance(exc, dns.exception.Timeout | TimeoutError):
        return "TIMEOUT"
    if isinstance(exc, dns.exception.FormError):
        return "UNSIGNED_RESPONSE" if "requires a TSIG" in str(exc) else "MALFORMED_RESPONSE"
    if isinstance(exc, OSError | EOFError):
        return "UNREACHABLE"
    return "FAILED"


_PEER_ERRORS: dict[type[BaseException], str] = {
    dns.tsig.PeerBadKey: "BADKEY",
    dns.tsig.PeerBadSignature: "BADSIG",
    dns.tsig.PeerBadTime: "BADTIME",
    dns.tsig.PeerBadTruncation: "BADTRUNC",
}


def explain(outcome: str, signer: Signer | None) -> str:
    """One sentence on what ``outcome`` means and what to check."""
    text = _EXPLAIN.get(outcome, f"the server answered {outcome}")
    name, algorithm = signer.label() if signer is not None else ("(none)", "-")
    return text.format(key=name, algorithm=algorithm)


_STEP_DONE = {
    Step.ADD: "added",
    Step.REPLACE: "replaced",
    Step.TAKEOVER: "taken over",
    Step.OVERWRITE: "overwritten",
}


def describe_step(step: Step, want: Wanted, seen: Observation | None) -> str:
    """What an UPDATE of ``step`` did, for the log: ``added (A, DHCID)``."""
    types = ", ".join(dns.rdatatype.to_text(t) for t in differing_types(want, seen))
    return f"{_STEP_DONE.get(step, step.value)} ({types})"
