"""The h11 session behind the health endpoint: framing, HEAD, keep-alive, refusals."""

from __future__ import annotations

import h11

from responder.health.http import HttpSession, Request, Response, text


def echo(request: Request) -> Response:
    return text(200, f"{request.method} {request.path} {sorted(request.query)}\n")


def parse(data: bytes, method: bytes = b"GET") -> list[object]:
    """Decode a server's bytes with an h11 client: the response events."""
    client = h11.Connection(h11.CLIENT)
    client.send(h11.Request(method=method, target="/", headers=[("Host", "x")]))
    client.send(h11.EndOfMessage())
    client.receive_data(data)
    events = []
    while (event := client.next_event()) not in (h11.NEED_DATA, h11.PAUSED):
        events.append(event)
        if isinstance(event, h11.EndOfMessage):
            break
    return events


def test_get_answers_with_length_and_body():
    reply = HttpSession(echo).receive_data(b"GET /livez?verbose HTTP/1.1\r\nHost: x\r\n\r\n")
    response, data, _ = parse(reply)
    assert response.status_code == 200 and response.reason == b"OK"
    assert (b"content-length", b"23") in response.headers
    assert data.data == b"GET /livez ['verbose']\n"


def test_head_has_the_get_length_and_no_body():
    session = HttpSession(lambda request: text(200, "ok\n"))
    reply = session.receive_data(b"HEAD /livez HTTP/1.1\r\nHost: x\r\n\r\n")
    assert reply.endswith(b"\r\n\r\n")  # nothing after the head
    assert b"Content-Length: 3\r\n" in reply  # the length a GET's body would have
    response, end = parse(reply, b"HEAD")
    assert response.status_code == 200 and isinstance(end, h11.EndOfMessage)
    assert not session.closed


def test_lf_only_request_is_answered():
    reply = HttpSession(echo).receive_data(b"GET /readyz HTTP/1.1\nHost: x\n\n")
    assert reply.startswith(b"HTTP/1.1 200 OK\r\n")


def test_request_split_across_segments():
    session = HttpSession(echo)
    assert session.receive_data(b"GET /heal") == b""
    assert not session.closed
    assert session.receive_data(b"thz HTTP/1.1\r\nHost: x\r\n\r\n").endswith(b"GET /healthz []\n")


def test_keep_alive_answers_pipelined_requests_in_order():
    session = HttpSession(echo)
    two = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n"
    reply = session.receive_data(two)
    assert reply.count(b"HTTP/1.1 200 OK") == 2
    assert reply.index(b"GET /a") < reply.index(b"GET /b")
    assert not session.closed


def test_http10_and_connection_close_end_the_connection():
    session = HttpSession(echo)
    assert session.receive_data(b"GET / HTTP/1.0\r\n\r\n").startswith(b"HTTP/1.1 200")
    assert session.closed
    session = HttpSession(echo)
    session.receive_data(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert session.closed


def test_reject_other_methods_with_405():
    reply = HttpSession(echo).receive_data(
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
    )
    assert reply.startswith(b"HTTP/1.1 405 Method Not Allowed\r\n")
    assert b"Allow: GET, HEAD\r\n" in reply


def test_reject_garbage_with_400_and_close():
    session = HttpSession(echo)
    assert session.receive_data(b"garbage\r\n\r\n").startswith(b"HTTP/1.1 400 Bad Request")
    assert session.closed
    assert session.receive_data(b"GET / HTTP/1.1\r\n\r\n") == b""


def test_reject_oversized_head_with_431_and_close():
    session = HttpSession(echo)
    reply = session.receive_data(b"GET /" + b"a" * 9000)
    assert reply.startswith(b"HTTP/1.1 431 ") and session.closed
