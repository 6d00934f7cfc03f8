"""DNS over TCP framing for one connection (RFC 1035 §4.2.2, RFC 7766 §6-§8).

Every message on the stream carries a 2-byte big-endian length prefix. A
connection may pipeline several queries, and a query may arrive split across
any number of segments, so the decoder keeps an offset into one buffer and
answers every complete message it holds, in order.

A message the answerer declines (unreadable header, a response sent to us)
ends the connection: on a stream there is no way to skip what we cannot
trust. A zero-length message is malformed for the same reason.
"""

from __future__ import annotations

from collections.abc import Callable

Answerer = Callable[[bytes], bytes | None]


class DnsStream:
    """Sans-IO session: ``receive_data(bytes) -> bytes`` plus ``closed``."""

    __slots__ = ("_answer", "_buffer", "_offset", "closed")

    def __init__(self, answer: Answerer) -> None:
        self._answer = answer
        self._buffer = bytearray()
        self._offset = 0
        self.closed = False

    def receive_data(self, data: bytes) -> bytes:
        """Feed bytes from the peer; return the framed answers to send."""
        if self.closed:
            return b""
        self._buffer += data
        out = bytearray()
        buffer = self._buffer
        while len(buffer) - self._offset >= 2:
            start = self._offset
            length = (buffer[start] << 8) | buffer[start + 1]
            if length == 0:
                self.closed = True
                break
            end = start + 2 + length
            if end > len(buffer):
                break  # the rest of this message is still in flight
            self._offset = end
            reply = self._answer(bytes(buffer[start + 2 : end]))
            if reply is None:
                self.closed = True
                break
            out += len(reply).to_bytes(2, "big") + reply
        if self._offset:
            del buffer[: self._offset]  # keep memory bounded by one partial message
            self._offset = 0
        return bytes(out)
