"""The SOA serial: RFC 1982 comparison, stable for one zone, rising on every change."""

from dataclasses import replace

import pytest

from protocols.dns.serial import next_serial, serial_gt, zone_digest
from tests.protocols.dns.test_authority import SETTINGS

DIGEST = zone_digest(SETTINGS)
OTHER = zone_digest(replace(SETTINGS, ttl=600))


@pytest.mark.parametrize(
    ("a", "b", "greater"),
    [
        (2, 1, True),
        (1, 2, False),
        (1, 1, False),
        (0, 0xFFFFFFFF, True),  # wraps (RFC 1982 §3.2)
        (0xFFFFFFFF, 0, False),
        (0x80000000, 0, False),  # exactly half apart: undefined, never "greater"
        (0x7FFFFFFF, 0, True),
    ],
)
def test_serial_gt(a, b, greater):
    assert serial_gt(a, b) is greater


def test_digest_ignores_the_serial_only():
    assert zone_digest(replace(SETTINGS, serial=7)) == DIGEST
    assert OTHER != DIGEST
    assert zone_digest(replace(SETTINGS, identity="x")) != DIGEST


def test_start_takes_the_file_time():
    assert next_serial(1_764_000_000, DIGEST, None) == 1_764_000_000
    assert next_serial(1_764_000_000, DIGEST, None) == next_serial(1_764_000_000, DIGEST, None)


def test_same_content_keeps_the_serial_even_if_touched():
    assert next_serial(1_764_000_999, DIGEST, (DIGEST, 1_764_000_000)) == 1_764_000_000


def test_changed_content_takes_a_later_file_time():
    assert next_serial(1_764_000_999, OTHER, (DIGEST, 1_764_000_000)) == 1_764_000_999


def test_changed_content_with_an_older_file_time_still_rises():
    assert next_serial(1_764_000_000, OTHER, (DIGEST, 1_764_000_000)) == 1_764_000_001
    assert next_serial(5, OTHER, (DIGEST, 1_764_000_000)) == 1_764_000_001
    assert next_serial(5, OTHER, (DIGEST, 0xFFFFFFFF)) == 5  # RFC 1982: 5 follows 2**32-1
    assert serial_gt(next_serial(0, OTHER, (DIGEST, 0xFFFFFFFF)), 0xFFFFFFFF)
