"""systemd's notify protocol, spoken directly: one datagram per state change.

``Type=notify`` services tell the manager where they are by sending short
``KEY=VALUE`` lines as one datagram to the AF_UNIX socket named in
``$NOTIFY_SOCKET`` (sd_notify(3)); a name starting with ``@`` is in the
abstract namespace (its first byte on the wire is NUL). What the daemon says:

- ``READY=1`` once every listener is bound (and root is dropped);
- ``RELOADING=1`` with ``MONOTONIC_USEC=`` on SIGHUP, ``READY=1`` when the
  reload is done, applied or not;
- ``STOPPING=1`` on SIGTERM/SIGINT;
- ``WATCHDOG=1`` every half ``$WATCHDOG_USEC`` (when ``$WATCHDOG_PID`` is
  unset or ours), from a timer on the event loop: a loop that is stuck stops
  pinging, and systemd restarts the service (``WatchdogSec=``).

Without ``$NOTIFY_SOCKET`` every call is a no-op. The socket is connected
once, when the :class:`Notifier` is made (before root is dropped), so that
sending needs no permission on the socket's path later. A datagram that
cannot be sent is dropped: the manager's bookkeeping must never stop serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import Mapping


def _address(name: str) -> str | bytes:
    """The socket address for a ``$NOTIFY_SOCKET`` value (``@name``: abstract namespace)."""
    if name.startswith("@"):
        return b"\0" + name[1:].encode()
    return name


def watchdog_interval(env: Mapping[str, str], pid: int) -> float | None:
    """Seconds between ``WATCHDOG=1`` pings (half ``WATCHDOG_USEC``), or None for no watchdog.

    None also when ``WATCHDOG_PID`` names another process, or a value is not a number.
    """
    usec, owner = env.get("WATCHDOG_USEC", ""), env.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if owner and (not owner.isdigit() or int(owner) != pid):
        return None
    return int(usec) / 2 / 1_000_000


class Notifier:
    """Sends state to systemd, or nothing when the daemon was not started by it."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        self._sock: socket.socket | None = None
        self._watchdog: asyncio.TimerHandle | None = None
        self.interval = watchdog_interval(env, os.getpid())
        name = env.get("NOTIFY_SOCKET", "")
        if name.startswith(("/", "@")):
            self._connect(name)

    def _connect(self, name: str) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        try:
            sock.connect(_address(name))
        except OSError:
            sock.close()
            return
        self._sock = sock

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    def send(self, *lines: str) -> None:
        """Send ``lines`` as one datagram; a failure to send is ignored."""
        if self._sock is None:
            return
        with contextlib.suppress(OSError):
            self._sock.send("\n".join(lines).encode())

    def ready(self) -> None:
        self.send("READY=1")

    def reloading(self) -> None:
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self.send("RELOADING=1", f"MONOTONIC_USEC={usec}")

    def stopping(self) -> None:
        self.send("STOPPING=1")

    def start_watchdog(self, loop: asyncio.AbstractEventLoop) -> None:
        """Ping ``WATCHDOG=1`` every :attr:`interval` seconds from ``loop``, when asked to."""
        if self._sock is None or self.interval is None:
            return
        self.send("WATCHDOG=1")
        self._watchdog = loop.call_later(self.interval, self.start_watchdog, loop)

    def close(self) -> None:
        """Stop the watchdog pings and close the socket."""
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None
