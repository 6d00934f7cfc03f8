"""``[limits]``: defaults, every key, and a one-line error for each bad value."""

from __future__ import annotations

import pytest

from protocols.ratelimit import REFLECTION_PORTS
from responder.config import ConfigError, load_config
from tests.helpers import BASE_CONFIG


def test_defaults_limit_at_200_per_second_with_the_reflection_ports(write_config):
    limits = load_config(str(write_config())).limits
    assert limits.reflection_ports == REFLECTION_PORTS
    assert (limits.responses_per_second, limits.burst, limits.slip) == (200, 200, 2)
    assert limits.nbns_status_per_second == 20
    assert (limits.ipv4_prefix, limits.ipv6_prefix) == (32, 56)
    assert limits.exempt == () and not limits.log_only
    assert limits.table_size == 16384


def test_every_key(write_config):
    text = BASE_CONFIG + (
        "[limits]\n"
        "reflection_ports = [7, 19, 7]\n"
        "responses_per_second = 50\n"
        "burst = 10\n"
        "slip = 0\n"
        "nbns_status_per_second = 5\n"
        "ipv4_prefix = 24\n"
        "ipv6_prefix = 48\n"
        'exempt = ["198.18.0.0/24", "2001:db8::/32"]\n'
        "log_only = true\n"
        "table_size = 1024\n"
    )
    limits = load_config(str(write_config(text))).limits
    assert limits.reflection_ports == (7, 19)
    assert (limits.responses_per_second, limits.burst, limits.slip) == (50, 10, 0)
    assert (limits.nbns_status_per_second, limits.ipv4_prefix, limits.ipv6_prefix) == (5, 24, 48)
    assert limits.exempt == ("198.18.0.0/24", "2001:db8::/32")
    assert limits.log_only and limits.table_size == 1024


BAD = {
    "port_zero": ("reflection_ports = [0]", "limits.reflection_ports", "integers 1 to 65535"),
    "port_big": ("reflection_ports = [70000]", "limits.reflection_ports", "got 70000"),
    "port_text": ('reflection_ports = ["7"]', "limits.reflection_ports", "got '7'"),
    "ports_not_list": ("reflection_ports = 7", "limits.reflection_ports", "must be a list"),
    "rate_negative": ("responses_per_second = -1", "limits.responses_per_second", "between"),
    "rate_text": ('responses_per_second = "many"', "limits.responses_per_second", "integer"),
    "burst_zero": ("burst = 0", "limits.burst", "between 1 and"),
    "slip_big": ("slip = 11", "limits.slip", "between 0 and 10"),
    "status_zero": ("nbns_status_per_second = 0", "limits.nbns_status_per_second", "between"),
    "v4_prefix": ("ipv4_prefix = 33", "limits.ipv4_prefix", "between 8 and 32"),
    "v6_prefix": ("ipv6_prefix = 8", "limits.ipv6_prefix", "between 16 and 128"),
    "exempt_host_bits": ('exempt = ["198.18.0.1/24"]', "limits.exempt", "has host bits set"),
    "exempt_garbage": ('exempt = ["nowhere"]', "limits.exempt", "'nowhere' is not a network"),
    "exempt_not_text": ("exempt = [24]", "limits.exempt", "must be a list of networks"),
    "log_only_text": ('log_only = "yes"', "limits.log_only", "true or false"),
    "table_not_power": ("table_size = 1000", "limits.table_size", "power of two, got 1000"),
    "table_small": ("table_size = 32", "limits.table_size", "between 64 and"),
    "unknown": ("rate = 5", "limits.rate", "unknown key"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_limits_name_key_and_reason_on_one_line(case, write_config):
    body, key, reason = BAD[case]
    with pytest.raises(ConfigError) as caught:
        load_config(str(write_config(BASE_CONFIG + "[limits]\n" + body + "\n")))
    assert caught.value.key == key
    assert reason in caught.value.reason
    assert "\n" not in str(caught.value)
