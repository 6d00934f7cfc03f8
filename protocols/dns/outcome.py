"""What a DNS reply says, as a (qtype, outcome) label for counting (sans-IO).

The daemon counts its DNS answers by query type and outcome (issue 13). The
fast path knows each stored reply's label when it builds the table, so it
counts with one dict increment; the general path asks :func:`classify` about
the reply it just built, which reads a few header bytes and walks the echoed
question (never compressed: RFC 1035 §4.1.2, the general path writes it
literally), a small fraction of the cost of building the reply.

Outcomes: ``answered`` (NOERROR with answers), ``nodata`` (NOERROR, none:
RFC 2308 §2.2), ``nxdomain``, ``refused``, ``formerr``, ``notimp``,
``badvers`` (extended RCODE 16 from our OPT, RFC 6891 §6.1.3), ``servfail``,
``other`` for any other RCODE, and ``dropped`` when there is no reply
(unreadable header, a response, a message too broken to answer). The query
type is the echoed question's; ``none`` when the reply echoes none (FORMERR,
NOTIMP, a drop), ``other`` for types outside :data:`QTYPE_NAMES`, so the
label set stays bounded whatever arrives.
"""

from __future__ import annotations

from protocols.dns.message import HEADER_SIZE, MAX_LABEL, Rcode, RRType

Label = tuple[str, str]
"""(qtype name, outcome)."""

CountKey = tuple[str, str, str]
"""(path, qtype name, outcome); path is ``fast`` (the precomputed table) or ``general``."""

Counts = dict[CountKey, list[int]]
"""Answers (and drops) per :data:`CountKey`, each a one-item list incremented in place
(so a repeat's count costs one lookup, see :mod:`protocols.dns.fastpath`); owned by
the daemon and kept across reloads."""


def add(counts: Counts, key: CountKey) -> list[int]:
    """Count one answer under ``key``; the key's cell, for a caller to keep."""
    cell = counts.get(key)
    if cell is None:
        cell = counts[key] = [0]
    cell[0] += 1
    return cell


QTYPE_NAMES = {int(t): t.name for t in RRType} | {64: "SVCB", 65: "HTTPS"}
_OUTCOMES = {
    int(Rcode.FORMERR): "formerr",
    int(Rcode.SERVFAIL): "servfail",
    int(Rcode.NXDOMAIN): "nxdomain",
    int(Rcode.NOTIMP): "notimp",
    int(Rcode.REFUSED): "refused",
    int(Rcode.BADVERS): "badvers",
}
DROPPED: Label = ("none", "dropped")
_OPT_TAIL = 11  # an OPT without options: root, TYPE, CLASS, TTL, RDLENGTH


def classify(reply: bytes | None) -> Label:
    """The (qtype, outcome) label of one reply of ours (None: the query was dropped).

    Raises:
        Nothing for any input: a reply too short to read is labelled as dropped.
    """
    if reply is None or len(reply) < HEADER_SIZE:
        return DROPPED
    rcode = reply[3] & 0xF
    if (reply[10] or reply[11]) and reply[-_OPT_TAIL:-8] == b"\x00\x00\x29":
        rcode |= reply[-6] << 4  # our OPT is last and carries no options
    if rcode == 0:
        outcome = "answered" if reply[6] or reply[7] else "nodata"
    else:
        outcome = _OUTCOMES.get(rcode, "other")
    return _qtype(reply), outcome


def _qtype(reply: bytes) -> str:
    """The echoed question's type: its name is written out, never compressed."""
    if reply[4] or reply[5] != 1:
        return "none"
    offset = HEADER_SIZE
    try:
        length = reply[offset]
        while length:
            if length > MAX_LABEL:
                return "none"
            offset += length + 1
            length = reply[offset]
        return QTYPE_NAMES.get(reply[offset + 1] << 8 | reply[offset + 2], "other")
    except IndexError:  # cut short: not a reply of ours
        return "none"
