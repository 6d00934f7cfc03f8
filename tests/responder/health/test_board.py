"""The shared board through which worker processes publish their counters."""

from __future__ import annotations

import os

import pytest

from responder.health.board import VERSION, WorkerBoard, merge


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


def test_merge_adds_per_listener_and_per_query_label():
    v = VERSION
    total = merge(
        [
            {"version": v, "dns_udp": {"a:53": [1, 1, 0, 0, 1]}, "dns_tcp": {}},
            {
                "version": v,
                "dns_udp": {"a:53": [2, 1, 1, 0, 0], "b:53": [3, 3, 0, 0, 2]},
                "dns_tcp": {"a:53": [1, 0, 4]},
                "dns_queries": {"udp|fast|A|answered": [2]},
            },
            {
                "version": v,
                "dns_queries": {"udp|fast|A|answered": [3], "tcp|general|A|nodata": [1]},
            },
        ]
    )
    assert total == {
        "dns_udp": {"a:53": [3, 2, 1, 0, 1], "b:53": [3, 3, 0, 0, 2]},
        "dns_tcp": {"a:53": [1, 0, 4]},
        "dns_queries": {"udp|fast|A|answered": [5], "tcp|general|A|nodata": [1]},
    }


def test_merge_leaves_out_another_layout_and_widens_rows():
    old = {"dns_udp": {"a:53": [9, 9, 9, 9]}}  # no version: the layout before version 2
    other = {"version": VERSION + 1, "dns_udp": {"a:53": [9, 9, 9, 9, 9, 9]}}
    short = {"version": VERSION, "dns_udp": {"a:53": [1, 1, 0, 0]}}
    long = {"version": VERSION, "dns_udp": {"a:53": [1, 1, 0, 0, 1]}}
    assert merge([old, other, short, long])["dns_udp"] == {"a:53": [2, 2, 0, 0, 1]}
