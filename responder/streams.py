"""The standard streams and the log: closed, broken or full, never a traceback.

A well-kept Unix tool survives whatever its caller did with fds 0, 1 and 2:

- **Closed** (``>&-``, ``2>&-``): Python sets ``sys.stdout``/``sys.stderr`` to
  None, and the next socket the daemon opens takes the free number, where a
  stray write (a C library, a fatal error report) would land in a client's
  connection. :func:`reopen_closed` puts /dev/null there before anything else.
- **Broken** (``check | head -1``: the reader has gone, EPIPE):
  :func:`die_of_sigpipe` ends the process the way coreutils end, killed by
  SIGPIPE (status 141 in a shell), with nothing printed.
- **Full** (a full disk under the log, ``2>/dev/full``): a log line that cannot
  be written is counted (:func:`log_write_errors`, reported in ``/status``) and
  dropped, and the daemon keeps serving. logging's own fallback would print a
  traceback about it to the very stream that just failed.

After a failed write, :func:`discard` points the stream at /dev/null, so the
interpreter's final flush neither fails again (which prints "Exception
ignored" and makes the exit status 120) nor writes half a line late.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import sys
from typing import Literal, NoReturn, TextIO

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

StreamName = Literal["stdout", "stderr"]


def reopen_closed() -> None:
    """Put /dev/null on every closed standard fd; a closed stderr also gets a /dev/null stream.

    stdout stays None when it was closed: ``check`` reports that it cannot
    write its output (as coreutils do), and ``run`` discards its description.
    """
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)
            if null != fd:
                os.dup2(null, fd)  # inheritable, as a standard fd should be
                os.close(null)
            else:
                os.set_inheritable(fd, True)
    if sys.stderr is None:  # print(file=None) would fall back to stdout
        sys.stderr = _devnull_stream()


def emit(text: str) -> None:
    """Print ``text`` and a newline to stdout, flushed.

    Raises:
        OSError: stdout is closed (EBADF), full, or its reader has gone (BrokenPipeError).
    """
    if sys.stdout is None:
        raise OSError(errno.EBADF, os.strerror(errno.EBADF))
    print(text, file=sys.stdout, flush=True)


def error(message: str) -> None:
    """``cozen-responder: message`` on stderr; if even that fails, nothing."""
    try:
        print(f"cozen-responder: {message}", file=sys.stderr, flush=True)
    except OSError:
        discard("stderr")


def die_of_sigpipe() -> NoReturn:
    """End silently as coreutils do when their reader has gone: killed by SIGPIPE."""
    discard("stdout")
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # Python ignores it, to raise EPIPE instead
    os.kill(os.getpid(), signal.SIGPIPE)  # delivered before kill() returns
    sys.exit(128 + signal.SIGPIPE)  # the shell's number for it, should SIGPIPE be blocked


def discard(name: StreamName) -> None:
    """From now on ``sys.<name>``, and whatever is still buffered for it, goes to /dev/null."""
    stream = getattr(sys, name)
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):  # None, or not a file at all
        setattr(sys, name, _devnull_stream())
        return
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, fd)
    os.close(null)


def settle() -> None:
    """Flush stdout and stderr now, discarding a stream that cannot take what it holds."""
    names: tuple[StreamName, ...] = ("stdout", "stderr")
    for name in names:
        stream = getattr(sys, name)
        try:
            if stream is not None:
                stream.flush()
        except OSError:
            discard(name)


class _CountingHandler(logging.StreamHandler[TextIO]):
    """Writes log records to a stream; a record it cannot write is counted, not reported."""

    failures = 0  # per process: each worker counts its own

    def handleError(self, record: logging.LogRecord) -> None:
        type(self).failures += 1


def log_to_stderr(level: str, formatter: logging.Formatter | None = None) -> logging.Handler:
    """Log records at ``level`` and above to stderr, one line each; failed writes are counted.

    Returns the handler (``formatter``'s lines, :data:`LOG_FORMAT` by default).
    """
    # Any other handler (a library's) drops a failed record instead of printing a traceback.
    logging.raiseExceptions = False
    handler = _CountingHandler(sys.stderr if sys.stderr is not None else _devnull_stream())
    handler.setFormatter(formatter or logging.Formatter(LOG_FORMAT))
    logging.basicConfig(level=level.upper(), handlers=[handler])
    return handler


def log_write_errors() -> int:
    """How many log records this process could not write (disk full, reader gone, ...)."""
    return _CountingHandler.failures


def _devnull_stream() -> TextIO:
    return open(os.devnull, "w", encoding="utf-8")  # lives as long as the process
