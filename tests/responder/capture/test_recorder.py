"""The recorder: options, filter, the bounded queue and its drop count, the file it writes."""

from __future__ import annotations

import ipaddress
import struct
import time
from pathlib import Path

import pytest

from protocols.capture.packets import ACK, RST, parse_ip
from protocols.capture.pcapng import ISB, read_packets
from responder._toml import ConfigError
from responder.capture.options import CaptureFilter, Rotation, parse_filter, parse_rotation
from responder.capture.recorder import Recorder
from responder.config import parse_config
from tests.helpers import BASE_CONFIG

PORTS = {53: "dns", 137: "nbns", 139: "smb", 445: "smb"}
CLIENT, DNS, NODE = ("127.0.0.1", 40000), ("127.0.0.10", 53), ("127.0.0.11", 137)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("100MB", Rotation(size=100_000_000)),
        ("2KiB", Rotation(size=2048)),
        ("1h", Rotation(seconds=3600)),
        ("4096", Rotation(size=4096)),
    ],
)
def test_parse_rotation(text: str, expected: Rotation) -> None:
    assert parse_rotation(text) == expected


def test_parse_filter() -> None:
    parsed = parse_filter("dns, NBNS,10.0.0.0/24,127.0.0.11")
    assert parsed.protocols == ("dns", "nbns")
    assert parsed.networks == (
        ipaddress.ip_network("10.0.0.0/24"),
        ipaddress.ip_network("127.0.0.11/32"),
    )


@pytest.mark.parametrize("text", ["ftp", "10.0.0.0/33"])
def test_reject_bad_filter(text: str) -> None:
    with pytest.raises(ValueError, match="neither a protocol"):
        parse_filter(text)


def test_capture_section_in_config() -> None:
    import tomllib

    text = BASE_CONFIG + '[capture]\nfile = "/tmp/x.pcapng"\nrotate = "1h"\nfilter = "smb"\n'
    config = parse_config(tomllib.loads(text), "test")
    assert config.capture.file == "/tmp/x.pcapng"
    assert config.capture.rotate.seconds == 3600
    assert config.capture.filter.protocols == ("smb",)
    with pytest.raises(ConfigError, match=r"capture\.rotate"):
        parse_config(tomllib.loads(BASE_CONFIG + '[capture]\nrotate = "soon"\n'), "test")


def _wait_written(recorder: Recorder, count: int) -> None:
    for _ in range(2000):
        if recorder.counts.written >= count:
            return
        time.sleep(0.005)
    raise AssertionError(recorder.status())


def _segments(path: Path) -> list[object]:
    return [parse_ip(p.data) for p in read_packets(path.read_bytes())]


def test_records_datagrams_and_a_stream(tmp_path: Path) -> None:
    path = tmp_path / "r.pcapng"
    recorder = Recorder(str(path), ports=PORTS)
    recorder.start()
    recorder.datagram(CLIENT, DNS, b"\x00\x01query-bytes!")
    key = object()
    recorder.stream_open(key, ("127.0.0.1", 5000), ("127.0.0.11", 445))
    recorder.stream_data(key, ("127.0.0.1", 5000), b"request")
    recorder.stream_data(key, ("127.0.0.11", 445), b"reply")
    recorder.stream_close(key, ("127.0.0.1", 5000))
    _wait_written(recorder, 5)
    recorder.stop()
    segments = _segments(path)
    assert len(segments) == 1 + 3 + 2 + 3
    assert [s.payload for s in segments if s is not None and s.payload] == [  # type: ignore[attr-defined]
        b"\x00\x01query-bytes!",
        b"request",
        b"reply",
    ]


def test_a_reset_stream_ends_with_one_rst(tmp_path: Path) -> None:
    path = tmp_path / "reset.pcapng"
    recorder = Recorder(str(path), ports=PORTS)
    recorder.start()
    key = object()
    recorder.stream_open(key, ("127.0.0.1", 5000), ("127.0.0.11", 445))
    recorder.stream_close(key, ("127.0.0.11", 445), reset=True)
    _wait_written(recorder, 2)
    recorder.stop()
    segments = _segments(path)
    assert len(segments) == 3 + 1
    last = segments[-1]
    assert last is not None and last.flags == RST | ACK  # type: ignore[attr-defined]
    assert last.source == ("127.0.0.11", 445)  # type: ignore[attr-defined]


def test_filter_by_protocol_and_address(tmp_path: Path) -> None:
    path = tmp_path / "f.pcapng"
    only = CaptureFilter(("nbns",), (ipaddress.ip_network("127.0.0.11/32"),))
    recorder = Recorder(str(path), ports=PORTS, capture_filter=only)
    recorder.start()
    recorder.datagram(CLIENT, DNS, b"\x00\x01dns-query...")
    recorder.datagram(CLIENT, ("127.0.0.12", 137), b"\x00\x02other node..")
    recorder.datagram(CLIENT, NODE, b"\x00\x03nbns-query..")
    _wait_written(recorder, 1)
    recorder.stop()
    assert [s.payload[:2] for s in _segments(path) if s is not None] == [b"\x00\x03"]  # type: ignore[attr-defined]


def test_full_queue_drops_counts_and_notes_it(tmp_path: Path) -> None:
    path = tmp_path / "d.pcapng"
    recorder = Recorder(str(path), ports=PORTS, queue=16)
    recorder.hold.set()  # the writer thread stalls
    recorder.start()
    for i in range(100):
        recorder.datagram(CLIENT, DNS, i.to_bytes(2) + b"query-bytes!")
    assert recorder.status()["dropped"] == 84
    recorder.hold.clear()
    recorder.stop()
    data = path.read_bytes()
    assert len(list(read_packets(data))) == 16
    isb = data.rfind(struct.pack("<I", ISB))
    assert b"84 records dropped" in data[isb:]
