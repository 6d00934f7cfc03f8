"""A reload of a 1,000-node config loses no query and switches every answer at once.

How long the reload takes, and how long a query waits during it, is measured
by the benchmark (``benchmarks/extras.py``: reload under load), where the
machine is quiet and the figures are reported, not asserted. Here only the
correctness is checked, with bounds a slow machine cannot break: no query
lost or answered wrongly, and the renamed node is answered from the old table
until, at one point, it is answered from the new one, never from a mix.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from collections.abc import Callable

import dns.exception
import dns.message
import dns.rcode

from tests.helpers import BASE_CONFIG, PATIENCE

NODES = 1000
RENAMED = 3
HEAD = BASE_CONFIG.split("[[node]]")[0]
DNS = ("127.0.0.10", 53)
REPLY_WAIT = 10.0  # seconds without a reply on loopback: the query was lost
WARM_UP = 200  # queries answered before the SIGHUP
MAX_QUERIES = 100_000


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
    """Asks back to back until halted: names that stay, and every 4th query the renamed node.

    After :data:`WARM_UP` queries it sends the daemon SIGHUP itself and at once
    asks for the renamed node, so that question is in the socket before the
    reload can have finished. Each answer about the renamed node is classed
    "old" (SQL01-N3 exists, SQL01-R3 does not) or "new" (the reverse).
    """

    def __init__(self, daemon_pid: int) -> None:
        super().__init__(daemon=True)
        self.daemon_pid = daemon_pid
        self.halt = threading.Event()
        self.answered = 0  # names that stay, answered right
        self.failures: list[str] = []
        self.tables: list[str] = []  # "old" / "new", in order, from the SIGHUP on

    def run(self) -> None:
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.settimeout(REPLY_WAIT)
                self._ask(sock)
        except Exception as exc:  # reported by the test, not lost in the thread
            self.failures.append(f"querier crashed: {exc!r}")

    def _ask(self, sock: socket.socket) -> None:
        for i in range(MAX_QUERIES):
            if self.halt.is_set():
                return
            if i == WARM_UP:
                os.kill(self.daemon_pid, signal.SIGHUP)
            if i >= WARM_UP and (i - WARM_UP) % 4 == 0:
                self._probe(sock, f"sql01-{'nr'[i // 4 % 2]}{RENAMED}.corp.example")
            else:
                reply = self._exchange(sock, f"sql01-n{500 + i % 400}.corp.example")
                ok = reply is not None and reply.rcode() == dns.rcode.NOERROR and reply.answer
                self.answered += bool(ok)
                if reply is not None and not ok:
                    self.failures.append(f"query {i}: {reply}")

    def _probe(self, sock: socket.socket, name: str) -> None:
        reply = self._exchange(sock, name)
        if reply is None:
            return
        exists = {dns.rcode.NOERROR: True, dns.rcode.NXDOMAIN: False}.get(reply.rcode())
        if exists is None or exists != bool(reply.answer):
            self.failures.append(f"{name}: {reply}")
            return
        self.tables.append("old" if exists == name.startswith("sql01-n") else "new")

    def _exchange(self, sock: socket.socket, name: str) -> dns.message.Message | None:
        query = dns.message.make_query(name, "A")
        sock.sendto(query.to_wire(), DNS)
        try:
            reply = dns.message.from_wire(sock.recv(2048))
        except (TimeoutError, dns.exception.DNSException) as exc:
            self.failures.append(f"{name}: {exc!r}")
            return None
        if reply.id != query.id:
            self.failures.append(f"{name}: reply to another query")
            return None
        return reply

    def wait_for(self, done: Callable[[], bool]) -> None:
        deadline = time.monotonic() + PATIENCE
        for _ in range(int(PATIENCE / 0.05)):
            if done() or not self.is_alive() or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert done(), f"querier stuck after {self.answered} answers: {self.failures[:3]}"


def test_reload_of_1000_nodes_loses_no_query_and_switches_at_once(write_config, start_daemon):
    daemon = start_daemon(write_config(large_config(NODES)))
    daemon.config_path.write_text(large_config(NODES, renamed=RENAMED))
    querier = Querier(daemon.proc.pid)
    querier.start()
    try:
        daemon.wait_for_log("reloaded", timeout=PATIENCE)
        querier.wait_for(lambda: "new" in querier.tables)
        settled = querier.answered
        querier.wait_for(lambda: querier.answered > settled + 50)
    finally:
        querier.halt.set()
        querier.join(PATIENCE)
    assert querier.failures == []
    assert querier.answered > WARM_UP + 50
    # The question asked right after SIGHUP is answered from the old table (the reload
    # yields while it compiles); then one switch to the new table, never back.
    first_new = querier.tables.index("new")
    assert first_new > 0
    assert set(querier.tables[:first_new]) == {"old"}
    assert set(querier.tables[first_new:]) == {"new"}
