"""The repeats table that the fast paths share (sans-IO).

Clients repeat the same query bytes with a new 2-byte ID (DNS, NBNS). A
fast path that answered a datagram may remember the reply for the rest of
the datagram: ``repeats[datagram[2:]] = reply[2:]``. The fast path then serves
a repeat with one dict lookup, and the daemon's compiled UDP loop
(responder/net/_udploop.c) serves it without entering Python; that loop only
reads the table.

The table is cleared whole when full, so a flood of distinct queries costs
one failed lookup each and the table never grows past :data:`REPEATS_LIMIT`.
"""

from __future__ import annotations

Repeats = dict[bytes, bytes]
"""``datagram[2:] -> reply[2:]``: one per fast path (a DNS answer table, an NBNS node)."""

ID_SIZE = 2
REPEATS_LIMIT = 4096  # entries per table


def recall(repeats: Repeats, datagram: bytes) -> bytes | None:
    """The remembered reply to ``datagram``, with its ID, or None."""
    tail = repeats.get(datagram[ID_SIZE:])
    return None if tail is None else datagram[:ID_SIZE] + tail


def remember(repeats: Repeats, datagram: bytes, reply: bytes) -> None:
    """Remember ``reply`` (which echoes ``datagram``'s ID) for repeats of ``datagram``."""
    if len(repeats) >= REPEATS_LIMIT:
        repeats.clear()
    repeats[datagram[ID_SIZE:]] = reply[ID_SIZE:]
