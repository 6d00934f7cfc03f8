"""The reflection filter and rate limiter policy (protocols/ratelimit.py), time injected."""

from __future__ import annotations

import socket

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.ratelimit import (
    DROP,
    NBNS_STATUS_SUFFIX,
    NS,
    REFLECTION_PORTS,
    SEND,
    SLIP,
    Guard,
    build_policy,
    dns_slip,
)


def packed(host: str) -> bytes:
    return socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)


def guard(**overrides: object) -> Guard:
    options: dict[str, object] = {
        "reflection_ports": REFLECTION_PORTS,
        "service_port": 53,
        "broadcasts": ["198.18.0.255"],
        "rate": 10,
        "burst": 5,
        "slip": 2,
    }
    options.update(overrides)
    return Guard(build_policy(**options))  # type: ignore[arg-type]


# ------------------------------------------------------------ reflection filter


@pytest.mark.parametrize("port", [0, *REFLECTION_PORTS])
def test_reflection_ports_and_port_zero_are_dropped_and_counted(port):
    g = guard()
    assert g.check_source(packed("198.18.0.7"), port)
    reason = "port_zero" if port == 0 else "reflection_port"
    assert g.counts == [port == 0, port != 0, 0, 0, 0, 0]
    assert reason in ("port_zero", "reflection_port")


@pytest.mark.parametrize(
    "host",
    [
        *("0.0.0.0", "255.255.255.255", "224.0.0.1", "239.255.255.250", "240.0.0.1"),
        *("198.18.0.255", "::", "ff02::1", "ff05::1:3"),
    ],
)
def test_sources_that_cannot_send_are_dropped(host):
    g = guard()
    assert g.check_source(packed(host), 40000)
    assert g.counts[2] == 1


@pytest.mark.parametrize("host", ["198.18.0.7", "198.18.1.255", "127.0.0.1", "fe80::1", "::1"])
def test_ordinary_sources_pass(host):
    assert not guard().check_source(packed(host), 40000)


def test_the_services_own_port_is_never_filtered():
    assert not guard(service_port=53).check_source(packed("198.18.0.7"), 53)
    nbns = guard(service_port=137, reflection_ports=(137, 7))
    assert not nbns.check_source(packed("198.18.0.7"), 137)
    assert nbns.check_source(packed("198.18.0.7"), 7)
    assert nbns.check_source(packed("198.18.0.7"), 0)  # port 0 always
    assert guard(service_port=0).check_source(packed("198.18.0.7"), 0)  # even then


# ------------------------------------------------------------ rate limiting

SOURCE = packed("198.18.0.7")


def test_a_burst_then_the_rate():
    g = guard(rate=10, burst=5, slip=0)
    now = 1_000 * NS
    assert [g.admit(SOURCE, now, False) for _ in range(7)] == [SEND] * 5 + [DROP] * 2
    assert g.admit(SOURCE, now + NS // 10, False) == SEND  # one token back after 100 ms
    assert g.admit(SOURCE, now + NS // 10, False) == DROP
    assert g.admit(SOURCE, now + 10 * NS, False) == SEND  # a quiet source is full again
    assert g.counts[3] == 3


def test_slip_truncates_every_second_limited_answer():
    g = guard(rate=10, burst=2, slip=2)
    verdicts = [g.admit(SOURCE, NS, False) for _ in range(8)]
    assert verdicts == [SEND, SEND, DROP, SLIP, DROP, SLIP, DROP, SLIP]
    assert g.counts[3:5] == [3, 3]


def test_slip_one_truncates_every_limited_answer():
    g = guard(rate=10, burst=1, slip=1)
    assert [g.admit(SOURCE, NS, False) for _ in range(3)] == [SEND, SLIP, SLIP]


def test_heavy_answers_have_their_own_lower_rate():
    g = guard(rate=200, burst=200, heavy_rate=20, heavy_suffix=NBNS_STATUS_SUFFIX, slip=0)
    heavy = [g.admit(SOURCE, NS, True) for _ in range(25)]
    assert heavy.count(SEND) == 20  # a bucket of 200 answers holds 20 node status answers
    other = guard(rate=200, burst=200, slip=0)
    assert [other.admit(SOURCE, NS, False) for _ in range(200)].count(SEND) == 200


def test_exempt_prefixes_are_never_limited():
    g = guard(rate=1, burst=1, exempt=["198.18.0.0/24", "2001:db8::/32"])
    assert all(g.admit(SOURCE, NS, False) == SEND for _ in range(100))
    assert all(g.admit(packed("2001:db8::5"), NS, False) == SEND for _ in range(100))
    assert g.admit(packed("198.18.1.1"), NS, False) == SEND
    assert g.admit(packed("198.18.1.1"), NS, False) == DROP
    assert g.sources() == 1


def test_log_only_sends_anyway_but_counts():
    g = guard(rate=10, burst=2, log_only=True)
    assert [g.admit(SOURCE, NS, False) for _ in range(6)] == [SEND] * 6
    assert g.counts[3:6] == [0, 0, 4]


def test_rate_zero_switches_limiting_off():
    g = guard(rate=0)
    assert not g.limiting
    assert all(g.admit(SOURCE, NS, False) == SEND for _ in range(1000))
    assert g.sources() == 0


def test_sources_share_a_bucket_per_prefix():
    g = guard(rate=10, burst=2, slip=0, ipv6_prefix=56, ipv4_prefix=24)
    assert g.admit(packed("2001:db8:0:100::1"), NS, False) == SEND
    assert g.admit(packed("2001:db8:0:1ff::2"), NS, False) == SEND  # same /56
    assert g.admit(packed("2001:db8:0:1ff::3"), NS, False) == DROP
    assert g.admit(packed("2001:db8:0:200::1"), NS, False) == SEND  # the next /56
    assert g.admit(packed("198.18.0.1"), NS, False) == SEND
    assert g.admit(packed("198.18.0.200"), NS, False) == SEND
    assert g.admit(packed("198.18.0.99"), NS, False) == DROP
    assert g.sources() == 3


def test_a_spoofed_flood_cannot_grow_the_table_nor_free_a_limited_source():
    g = guard(rate=10, burst=2, slip=0, table_size=1024)
    now = NS
    for _ in range(3):
        g.admit(SOURCE, now, False)
    for index in range(100_000):
        g.admit(index.to_bytes(4), now + index, False)
    assert g.sources() <= 1024
    # The limited source kept its bucket: the flood evicted idle buckets only.
    assert g.admit(SOURCE, now + 100_000, False) == DROP


@given(
    rate=st.integers(1, 1000),
    burst=st.integers(1, 100),
    gaps=st.lists(st.integers(0, NS // 10), min_size=1, max_size=200),
)
@settings(max_examples=200, deadline=None)
def test_never_more_than_burst_plus_rate_times_elapsed(rate, burst, gaps):
    g = guard(rate=rate, burst=burst, slip=0)
    now, sent = NS, 0
    for gap in gaps:
        now += gap
        sent += g.admit(SOURCE, now, False) == SEND
    elapsed = now - NS
    assert sent <= burst + elapsed * rate // NS + 1
    assert sent >= 1


@given(st.integers(1, 10))
def test_slip_count_is_every_nth(slip):
    g = guard(rate=1, burst=1, slip=slip)
    verdicts = [g.admit(SOURCE, NS, False) for _ in range(1 + 10 * slip)][1:]
    assert verdicts.count(SLIP) == 10
    assert all(v == SLIP for v in verdicts[slip - 1 :: slip])


# ------------------------------------------------------------ DNS slip


def test_dns_slip_keeps_header_and_question_with_tc():
    question = b"\x03www\x07example\x00\x00\x01\x00\x01"
    answer = b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x01\x2c\x00\x04\x7f\x00\x00\x01"
    reply = b"\xab\xcd\x85\x00\x00\x01\x00\x01\x00\x00\x00\x00" + question + answer
    slipped = dns_slip(reply)
    assert slipped == b"\xab\xcd\x87\x00\x00\x01\x00\x00\x00\x00\x00\x00" + question


@pytest.mark.parametrize(
    "reply",
    [
        b"",
        b"\x00" * 11,
        b"\xab\xcd\x85\x00\x00\x02" + bytes(6) + b"\x00\x00\x01\x00\x01",  # two questions
        b"\xab\xcd\x85\x00\x00\x01" + bytes(6) + b"\x03ww",  # cut short
        b"\xab\xcd\x85\x00\x00\x01" + bytes(6) + b"\xc0\x0c\x00\x01\x00\x01",  # a pointer
    ],
)
def test_dns_slip_declines_odd_replies(reply):
    assert dns_slip(reply) is None


def test_build_policy_rejects_a_table_size_not_a_power_of_two():
    with pytest.raises(ValueError, match="power of two"):
        guard(table_size=1000)
