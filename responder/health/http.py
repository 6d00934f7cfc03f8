"""One HTTP/1.1 server connection through h11 (sans-IO): bytes in, response bytes out.

:class:`HttpSession` fits the :class:`~responder.net.tcp.TcpListener` session
contract (``receive_data(bytes) -> bytes`` and ``closed``), so the health
endpoint inherits the listener's connection cap and idle timeout.

h11 does the parsing and framing (RFC 9112): requests split over segments,
bare-LF line endings (accepted, as h11 accepts them), keep-alive and
pipelining (one request at a time: the next is parsed only once the previous
response is out), and HEAD, whose response carries the Content-Length the GET
would have but no body (RFC 9110 §9.3.2). A request head larger than
:data:`MAX_REQUEST` bytes is answered 431, any other malformed request 400, both
then closed. Only GET and HEAD are served (405 otherwise). Connections are
kept alive until the client closes, asks ``Connection: close``, or idles past
the listener's timeout.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from urllib.parse import parse_qs

import h11

MAX_REQUEST = 8192  # bytes of request line and headers
SERVER = b"cozen-responder"


@dataclass(frozen=True, slots=True)
class Request:
    method: str  # GET or HEAD
    path: str
    query: dict[str, list[str]]


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"
    headers: tuple[tuple[str, str], ...] = ()


Handler = Callable[[Request], Response]


def text(status: int, body: str) -> Response:
    """A plain-text response."""
    return Response(status, body.encode())


class HttpSession:
    """One connection's HTTP/1.1 state: h11 parses, ``handler`` answers each request."""

    def __init__(self, handler: Handler, max_request: int = MAX_REQUEST) -> None:
        self._handler = handler
        self._conn = h11.Connection(h11.SERVER, max_incomplete_event_size=max_request)
        self._request: h11.Request | None = None
        self.closed = False

    def receive_data(self, data: bytes) -> bytes:
        """Feed received bytes; return what to send (responses to every complete request).

        Raises:
            Nothing for hostile input: malformed requests become a 400/431 and ``closed``.
        """
        if self.closed:
            return b""
        self._conn.receive_data(data)
        out: list[bytes] = []
        while not self.closed:
            try:
                event = self._conn.next_event()
            except h11.RemoteProtocolError as exc:
                out.append(self._refuse(exc.error_status_hint))
                break
            if event is h11.NEED_DATA or event is h11.PAUSED:
                break
            out.append(self._on_event(event))
        return b"".join(out)

    def _on_event(self, event: object) -> bytes:
        if isinstance(event, h11.Request):
            self._request = event
        elif isinstance(event, h11.EndOfMessage) and self._request is not None:
            reply = self._respond(self._request)
            self._request = None
            self._next_cycle()
            return reply
        elif isinstance(event, h11.ConnectionClosed):
            self.closed = True
        return b""  # h11.Data: a request body, ignored

    def _next_cycle(self) -> None:
        if self._conn.our_state is h11.DONE and self._conn.their_state is h11.DONE:
            self._conn.start_next_cycle()
        else:  # MUST_CLOSE (HTTP/1.0, Connection: close) or an unread body
            self.closed = True

    def _respond(self, request: h11.Request) -> bytes:
        method = request.method.decode("ascii", "replace")
        if method not in ("GET", "HEAD"):
            response = Response(405, b"method not allowed\n", headers=(("Allow", "GET, HEAD"),))
        else:
            target = request.target.decode("ascii", "replace")
            path, _, query = target.partition("?")
            response = self._handler(Request(method, path, parse_qs(query, True)))
        return self._send(response, head=method == "HEAD")

    def _send(self, response: Response, *, head: bool) -> bytes:
        headers = [
            ("Content-Type", response.content_type),
            ("Content-Length", str(len(response.body))),
            ("Cache-Control", "no-store"),
            ("Server", SERVER.decode()),
            *response.headers,
        ]
        out = self._conn.send(_head(response.status, headers)) or b""
        if not head:
            out += self._conn.send(h11.Data(data=response.body)) or b""
        return out + (self._conn.send(h11.EndOfMessage()) or b"")

    def _refuse(self, status: int) -> bytes:
        """Answer a request h11 could not parse, if a response can still be sent; close."""
        self.closed = True
        body = f"{status} {_phrase(status).decode().lower() or 'error'}\n".encode()
        headers = [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))]
        headers.append(("Connection", "close"))
        try:
            head = self._conn.send(_head(status, headers)) or b""
            return head + (self._conn.send(h11.Data(data=body)) or b"")
        except h11.LocalProtocolError:  # mid-response or before a request line could start
            return b""


def _phrase(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode()
    except ValueError:
        return b""


def _head(status: int, headers: list[tuple[str, str]]) -> h11.Response:
    return h11.Response(status_code=status, headers=headers, reason=_phrase(status))
