"""Closed, broken and full standard streams: never a traceback, and ``run`` keeps serving.

Each test starts the real command (``python -m responder``) with its
streams rearranged by a shell (``>&-``, ``2>/dev/full``, a pipe nobody
reads) and checks what a careful Unix tool would do: the exit status, no
traceback in whatever output can be captured, and for ``run`` that DNS is
still answered.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import pytest

from tests.helpers import BASE_CONFIG, PATIENCE, REPO, end_process

HEALTH = "127.0.0.1:9137"
CONFIG = BASE_CONFIG + f'\n[health]\nlisten = "{HEALTH}"\n'
BIG = BASE_CONFIG + "".join(
    f'\n[[node]]\ncozen_name = "SQL01-N{i}"\nmanagement_ip = "127.0.1.{i}"\n' for i in range(1, 200)
)  # a description far larger than a pipe's buffer


def responder_in_shell(redirections: str, *args: str) -> list[str]:
    """argv: ``python -m responder ARGS REDIRECTIONS``, exec'd by sh (same PID)."""
    return ["sh", "-c", f'exec "$0" -m responder "$@" {redirections}', sys.executable, *args]


def into_a_pipe_nobody_reads(*args: str) -> subprocess.CompletedProcess[str]:
    """Run with stdout a pipe whose reader has already gone, as after ``| head -1``."""
    reader, writer = os.pipe()
    os.close(reader)
    try:
        return subprocess.run(
            [sys.executable, "-m", "responder", *args],
            cwd=REPO,
            stdout=writer,
            stderr=subprocess.PIPE,
            text=True,
            timeout=PATIENCE,
            check=False,
        )
    finally:
        os.close(writer)


@pytest.mark.parametrize("big", [False, True], ids=["small", "big"])
def test_check_whose_reader_has_gone_dies_of_sigpipe_silently(big, write_config):
    path = write_config(BIG if big else CONFIG)
    result = into_a_pipe_nobody_reads("check", "--config", str(path))
    assert result.returncode == -signal.SIGPIPE  # as coreutils: 141 in a shell
    assert result.stderr == ""


@pytest.mark.parametrize(
    ("redirection", "reason"),
    [(">&-", "Bad file descriptor"), (">/dev/full", "No space left on device")],
)
def test_check_that_cannot_write_its_output_says_so_in_one_line(redirection, reason):
    result = subprocess.run(
        responder_in_shell(redirection, "check"),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=PATIENCE,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr == f"cozen-responder: cannot write to standard output: {reason}\n"


def answers() -> bool:
    try:
        query = dns.message.make_query("sql01-cz1.corp.example", "A")
        reply = dns.query.udp(query, "127.0.0.10", timeout=1)
    except dns.exception.Timeout:
        return False
    return [r.address for rrset in reply.answer for r in rrset] == ["127.0.0.11"]


def wait_answering(proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + PATIENCE
    for _ in range(int(PATIENCE * 10)):
        if answers():
            return
        assert proc.poll() is None, f"daemon exited {proc.returncode}"
        assert time.monotonic() < deadline
        time.sleep(0.1)
    raise AssertionError("daemon never answered")


def status() -> dict[str, object]:
    with urllib.request.urlopen(f"http://{HEALTH}/status", timeout=PATIENCE) as reply:
        report: dict[str, object] = json.loads(reply.read())
    return report


RUN_STREAMS = {  # stdout, stderr, whether log lines are lost, worker processes
    "stdout closed": (">&-", "2>{err}", False, 1),
    "stderr closed": (">{out}", "2>&-", False, 1),
    "stdout full": (">/dev/full", "2>{err}", False, 1),
    "log full": (">{out}", "2>/dev/full", True, 1),
    "both full": (">/dev/full", "2>&1", True, 1),
    "both closed, 2 workers": (">&-", "2>&-", False, 2),  # the fork flushes both
    "both full, 2 workers": (">/dev/full", "2>&1", True, 2),
}


@pytest.mark.parametrize("case", list(RUN_STREAMS))
def test_run_keeps_serving_with_a_closed_or_full_stream(case, write_config, tmp_path: Path):
    out, err = tmp_path / "out", tmp_path / "err"
    stdout, stderr, log_fails, workers = RUN_STREAMS[case]
    redirections = f"{stdout} {stderr}".format(out=out, err=err)
    config = write_config(CONFIG + f"\n[daemon]\nworkers = {workers}\n")
    argv = responder_in_shell(redirections, "run", "--config", str(config))
    proc = subprocess.Popen(argv, cwd=REPO, start_new_session=True)
    try:
        wait_answering(proc)
        if log_fails:
            assert status()["log_write_errors"] > 0  # "ready" could not be logged
        proc.send_signal(signal.SIGHUP)  # a reload logs too
        wait_answering(proc)
    finally:
        end_process(proc, timeout=PATIENCE)
    captured = "".join(p.read_text(errors="replace") for p in (out, err) if p.exists())
    assert "Traceback" not in captured
    assert "Exception ignored" not in captured
    assert proc.returncode == 0, captured
