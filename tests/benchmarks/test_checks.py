"""The benchmark's answer check: a lost datagram is asked again, not called unanswered."""

from __future__ import annotations

import socket
import threading

from benchmarks import servers


def test_check_asks_again_after_a_lost_reply():
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))
    server.settimeout(5.0)
    seen: list[bytes] = []

    def drop_the_first_then_echo() -> None:
        for _ in range(2):
            data, source = server.recvfrom(2048)
            seen.append(data)
            if len(seen) == 2:
                server.sendto(b"reply:" + data, source)

    worker = threading.Thread(target=drop_the_first_then_echo)
    worker.start()
    try:
        reply = servers.patient_exchange(b"question", server.getsockname())
    finally:
        worker.join(10.0)
        server.close()
    assert seen == [b"question", b"question"]
    assert reply == b"reply:question"


def test_check_gives_up_after_its_bounded_waits():
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    try:
        assert servers.patient_exchange(b"question", silent.getsockname()) is None
        received = 0
        silent.setblocking(False)
        for _ in range(2 * len(servers.CHECK_WAITS)):
            try:
                silent.recv(2048)
            except BlockingIOError:
                break
            received += 1
        assert received == len(servers.CHECK_WAITS)
    finally:
        silent.close()
