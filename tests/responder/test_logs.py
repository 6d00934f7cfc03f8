"""Logging: the flood summariser (with an injected clock), JSON lines, and the daemon's stderr."""

from __future__ import annotations

import json
import logging
import signal

from responder.logs import JsonFormatter, RateLimit
from tests.helpers import BASE_CONFIG

TEMPLATE = "udp %s: datagram lost: %s"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def record(msg: str = TEMPLATE, level: int = logging.WARNING, name: str = "responder.net.udp"):
    return logging.LogRecord(name, level, __file__, 1, msg, ("127.0.0.1:53", "EAGAIN"), None)


def make_limit(clock: Clock, reports: list) -> RateLimit:
    return RateLimit(clock, lambda *summary: reports.append(summary), burst=3, window=10.0)


def test_a_burst_passes_then_the_rest_is_counted_and_summarised():
    clock, reports = Clock(), []
    limit = make_limit(clock, reports)
    passed = [limit.filter(record()) for _ in range(9_815)]
    assert passed[:3] == [True] * 3 and not any(passed[3:])
    assert reports == []
    clock.now += 10.0
    assert limit.filter(record())  # a new window: passes, after the summary of the last
    assert reports == [("responder.net.udp", TEMPLATE, 9_812)]


def test_the_summary_comes_from_flush_when_the_flood_has_stopped():
    clock, reports = Clock(), []
    limit = make_limit(clock, reports)
    for _ in range(5):
        limit.filter(record())
    limit.flush()
    assert reports == []  # the window is still open
    clock.now += 10.0
    limit.flush()
    assert reports == [("responder.net.udp", TEMPLATE, 2)]
    limit.flush()
    assert len(reports) == 1  # reported once, then forgotten


def test_keys_are_logger_and_template_not_the_arguments():
    clock, reports = Clock(), []
    limit = make_limit(clock, reports)
    for _ in range(3):
        assert limit.filter(record())
    assert not limit.filter(record())  # same template, other arguments would not matter
    assert limit.filter(record("another %s %s"))
    assert limit.filter(record(name="responder.services.nbns"))


def test_info_is_never_held_back():
    limit = make_limit(Clock(), [])
    assert all(limit.filter(record("reloaded %s %s", logging.INFO)) for _ in range(100))


def test_quiet_window_reports_nothing():
    clock, reports = Clock(), []
    limit = make_limit(clock, reports)
    limit.filter(record())
    clock.now += 30.0
    limit.filter(record())
    limit.flush()
    assert reports == []


def test_the_logged_summary_reads_as_documented(caplog):
    clock = Clock()
    limit = RateLimit(clock, burst=1, window=10.0)
    for _ in range(9_813):
        limit.filter(record())
    clock.now += 10.0
    with caplog.at_level(logging.WARNING):
        limit.flush()
    assert caplog.messages == [f"suppressed 9,812 similar messages in the last 10 s: {TEMPLATE}"]


def test_json_formatter_has_the_keys_and_the_extra_fields():
    entry = record("bound %s %s")
    entry.address, entry.node = "127.0.0.11", "SQL01-CZ1"
    line = json.loads(JsonFormatter().format(entry))
    assert line["level"] == "WARNING" and line["logger"] == "responder.net.udp"
    assert line["message"] == "bound 127.0.0.1:53 EAGAIN"
    assert line["time"].endswith("Z") and "T" in line["time"]
    assert line["address"] == "127.0.0.11" and line["node"] == "SQL01-CZ1"
    assert "args" not in line and "msg" not in line


def test_json_formatter_carries_the_exception():
    try:
        raise OSError("no buffer space")
    except OSError as exc:
        failure = (OSError, exc, None)
        entry = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), failure)
    assert "OSError: no buffer space" in json.loads(JsonFormatter().format(entry))["exception"]


def test_daemon_logs_json_lines(write_config, start_daemon):
    path = write_config()
    daemon = start_daemon(path, "uvloop", "--log-format", "json")
    path.write_text(BASE_CONFIG.replace("127.0.0.12", "127.0.0.999"))
    daemon.signal(signal.SIGHUP)
    daemon.wait_for_log("reload failed")
    assert daemon.stop() == 0
    lines = daemon.log().splitlines()
    assert len(lines) >= 3
    entries = [json.loads(line) for line in lines]  # every line, or this raises
    for entry in entries:
        assert {"time", "level", "logger", "message"} <= entry.keys()
    messages = [e["message"] for e in entries]
    assert messages[-1] == "stopped" and any(m.startswith("ready") for m in messages)
    assert any(e["level"] == "ERROR" and "node[1]" in e["message"] for e in entries)
