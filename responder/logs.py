"""Logging set-up: text or JSON lines on stderr, floods summarised.

``run --log-format text`` writes ``TIME LEVEL LOGGER: MESSAGE``;
``--log-format json`` writes one JSON object per line with ``time`` (UTC,
RFC 3339, milliseconds), ``level``, ``logger`` and ``message``, plus every
field a log call passes with ``extra=`` (``address``, ``node``, ...) and
``exception`` when there is one. Writing goes through
:mod:`responder.streams`, so a closed or full stderr is counted, never a
traceback.

A flood (malformed packets, failed sends) must not become a flood of log
lines. :class:`RateLimit` lets through :data:`BURST` records per (logger,
message template) per :data:`WINDOW` seconds and counts the rest; when that
key's window has passed, one line says how many were left out:
``suppressed 9,812 similar messages in the last 10 s: udp %s: datagram lost: %s``.
The summary comes with the key's next record, or from :func:`summarise_floods`,
which the daemon runs every :data:`WINDOW` seconds. INFO records are never
held back: they mark what the operator did (start, reload, stop), not what
the network sent.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from responder import streams

BURST = 10  # records per key and window before the rest are counted instead
WINDOW = 10.0  # seconds
SUMMARY = "suppressed %s similar messages in the last %d s: %s"
FORMATS = ("text", "json")

# Every attribute a plain LogRecord has: anything else on a record came from extra=.
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, the extra= fields."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        entry: dict[str, object] = {
            "time": stamp.replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and key not in entry:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


@dataclass(slots=True)
class _Window:
    start: float
    count: int = 0
    suppressed: int = 0


Report = Callable[[str, str, int], None]


def _log_summary(logger: str, template: str, suppressed: int) -> None:
    logging.getLogger(logger).warning(SUMMARY, f"{suppressed:,}", WINDOW, template)


class RateLimit(logging.Filter):
    """At most ``burst`` records per (logger, template) per ``window`` seconds, then a count."""

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        report: Report = _log_summary,
        burst: int = BURST,
        window: float = WINDOW,
    ) -> None:
        super().__init__()
        self.clock, self.report, self.burst, self.window = clock, report, burst, window
        self._windows: dict[tuple[str, str], _Window] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.INFO or record.msg == SUMMARY:
            return True
        key, now = (record.name, str(record.msg)), self.clock()
        current = self._windows.get(key)
        if current is None or now - current.start >= self.window:
            if current is not None and current.suppressed:
                self.report(*key, current.suppressed)
            current = self._windows[key] = _Window(now)
        current.count += 1
        if current.count <= self.burst:
            return True
        current.suppressed += 1
        return False

    def flush(self) -> None:
        """Report (and forget) every key whose window has passed."""
        now = self.clock()
        for key, current in list(self._windows.items()):
            if now - current.start >= self.window:
                del self._windows[key]
                if current.suppressed:
                    self.report(*key, current.suppressed)


_limit = RateLimit()


def configure(level: str, log_format: str = "text") -> None:
    """Log at ``level`` and above to stderr, as text or JSON lines, floods summarised.

    Raises:
        ValueError: ``log_format`` is not one of :data:`FORMATS`.
    """
    if log_format not in FORMATS:
        raise ValueError(f"unknown log format {log_format!r}")
    formatter = JsonFormatter() if log_format == "json" else logging.Formatter(streams.LOG_FORMAT)
    handler = streams.log_to_stderr(level, formatter)
    handler.addFilter(_limit)


async def summarise_floods() -> None:
    """Report the floods whose window has passed, every :data:`WINDOW` seconds, until cancelled."""
    while True:
        await asyncio.sleep(WINDOW)
        _limit.flush()
