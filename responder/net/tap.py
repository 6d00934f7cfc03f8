"""The listeners' tap: where every datagram and stream payload is reported while recording.

:data:`current` is None unless ``run --pcap`` (or ``[capture] file``) set a
recorder (:mod:`responder.capture`). Listeners read it at each wake-up and
at each connection, so nothing is paid for it while it is None. A tap must
not block and must not raise; it is called on the event loop.

While a tap is set, UDP listeners drain with the Python loop (never the
compiled one), so the answers the compiled loop would give from its repeats
without Python go through the handler's own fast path and are reported too.
"""

from __future__ import annotations

from typing import Protocol

Address = tuple[str, int]


class Tap(Protocol):
    def datagram(self, source: Address, destination: Address, data: bytes) -> None:
        """A UDP datagram received or sent (by the listener, or unsolicited)."""

    def stream_open(self, key: object, client: Address, server: Address) -> None:
        """A TCP connection accepted; ``key`` names it in the calls that follow."""

    def stream_data(self, key: object, sender: Address, data: bytes) -> None:
        """Bytes received from the client or written to it (``sender`` says which)."""

    def stream_close(self, key: object, closer: Address, *, reset: bool = False) -> None:
        """The connection ended; ``closer`` closed it first (``reset``: with RST)."""

    def reopen(self) -> None:
        """Close and reopen the output (SIGHUP after logrotate)."""

    def status(self) -> dict[str, object]:
        """Counters for /status and /metrics (``written``, ``dropped``, ...)."""


class CaptureUnwritable(OSError):
    """The capture file cannot be created; the message names it and why."""


current: Tap | None = None
