"""DNS over TCP framing for one connection (RFC 1035 §4.2.2, RFC 7766 §6-§8).

Every message on the stream carries a 2-byte big-endian length prefix. A
connection may pipeline several queries (RFC 7766 §6.2.1.1), and a query may
arrive split across any number of segments, so the decoder keeps an offset
into one buffer and answers the complete messages it holds, in order.

A message the answerer declines (unreadable header, a response sent to us)
ends the connection: on a stream there is no way to skip what we cannot
trust. A zero-length message is malformed for the same reason.

Cost. One call answers at most :data:`MAX_BATCH` messages, so one segment of
thousands of tiny pipelined queries cannot hold the caller for longer than
that many answers (each bounded by the answerer). The rest stays buffered and
:attr:`DnsStream.pending` says so: the caller stops reading and calls
``receive_data(b"")`` again once it has let other work run, as a server that
pauses reading past its pipelining quota does (RFC 7766 §6.2.1.1 leaves the
degree of concurrency to the server).
"""

from __future__ import annotations

from collections.abc import Callable

Answerer = Callable[[bytes], bytes | None]

MAX_BATCH = 16
"""Messages answered by one :meth:`DnsStream.receive_data` call."""


class DnsStream:
    """Sans-IO session: ``receive_data(bytes) -> bytes`` plus ``closed`` and ``pending``."""

    __slots__ = ("_answer", "_buffer", "_offset", "closed")

    def __init__(self, answer: Answerer) -> None:
        self._answer = answer
        self._buffer = bytearray()
        self._offset = 0
        self.closed = False

    @property
    def pending(self) -> bool:
        """True when a complete message waits: call ``receive_data(b"")`` to answer it."""
        return not self.closed and self._message_end() is not None

    def receive_data(self, data: bytes) -> bytes:
        """Feed bytes from the peer; return the framed answers to send.

        Answers at most :data:`MAX_BATCH` messages; see :attr:`pending`.

        Raises:
            Nothing of its own; whatever the answerer raises.
        """
        if self.closed:
            return b""
        self._buffer += data
        out = bytearray()
        for _ in range(MAX_BATCH):
            message = self._next_message()
            if message is None:
                break
            reply = self._answer(message)
            if reply is None:
                self.closed = True
                break
            out += len(reply).to_bytes(2, "big") + reply
        if self._offset and not self.pending:
            del self._buffer[: self._offset]  # keep memory bounded by one partial message
            self._offset = 0
        return bytes(out)

    def _message_end(self) -> int | None:
        """End offset of the next complete message (0 for a zero length), or None."""
        buffer, start = self._buffer, self._offset
        if len(buffer) - start < 2:
            return None
        length = (buffer[start] << 8) | buffer[start + 1]
        if length == 0:
            return 0
        end = start + 2 + length
        return end if end <= len(buffer) else None  # the rest may still be in flight

    def _next_message(self) -> bytes | None:
        end = self._message_end()
        if end is None:
            return None
        if end == 0:
            self.closed = True
            return None
        start, self._offset = self._offset, end
        return bytes(self._buffer[start + 2 : end])
