"""The shared board through which worker processes publish their counters."""

from __future__ import annotations

import os

import pytest

from responder.health.board import WorkerBoard, merge


def test_written_snapshot_is_read_back_and_others_skip_worker_zero():
    board = WorkerBoard(3)
    assert board.read(1) is None
    board.write(1, {"dns_udp": {"127.0.0.10:53": [5, 4, 0, 0]}})
    board.write(0, {"dns_udp": {"127.0.0.10:53": [100, 100, 0, 0]}})
    assert board.read(1) == {"dns_udp": {"127.0.0.10:53": [5, 4, 0, 0]}}
    assert board.others() == [{"dns_udp": {"127.0.0.10:53": [5, 4, 0, 0]}}]
    with pytest.raises(IndexError):
        board.write(3, {})


def test_a_forked_child_writes_what_the_parent_reads():
    board = WorkerBoard(2)
    pid = os.fork()
    if pid == 0:  # the child: publish and leave at once
        board.write(1, {"dns_tcp": {"127.0.0.10:53": [1, 2]}})
        os._exit(0)
    os.waitpid(pid, 0)
    assert board.read(1) == {"dns_tcp": {"127.0.0.10:53": [1, 2]}}


def test_merge_adds_per_listener():
    total = merge(
        [
            {"dns_udp": {"a:53": [1, 1, 0, 0]}, "dns_tcp": {}},
            {"dns_udp": {"a:53": [2, 1, 1, 0], "b:53": [3, 3, 0, 0]}, "dns_tcp": {"a:53": [1, 0]}},
        ]
    )
    assert total == {
        "dns_udp": {"a:53": [3, 2, 1, 0], "b:53": [3, 3, 0, 0]},
        "dns_tcp": {"a:53": [1, 0]},
    }
