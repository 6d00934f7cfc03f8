"""Open files: the soft limit is raised at start; a hard limit too low is one clear line."""

from __future__ import annotations

import resource
import subprocess
import sys
import tomllib
from pathlib import Path

from responder.config import parse_config
from responder.openfiles import descriptors_needed
from tests.helpers import BASE_CONFIG, PATIENCE, REPO


def many_nodes(count: int) -> str:
    nodes = "".join(
        f'\n[[node]]\ncozen_name = "N{i}"\nmanagement_ip = "127.1.{i // 250}.{i % 250 + 1}"\n'
        for i in range(count)
    )
    return BASE_CONFIG.split("[[node]]")[0].replace('listen = ["127.0.0.10"]', "") + nodes


def limit_open_files(soft: int, hard: int):
    def preexec() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    return preexec


def open_files_limits(pid: int) -> tuple[int, int]:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            soft, hard = line.split()[3:5]
            return int(soft), int(hard)
    raise AssertionError("no open files line")


def test_a_thousand_nodes_need_about_five_thousand_descriptors():
    config = parse_config(tomllib.loads(many_nodes(1000)), "test")
    assert 5000 <= descriptors_needed(config) <= 6000  # 2 DNS + NBNS + 2 SMB per node
    two = parse_config(tomllib.loads(BASE_CONFIG), "test")
    assert descriptors_needed(two) < 1024  # the common default soft limit


def test_hard_limit_too_low_is_one_line_before_binding(write_config):
    result = subprocess.run(
        [sys.executable, "-m", "responder", "run", "--config", str(write_config(many_nodes(400)))],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=PATIENCE,
        check=False,
        preexec_fn=limit_open_files(1024, 1024),
    )
    assert result.returncode == 4
    (line,) = result.stderr.splitlines()
    assert line.startswith("cozen-responder: 400 nodes need about ")
    assert "the hard limit is 1024" in line


def test_soft_limit_is_raised_to_the_hard_one(write_config, start_daemon):
    path = write_config(many_nodes(400))  # about 2,300 descriptors: over a soft 1,024
    daemon = start_daemon(path, preexec_fn=limit_open_files(1024, 8192))
    assert open_files_limits(daemon.proc.pid) == (8192, 8192)
    assert daemon.stop() == 0
    assert "Traceback" not in daemon.log()
