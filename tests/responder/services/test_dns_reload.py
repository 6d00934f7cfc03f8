"""A reload of a 1,000-node config is quick and loses no query for unchanged nodes."""

from __future__ import annotations

import signal
import socket
import threading
import time

import dns.message
import dns.rcode

from tests.helpers import BASE_CONFIG

NODES = 1000
HEAD = BASE_CONFIG.split("[[node]]")[0]
DNS = ("127.0.0.10", 53)


def large_config(nodes: int, renamed: int | None = None) -> str:
    # One closed-loop client asks thousands of times a second: no rate limit here.
    lines = [HEAD, "[limits]", "responses_per_second = 0"]
    for i in range(nodes):
        name = f"SQL01-N{i}" if i != renamed else f"SQL01-R{i}"
        lines += [
            "[[node]]",
            f'cozen_name = "{name}"',
            f'management_ip = "127.0.{4 + i // 250}.{1 + i % 250}"',
        ]
    return "\n".join(lines) + "\n"


class Querier(threading.Thread):
    """Asks for unchanged names back to back until stopped; records every outcome."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.halt = threading.Event()
        self.answered = self.failed = 0
        self.slowest = 0.0

    def run(self) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(2.0)
            i = 0
            while not self.halt.is_set() and i < 100_000:
                name = f"sql01-n{500 + i % 400}.corp.example"
                query = dns.message.make_query(name, "A")
                started = time.monotonic()
                sock.sendto(query.to_wire(), DNS)
                try:
                    reply = dns.message.from_wire(sock.recv(2048))
                except (TimeoutError, dns.exception.DNSException):
                    self.failed += 1
                    continue
                self.slowest = max(self.slowest, time.monotonic() - started)
                good = reply.id == query.id and reply.rcode() == dns.rcode.NOERROR and reply.answer
                self.answered += bool(good)
                self.failed += not good
                i += 1


def test_reload_of_1000_nodes_answers_throughout(write_config, start_daemon):
    daemon = start_daemon(write_config(large_config(NODES)))
    querier = Querier()
    querier.start()
    try:
        time.sleep(0.2)
        daemon.config_path.write_text(large_config(NODES, renamed=3))
        hup = time.monotonic()
        daemon.signal(signal.SIGHUP)
        daemon.wait_for_log("reloaded", timeout=10)
        took = time.monotonic() - hup
        time.sleep(0.2)
    finally:
        querier.halt.set()
        querier.join(5)
    assert querier.failed == 0
    assert querier.answered > 100
    assert took < 1.5  # typically a few hundred ms; generous for a loaded test machine
    assert querier.slowest < 0.25  # the old answers kept being served between slices
