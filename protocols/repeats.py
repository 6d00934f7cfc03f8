"""The memo of exact repeats that the fast paths share (sans-IO).

Clients repeat the same query bytes with a new 2-byte ID (DNS, NBNS). A
fast path that answered a datagram may remember the reply for the rest of
the datagram: ``memo[datagram[2:]] = reply[2:]``. The fast path then serves a
repeat with one dict lookup, and the daemon's compiled UDP loop
(responder/net/_udploop.c) serves it without entering Python; that loop only
reads the memo.

The memo is cleared whole when full, so a flood of distinct queries costs
one failed lookup each and the memo never grows past :data:`MEMO_LIMIT`.
"""

from __future__ import annotations

ID_SIZE = 2
MEMO_LIMIT = 4096  # entries per memo


def recall(memo: dict[bytes, bytes], datagram: bytes) -> bytes | None:
    """The remembered reply to ``datagram``, with its ID, or None."""
    tail = memo.get(datagram[ID_SIZE:])
    return None if tail is None else datagram[:ID_SIZE] + tail


def remember(memo: dict[bytes, bytes], datagram: bytes, reply: bytes) -> None:
    """Remember ``reply`` (which echoes ``datagram``'s ID) for repeats of ``datagram``."""
    if len(memo) >= MEMO_LIMIT:
        memo.clear()
    memo[datagram[ID_SIZE:]] = reply[ID_SIZE:]
