"""The C load generator's paired mode: turns between targets, figures kept apart.

Two loopback UDP endpoints in the test's own namespace: one echoes every
datagram (a perfect responder), the other is bound and never answers. Sent
to in alternating turns, the first must come back with every query answered
and the second with every query lost, each with its own share of the turns.
Only what the generator guarantees is asserted, never how fast the machine was.
"""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks import install
from benchmarks.servers import HERE

ECHO, SILENT, PORT = "127.0.0.21", "127.0.0.22", 5353
RUN_S, RATE, TURN_MS = 0.4, 2000, 20


@pytest.fixture(scope="module")
def loadgen(tmp_path_factory: pytest.TempPathFactory) -> Path:
    build = tmp_path_factory.mktemp("build")
    install.build_c(HERE / "c", build)
    return build / "loadgen"


@pytest.fixture
def queries(tmp_path: Path) -> Path:
    path = tmp_path / "queries.bin"
    query = bytes(2) + b"ping"
    path.write_bytes(len(query).to_bytes(2, "big") + query)
    return path


@pytest.fixture
def endpoints() -> Iterator[None]:
    """An echoing socket and a silent one, for a bounded time."""
    echo = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    echo.bind((ECHO, PORT))
    silent.bind((SILENT, PORT))
    echo.settimeout(0.05)
    stop = threading.Event()

    def serve() -> None:
        deadline = time.monotonic() + 20
        while not stop.is_set() and time.monotonic() < deadline:
            try:
                data, source = echo.recvfrom(2048)
            except TimeoutError:
                continue
            echo.sendto(data, source)

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)
        echo.close()
        silent.close()


def run(loadgen: Path, queries: Path, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [str(loadgen), "-p", str(PORT), "-f", str(queries), *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=30)


@pytest.mark.usefixtures("endpoints")
def test_paired_run_keeps_each_targets_figures_apart(loadgen: Path, queries: Path) -> None:
    done = run(
        loadgen,
        queries,
        *("-s", ECHO, "-s", SILENT, "-r", str(RATE), "-d", str(RUN_S)),
        *("-S", str(TURN_MS), "-T", "200"),
    )
    assert done.returncode == 0, done.stderr
    echo = json.loads(done.stdout)
    (silent,) = echo.pop("beside")
    assert echo.pop("slice_ms") == TURN_MS
    assert echo["sent"] > 0 and echo["received"] == echo["sent"] and echo["lost"] == 0
    assert silent["sent"] > 0 and silent["received"] == 0 and silent["lost"] == silent["sent"]
    # Turns alternate, so the run's time is split by whole turns: the two targets' times
    # differ by at most one turn. (How close each comes to half of the run, or the sends
    # to the rate, depends on how the machine schedules the generator: not asserted.)
    turn_s = TURN_MS / 1000
    assert abs(echo["elapsed_s"] - silent["elapsed_s"]) <= turn_s + 1e-5
    # Each rate is over the target's own turns, and the open loop never runs ahead of the
    # schedule: at most one query more than the rate allows over the whole run.
    for target in (echo, silent):
        assert target["offered_qps"] == pytest.approx(
            target["sent"] / target["elapsed_s"], rel=1e-3
        )
    run_s = echo["elapsed_s"] + silent["elapsed_s"]
    assert echo["sent"] + silent["sent"] <= RATE * run_s + 2
    assert echo["p50_us"] > 0 and silent["p50_us"] == 0


@pytest.mark.usefixtures("endpoints")
def test_single_target_output_has_no_beside(loadgen: Path, queries: Path) -> None:
    done = run(loadgen, queries, "-s", ECHO, "-r", str(RATE), "-d", "0.1", "-T", "200")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert "beside" not in result and result["received"] == result["sent"] > 0


def test_closed_loop_refuses_more_than_one_target(loadgen: Path, queries: Path) -> None:
    done = run(loadgen, queries, "-s", ECHO, "-s", SILENT, "-w", "4", "-d", "0.1")
    assert done.returncode == 2 and "usage" in done.stderr
