"""Authoritative answering rules for the Cozen names (sans-IO).

Theory of operation
-------------------
We are authoritative (RFC 1034 §4.3.2) for the forward zone ``domain`` and,
for each address of a host with ``reverse=True``, for exactly one reverse
name: that address's in-addr.arpa / ip6.arpa name (RFC 1035 §3.5, RFC 3596
§2.5) is its own zone apex. We do not claim the enclosing /24 or /64; we own
only our addresses. Every apex carries an SOA and an NS naming ``ns_name``.

:class:`Authority` is compiled once from plain :class:`AuthoritySettings` and
answers datagrams with :meth:`Authority.respond`:

* drop (None) when the header is unreadable or QR=1 (never answer a
  response, so two servers cannot reflect into a loop);
* NOTIMP for an opcode other than QUERY; FORMERR when the message does not
  decode, QDCOUNT is not 1 or the OPT rules of RFC 6891 §6.1.1 are broken;
  BADVERS (extended RCODE 16) for an EDNS version above 0 (§6.1.3); REFUSED
  for a class other than IN, a name outside our zones, a zone transfer, and
  every public name or anything below it (production owns those: never
  NXDOMAIN, never an address);
* inside our zones: the RRset asked for with AA=1; NODATA (NOERROR, SOA in
  authority) for an existing name or an empty non-terminal without that
  type; NXDOMAIN with the SOA otherwise. The negative SOA's TTL is
  min(TTL, MINIMUM) (RFC 2308 §3); ANY gets one RRset (RFC 8482 §4.2).

The question section echoes the query's labels exactly. Every name we emit
that shares a suffix with the question takes that suffix's labels from the
question, so compression points into the question and the answer's letter
case follows the query's (0x20 randomisation survives). This also makes the
bytes after the question independent of the query's letter case, which is
what the precomputed fast path (:mod:`protocols.dns.fastpath`) relies on.

EDNS (RFC 6891 §7): an OPT in the answer iff the query had one, advertising
1232 bytes and echoing DO (RFC 3225 §3); of the options only NSID (RFC 5001
§2.1) is answered, with ``identity``; the others are neither echoed nor
interpreted.

Server identity (RFC 4892 §2.2, the BIND convention it records): class CH
TXT questions for ``id.server.`` and ``hostname.bind.`` get ``identity``,
``version.server.`` and ``version.bind.`` get ``version`` (TXT, class CH,
TTL 0, AA=1); a name whose value is None, any other CH question, and other
types at those names are REFUSED, as hardened servers answer.

Glue: an NS answer lists in the additional section the A/AAAA records we
hold for its target (an in-zone name server), before any OPT, as BIND and
Knot do (RFC 1034 §4.3.2 step 3, the additional-section processing).

A UDP answer larger than max(512, requestor's payload), or 512 without EDNS,
is replaced by header + question (+ OPT) with TC=1 (RFC 2181 §9). Over TCP
the limit is 65535.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, replace

from protocols.dns.message import (
    HEADER_SIZE,
    PLAIN_UDP_LIMIT,
    AAAARdata,
    ARdata,
    Edns,
    Header,
    Message,
    Name,
    NameRdata,
    Opcode,
    Question,
    RawRdata,
    Rcode,
    Rdata,
    ResourceRecord,
    RRClass,
    RRType,
    SOARdata,
    decode_message,
    encode_message,
    find_edns,
    name_from_text,
    name_key,
)
from protocols.errors import MalformedMessage

OUR_UDP_PAYLOAD = 1232
_TCP_LIMIT = 65535
_ANY_PREFERENCE = (RRType.SOA, RRType.A, RRType.AAAA, RRType.PTR, RRType.NS)
_TRANSFERS = (RRType.AXFR, RRType.IXFR)


@dataclass(frozen=True, slots=True)
class HostRecords:
    fqdn: str
    ipv4: tuple[str, ...]
    ipv6: tuple[str, ...]
    reverse: bool = True


@dataclass(frozen=True, slots=True)
class AuthoritySettings:
    domain: str
    hosts: tuple[HostRecords, ...]
    public_names: tuple[str, ...]
    ns_name: str
    hostmaster: str
    serial: int
    ttl: int = 300
    negative_ttl: int = 60
    refresh: int = 3600
    retry: int = 600
    expire: int = 86400
    identity: str | None = None  # NSID, id.server. and hostname.bind.; None: not told
    version: str | None = None  # version.server. and version.bind.; None: REFUSED


@dataclass(frozen=True, slots=True)
class _Outcome:
    rcode: int
    aa: bool = False
    answers: tuple[ResourceRecord, ...] = ()
    authorities: tuple[ResourceRecord, ...] = ()
    additionals: tuple[ResourceRecord, ...] = ()


NSID_OPTION = 3  # RFC 5001 §2.3
_IDENTITY_NAMES = (b"id", b"server"), (b"hostname", b"bind")
_VERSION_NAMES = (b"version", b"server"), (b"version", b"bind")
_REFUSED = _Outcome(Rcode.REFUSED)

RRsets = dict[int, tuple[Rdata, ...]]


def reverse_name(address: str) -> Name:
    """The PTR owner of an IPv4 or IPv6 address (RFC 1035 §3.5, RFC 3596 §2.5).

    Raises:
        ValueError: ``address`` is not an IP address.
    """
    return name_from_text(ipaddress.ip_address(address).reverse_pointer)


def _key(text: str) -> Name:
    return name_key(name_from_text(text))


class Authority:
    """Answer tables compiled once from :class:`AuthoritySettings`.

    Raises (constructor):
        ValueError: an address or a name in the settings is invalid.
    """

    __slots__ = ("_apexes", "_names", "_public", "_rrsets", "settings")

    def __init__(self, settings: AuthoritySettings) -> None:
        self.settings = settings
        self._public = frozenset(_key(name) for name in settings.public_names)
        self._rrsets: dict[Name, RRsets] = {}
        self._apexes: set[Name] = {_key(settings.domain)}
        for host in settings.hosts:
            self._add_host(host)
        soa, ns = self._apex_records()
        for apex in self._apexes:
            self._add(apex, RRType.SOA, soa)
            self._add(apex, RRType.NS, ns)
        self._names = self._existing_names()

    # -------------------------------------------------------- compilation

    def _add(self, owner: Name, rtype: int, rdata: Rdata) -> None:
        rrsets = self._rrsets.setdefault(owner, {})
        if rdata not in rrsets.get(rtype, ()):
            rrsets[rtype] = (*rrsets.get(rtype, ()), rdata)

    def _add_host(self, host: HostRecords) -> None:
        owner = _key(host.fqdn)
        for text in host.ipv4:
            self._add(owner, RRType.A, ARdata(ipaddress.IPv4Address(text)))
        for text in host.ipv6:
            self._add(owner, RRType.AAAA, AAAARdata(ipaddress.IPv6Address(text)))
        if host.reverse:
            for text in (*host.ipv4, *host.ipv6):
                apex = reverse_name(text)
                self._apexes.add(apex)
                self._add(apex, RRType.PTR, NameRdata(owner))

    def _apex_records(self) -> tuple[SOARdata, NameRdata]:
        """The SOA and NS every apex carries (one pair, shared by all apexes)."""
        s = self.settings
        mname, rname = _key(s.ns_name), _key(s.hostmaster)
        soa = SOARdata(mname, rname, s.serial, s.refresh, s.retry, s.expire, s.negative_ttl)
        return soa, NameRdata(mname)

    def _existing_names(self) -> frozenset[Name]:
        names: set[Name] = set()
        for owner in self._rrsets:
            apex = self._zone_of(owner)
            if apex is not None:
                names.update(owner[i:] for i in range(len(owner) - len(apex) + 1))
        return frozenset(names)

    def _zone_of(self, key: Name) -> Name | None:
        for index in range(len(key) + 1):
            if key[index:] in self._apexes:
                return key[index:]
        return None

    def _is_public(self, key: Name) -> bool:
        return any(key[index:] in self._public for index in range(len(key)))

    # -------------------------------------------------------- answering

    def respond(self, datagram: bytes, *, udp: bool) -> bytes | None:
        """The answer to one query datagram, or None to drop it.

        ``udp`` selects the size limit: max(512, EDNS payload) or 512 for
        UDP, 65535 for TCP (the caller adds the TCP length prefix).

        Raises:
            Nothing for any input; codec errors become FORMERR or a drop.
        """
        if len(datagram) < HEADER_SIZE:
            return None
        query = Header.from_flags(int.from_bytes(datagram[:2]), int.from_bytes(datagram[2:4]))
        if query.qr:
            return None
        if query.opcode != Opcode.QUERY:
            return self._encode(query, _Outcome(Rcode.NOTIMP), (), None, udp=udp)
        try:
            message = decode_message(datagram)
            edns = find_edns(message)
        except MalformedMessage as exc:
            if exc.answer_hint is None:
                return None
            return self._encode(query, _Outcome(Rcode.FORMERR), (), None, udp=udp)
        return self._answer(message, edns, udp=udp)

    def _answer(self, message: Message, edns: Edns | None, *, udp: bool) -> bytes:
        query, questions = message.header, message.questions
        if len(questions) != 1:
            return self._encode(query, _Outcome(Rcode.FORMERR), (), edns, udp=udp)
        if edns is not None and edns.version > 0:
            outcome = _Outcome(Rcode.BADVERS)
        elif questions[0].qclass == RRClass.CH:
            outcome = self._chaos(questions[0])
        elif questions[0].qclass != RRClass.IN:
            outcome = _REFUSED
        else:
            outcome = self._lookup(questions[0])
        return self._encode(query, outcome, questions, edns, self._nsid(edns), udp=udp)

    def _nsid(self, edns: Edns | None) -> bytes | None:
        """RFC 5001 §2.1: our identity when the query carried an NSID option."""
        if edns is None or self.settings.identity is None:
            return None
        if not any(code == NSID_OPTION for code, _ in edns.options):
            return None
        return self.settings.identity.encode()

    def _chaos(self, question: Question) -> _Outcome:
        """RFC 4892 §2.2: id.server./hostname.bind. and version.server./version.bind."""
        key = name_key(question.name)
        text = None
        if key in _IDENTITY_NAMES:
            text = self.settings.identity
        elif key in _VERSION_NAMES:
            text = self.settings.version
        if text is None or question.qtype not in (RRType.TXT, RRType.ANY):
            return _REFUSED
        record = ResourceRecord(question.name, RRType.TXT, RRClass.CH, 0, txt_rdata(text))
        return _Outcome(Rcode.NOERROR, True, (record,))

    def _lookup(self, question: Question) -> _Outcome:
        """The answer sections for one IN-class question."""
        key = name_key(question.name)
        apex = None if self._is_public(key) else self._zone_of(key)
        if apex is None or question.qtype in _TRANSFERS:
            return _REFUSED
        if key not in self._names:
            return self._negative(Rcode.NXDOMAIN, apex, question.name)
        rtype, rrset = self._select(self._rrsets.get(key, {}), question.qtype)
        if not rrset:
            return self._negative(Rcode.NOERROR, apex, question.name)
        ttl = self.settings.ttl
        answers = tuple(
            ResourceRecord(
                question.name, rtype, RRClass.IN, ttl, _rebase_rdata(rdata, question.name)
            )
            for rdata in rrset
        )
        glue = self._glue(rrset, question.name) if rtype == RRType.NS else ()
        return _Outcome(Rcode.NOERROR, True, answers, (), glue)

    def _glue(self, rrset: tuple[Rdata, ...], qname: Name) -> tuple[ResourceRecord, ...]:
        """A, then AAAA records of the NS targets we hold (the in-zone name server)."""
        glue = []
        for rdata in rrset:
            if not isinstance(rdata, NameRdata):
                continue
            owner = _rebase(rdata.target, qname)
            rrsets = self._rrsets.get(rdata.target, {})
            for rtype in (RRType.A, RRType.AAAA):
                ttl = self.settings.ttl
                glue += [
                    ResourceRecord(owner, rtype, RRClass.IN, ttl, r) for r in rrsets.get(rtype, ())
                ]
        return tuple(glue)

    @staticmethod
    def _select(rrsets: RRsets, qtype: int) -> tuple[int, tuple[Rdata, ...]]:
        if qtype != RRType.ANY:
            return qtype, rrsets.get(qtype, ())
        for rtype in _ANY_PREFERENCE:
            if rtype in rrsets:
                return rtype, rrsets[rtype]
        return qtype, ()

    def _negative(self, rcode: int, apex: Name, qname: Name) -> _Outcome:
        (soa,) = self._rrsets[apex][RRType.SOA]
        ttl = min(self.settings.ttl, self.settings.negative_ttl)
        owner = _rebase(apex, qname)
        record = ResourceRecord(owner, RRType.SOA, RRClass.IN, ttl, _rebase_rdata(soa, qname))
        return _Outcome(rcode, True, (), (record,))

    @staticmethod
    def _encode(
        query: Header,
        outcome: _Outcome,
        questions: tuple[Question, ...],
        edns: Edns | None,
        nsid: bytes | None = None,
        *,
        udp: bool,
    ) -> bytes:
        header = Header(
            query.id,
            qr=True,
            opcode=query.opcode,
            aa=outcome.aa,
            rd=query.rd,
            cd=query.cd,
            rcode=outcome.rcode & 0xF,
        )
        additionals = outcome.additionals
        if edns is not None:
            options = () if nsid is None else ((NSID_OPTION, nsid),)
            ours = Edns(OUR_UDP_PAYLOAD, ext_rcode=outcome.rcode >> 4, do=edns.do, options=options)
            additionals = (*additionals, ours.to_record())
        message = Message(header, questions, outcome.answers, outcome.authorities, additionals)
        return encode_message(message, max_size=_size_limit(edns, udp=udp))


def txt_rdata(text: str) -> RawRdata:
    """TXT RDATA (RFC 1035 §3.3.14): ``text`` as UTF-8 in character-strings of up to 255 bytes."""
    data = text.encode()
    chunks = [data[i : i + 255] for i in range(0, len(data), 255)] or [b""]
    return RawRdata(b"".join(bytes((len(chunk),)) + chunk for chunk in chunks))


def _size_limit(edns: Edns | None, *, udp: bool) -> int:
    if not udp:
        return _TCP_LIMIT
    if edns is None:
        return PLAIN_UDP_LIMIT
    return max(PLAIN_UDP_LIMIT, edns.payload)


def _rebase(name: Name, qname: Name) -> Name:
    """``name`` (lower case) with its suffix shared with ``qname`` taken from ``qname``."""
    common = 0
    for ours, theirs in zip(reversed(name), reversed(qname), strict=False):
        if ours != theirs.lower():
            break
        common += 1
    return name[: len(name) - common] + qname[len(qname) - common :]


def _rebase_rdata(rdata: Rdata, qname: Name) -> Rdata:
    if isinstance(rdata, NameRdata):
        return NameRdata(_rebase(rdata.target, qname))
    if isinstance(rdata, SOARdata):
        return replace(rdata, mname=_rebase(rdata.mname, qname), rname=_rebase(rdata.rname, qname))
    return rdata
