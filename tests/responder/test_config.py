"""Config validation: every rule, each with the key and reason it reports."""

from __future__ import annotations

import ipaddress
import socket
import subprocess
import sys
import uuid

import pytest

from responder.config import (
    EMBEDDED_DEFAULT,
    ConfigError,
    load_config,
)
from tests.helpers import BASE_CONFIG, REPO


def test_base_config_parses(write_config):
    config = load_config(str(write_config()))
    assert config.cluster.name == "SQL01"
    assert config.cluster.dns_domain == "corp.example"
    assert [n.cozen_name for n in config.nodes] == ["SQL01-CZ1", "SQL01-CZ2"]
    assert config.dns.listen == (ipaddress.ip_address("127.0.0.10"),)
    assert config.dns.port == 53 and config.dns.fast_path


def test_embedded_default_is_the_documented_example():
    config = load_config(None)
    assert config.source == EMBEDDED_DEFAULT
    assert [(n.cozen_name, str(n.management_ip)) for n in config.nodes] == [
        ("SQL01-CZ1", "127.0.0.11"),
        ("SQL01-CZ2", "127.0.0.12"),
    ]
    assert [str(a) for a in config.dns.listen] == ["127.0.0.10"]


def test_names_are_upper_cased_and_domain_lower_cased(write_config):
    text = (
        BASE_CONFIG.replace('"SQL01-CZ1"', '"sql01-cz1"')
        .replace('"corp.example"', '"Corp.Example."')
        .replace('"CORP"', '"corp"')
    )
    config = load_config(str(write_config(text)))
    assert config.nodes[0].cozen_name == "SQL01-CZ1"
    assert config.cluster.dns_domain == "corp.example"
    assert config.cluster.workgroup == "CORP"


def test_dns_listen_defaults_to_every_management_address(write_config):
    text = BASE_CONFIG.replace('[dns]\nlisten = ["127.0.0.10"]\n', "").replace(
        'management_ip = "127.0.0.12"', 'management_ip = "127.0.0.12"\nmanagement_ipv6 = "fd00::12"'
    )
    config = load_config(str(write_config(text)))
    assert [str(a) for a in config.dns.listen] == ["127.0.0.11", "127.0.0.12", "fd00::12"]


def test_netbios_and_smb_defaults(write_config):
    config = load_config(str(write_config()))
    assert config.netbios.port == 137 and config.netbios.wins_server is None
    assert config.netbios.broadcast
    assert config.smb.enabled and config.smb.smb1 and config.smb.null_session
    assert (config.smb.port, config.smb.netbios_port) == (445, 139)
    assert config.smb.max_dialect == 0x0311 and config.smb.os_version == (10, 0, 20348)


def test_netbios_and_smb_keys(write_config):
    text = BASE_CONFIG + (
        '[netbios]\nwins_server = "127.0.0.53"\nttl = 600\nbroadcast = false\n'
        '[smb]\nsmb1 = false\nmax_dialect = "2.1"\nos_version = "6.3.9600"\n'
    )
    config = load_config(str(write_config(text)))
    assert str(config.netbios.wins_server) == "127.0.0.53" and config.netbios.ttl == 600
    assert not config.netbios.broadcast
    assert not config.smb.smb1 and config.smb.max_dialect == 0x0210
    assert config.smb.os_version == (6, 3, 9600)


def test_daemon_freebind_is_off_unless_asked(write_config):
    assert not load_config(str(write_config())).daemon.freebind
    on = load_config(str(write_config(BASE_CONFIG + "[daemon]\nfreebind = true\n")))
    assert on.daemon.freebind


def test_daemon_ip_ttl_defaults_to_windows_128(write_config):
    assert load_config(str(write_config())).daemon.ip_ttl == 128
    linux = load_config(str(write_config(BASE_CONFIG + "[daemon]\nip_ttl = 64\n")))
    assert linux.daemon.ip_ttl == 64
    with pytest.raises(ConfigError, match="ip_ttl"):
        load_config(str(write_config(BASE_CONFIG + "[daemon]\nip_ttl = 0\n")))


def test_dns_server_identity_defaults_to_host_name_and_no_version(write_config):
    dns = load_config(str(write_config())).dns
    assert (dns.identity, dns.version) == (socket.gethostname(), None)


def test_dns_server_identity_keys(write_config):
    text = BASE_CONFIG.replace("[dns]\n", '[dns]\nidentity = "sidecar-a"\nversion = "9.9"\n')
    dns = load_config(str(write_config(text))).dns
    assert (dns.identity, dns.version) == ("sidecar-a", "9.9")
    off = text.replace("[dns]\n", "[dns]\nserver_identity = false\n")
    dns = load_config(str(write_config(off))).dns
    assert (dns.identity, dns.version) == (None, None)
    with pytest.raises(ConfigError, match="identity"):
        load_config(str(write_config(BASE_CONFIG.replace("[dns]\n", '[dns]\nidentity = ""\n'))))


def test_explicit_mac_and_guid(write_config):
    guid = "0b7e6f4e-8a3c-4a53-9d0c-5a7b0f6e1d21"
    text = BASE_CONFIG.replace(
        'management_ip = "127.0.0.11"',
        f'management_ip = "127.0.0.11"\nmac = "02:00:5E:10:00:11"\nserver_guid = "{guid}"',
    )
    node = load_config(str(write_config(text))).nodes[0]
    assert node.mac == bytes.fromhex("02005e100011")
    assert node.server_guid == uuid.UUID(guid)


def _swap(old: str, new: str) -> str:
    assert old in BASE_CONFIG
    return BASE_CONFIG.replace(old, new, 1)


NO_LISTEN = BASE_CONFIG.replace('[dns]\nlisten = ["127.0.0.10"]\n', "")  # DNS on every node

BAD_CONFIGS = {
    "cozen_name_too_long": (
        _swap('"SQL01-CZ1"', '"SQL01-CZ1-TOOLONGX"'),
        "node[0].cozen_name",
        "1 to 15 characters",
    ),
    "cozen_name_empty": (_swap('"SQL01-CZ1"', '""'), "node[0].cozen_name", "1 to 15"),
    "cozen_name_space": (
        _swap('"SQL01-CZ1"', '"SQL01 CZ1"'),
        "node[0].cozen_name",
        "letters, digits",
    ),
    "cozen_name_netbios_forbidden": (
        _swap('"SQL01-CZ1"', '"SQL01*CZ1"'),
        "node[0].cozen_name",
        "forbids",
    ),
    "cozen_name_leading_hyphen": (
        _swap('"SQL01-CZ1"', '"-SQL01"'),
        "node[0].cozen_name",
        "inner hyphens",
    ),
    "cozen_name_all_digits": (_swap('"SQL01-CZ1"', '"12345"'), "node[0].cozen_name", "all digits"),
    "cozen_name_non_ascii": (_swap('"SQL01-CZ1"', '"SQLÖ1"'), "node[0].cozen_name", "ASCII"),
    "cozen_equals_public": (_swap('"SQL01-CZ1"', '"sql01"'), "node[0].cozen_name", "public name"),
    "cozen_equals_workgroup": (_swap('"SQL01-CZ1"', '"CORP"'), "node[0].cozen_name", "workgroup"),
    "duplicate_cozen": (_swap('"SQL01-CZ2"', '"sql01-cz1"'), "node[1].cozen_name", "duplicate"),
    "duplicate_address": (
        _swap('"127.0.0.12"', '"127.0.0.11"'),
        "node[1].management_ip",
        "duplicate",
    ),
    "bad_ipv4": (_swap('"127.0.0.11"', '"127.0.0.300"'), "node[0].management_ip", "not an IPv4"),
    "ipv6_as_ipv4": (_swap('"127.0.0.11"', '"fd00::1"'), "node[0].management_ip", "not an IPv4"),
    "bad_ipv6": (
        _swap(
            'management_ip = "127.0.0.11"',
            'management_ip = "127.0.0.11"\nmanagement_ipv6 = "127.0.0.1"',
        ),
        "node[0].management_ipv6",
        "not an IPv6",
    ),
    "bad_mac": (
        _swap('management_ip = "127.0.0.11"', 'management_ip = "127.0.0.11"\nmac = "02:00:5e"'),
        "node[0].mac",
        "not a MAC",
    ),
    "multicast_mac": (
        _swap(
            'management_ip = "127.0.0.11"',
            'management_ip = "127.0.0.11"\nmac = "01:00:5e:00:00:01"',
        ),
        "node[0].mac",
        "multicast",
    ),
    "bad_guid": (
        _swap('management_ip = "127.0.0.11"', 'management_ip = "127.0.0.11"\nserver_guid = "nope"'),
        "node[0].server_guid",
        "not a GUID",
    ),
    "management_ip_unspecified": (
        _swap('"127.0.0.11"', '"0.0.0.0"'),
        "node[0].management_ip",
        "'0.0.0.0' is the unspecified address",
    ),
    "management_ip_broadcast": (
        _swap('"127.0.0.11"', '"255.255.255.255"'),
        "node[0].management_ip",
        "the broadcast address",
    ),
    "management_ip_multicast": (
        _swap('"127.0.0.12"', '"224.0.0.251"'),
        "node[1].management_ip",
        "multicast",
    ),
    "management_ipv6_unspecified": (
        _swap(
            'management_ip = "127.0.0.11"', 'management_ip = "127.0.0.11"\nmanagement_ipv6 = "::"'
        ),
        "node[0].management_ipv6",
        "unspecified",
    ),
    "management_ipv6_multicast": (
        _swap(
            'management_ip = "127.0.0.11"',
            'management_ip = "127.0.0.11"\nmanagement_ipv6 = "ff02::1"',
        ),
        "node[0].management_ipv6",
        "multicast",
    ),
    "loopback_beside_real_address": (
        _swap('"127.0.0.12"', '"192.0.2.12"'),
        "node[0].management_ip",
        "'127.0.0.11' is loopback but node[1].management_ip '192.0.2.12' is not",
    ),
    "ipv6_loopback_beside_real_addresses": (
        BASE_CONFIG.replace('"127.0.0.11"', '"192.0.2.11"').replace(
            'management_ip = "127.0.0.12"', 'management_ip = "192.0.2.12"\nmanagement_ipv6 = "::1"'
        ),
        "node[1].management_ipv6",
        "'::1' is loopback but node[0].management_ip '192.0.2.11' is not",
    ),
    "listen_unspecified": (
        _swap('listen = ["127.0.0.10"]', 'listen = ["127.0.0.10", "0.0.0.0"]'),
        "dns.listen",
        "'0.0.0.0' is the unspecified address",
    ),
    "listen_ipv6_unspecified": (
        _swap('listen = ["127.0.0.10"]', 'listen = ["::"]'),
        "dns.listen",
        "unspecified",
    ),
    "listen_broadcast": (
        _swap('listen = ["127.0.0.10"]', 'listen = ["255.255.255.255"]'),
        "dns.listen",
        "broadcast",
    ),
    "listen_multicast": (
        _swap('listen = ["127.0.0.10"]', 'listen = ["ff05::1:3"]'),
        "dns.listen",
        "multicast",
    ),
    "unknown_node_key": (
        _swap('management_ip = "127.0.0.11"', 'management_ip = "127.0.0.11"\ncolour = "blue"'),
        "node[0].colour",
        "unknown key",
    ),
    "unknown_section": (BASE_CONFIG + "\n[extras]\nx = 1\n", "extras", "unknown key"),
    "unknown_dns_key": (
        _swap("[dns]\n", "[dns]\nrecursion = true\n"),
        "dns.recursion",
        "unknown key",
    ),
    "missing_cluster_name": (_swap('name = "SQL01"\n', ""), "cluster.name", "required"),
    "missing_domain": (
        _swap('dns_domain = "corp.example"\n', ""),
        "cluster.dns_domain",
        "required",
    ),
    "missing_management_ip": (
        _swap('management_ip = "127.0.0.11"\n', ""),
        "node[0].management_ip",
        "required",
    ),
    "no_nodes": (BASE_CONFIG.split("[[node]]")[0], "node", "at least one"),
    "bad_domain_label": (
        _swap('"corp.example"', '"corp..example"'),
        "cluster.dns_domain",
        "invalid DNS label",
    ),
    "bad_domain_chars": (
        _swap('"corp.example"', '"corp example"'),
        "cluster.dns_domain",
        "invalid DNS label",
    ),
    "workgroup_too_long": (_swap('"CORP"', '"CORPORATIONDOMAIN"'), "cluster.workgroup", "1 to 15"),
    "wrong_type": (
        _swap('listen = ["127.0.0.10"]', 'listen = "127.0.0.10"'),
        "dns.listen",
        "must be a list",
    ),
    "bad_listen": (
        _swap('listen = ["127.0.0.10"]', 'listen = ["localhost"]'),
        "dns.listen",
        "not an IP",
    ),
    "empty_listen": (_swap('listen = ["127.0.0.10"]', "listen = []"), "dns.listen", "non-empty"),
    "port_out_of_range": (_swap("[dns]\n", "[dns]\nport = 70000\n"), "dns.port", "between"),
    "dns_port_zero": (_swap("[dns]\n", "[dns]\nport = 0\n"), "dns.port", "between 1 and"),
    "netbios_port_zero": (BASE_CONFIG + "[netbios]\nport = 0\n", "netbios.port", "between 1"),
    "smb_port_zero": (BASE_CONFIG + "[smb]\nport = 0\n", "smb.port", "between 1"),
    "smb_netbios_port_zero": (
        BASE_CONFIG + "[smb]\nnetbios_port = 0\n",
        "smb.netbios_port",
        "between 1",
    ),
    "duplicate_ipv6_after_a_node_without": (
        BASE_CONFIG.replace('"127.0.0.12"', '"127.0.0.12"\nmanagement_ipv6 = "fd00::1"')
        + '[[node]]\ncozen_name = "SQL01-CZ3"\nmanagement_ip = "127.0.0.13"\n'
        + 'management_ipv6 = "fd00::1"\n',
        "node[2].management_ipv6",
        "duplicate value fd00::1 (node[1])",
    ),
    "dns_on_management_addresses_at_smb_port": (
        NO_LISTEN + "[dns]\nport = 445\n",
        "smb.port",
        "clashes with dns.port on TCP 127.0.0.11:445",
    ),
    "dns_on_management_addresses_at_nbss_port": (
        NO_LISTEN + "[dns]\nport = 139\n",
        "smb.netbios_port",
        "clashes with dns.port on TCP 127.0.0.11:139",
    ),
    "dns_on_management_addresses_at_nbns_port": (
        NO_LISTEN + "[dns]\nport = 137\n",
        "netbios.port",
        "clashes with dns.port on UDP 127.0.0.11:137",
    ),
    "smb_ports_equal": (
        BASE_CONFIG + "[smb]\nport = 139\n",
        "smb.port",
        "clashes with smb.netbios_port on TCP 127.0.0.11:139",
    ),
    "health_on_dns": (
        BASE_CONFIG + '[health]\nlisten = "127.0.0.10:53"\n',
        "health.listen",
        "clashes with dns.port on TCP 127.0.0.10:53",
    ),
    "health_wildcard_on_smb": (
        BASE_CONFIG + '[health]\nlisten = "0.0.0.0:445"\n',
        "health.listen",
        "clashes with smb.port on TCP 0.0.0.0:445",
    ),
    "health_ipv6_wildcard_is_dual_stack": (
        BASE_CONFIG + '[health]\nlisten = "[::]:139"\n',
        "health.listen",
        "clashes with smb.netbios_port on TCP [::]:139",
    ),
    "bool_as_int": (_swap("[dns]\n", "[dns]\nport = true\n"), "dns.port", "an integer"),
    "fast_path_not_bool": (
        _swap("[dns]\n", '[dns]\nfast_path = "yes"\n'),
        "dns.fast_path",
        "true or false",
    ),
    "ns_name_collides": (
        _swap("[dns]\n", '[dns]\nns_name = "sql01-cz1.corp.example"\n'),
        "dns.ns_name",
        "already",
    ),
    "not_toml": ("[cluster\nname=", "<toml>", "invalid TOML"),
    "bad_wins_server": (
        BASE_CONFIG + '[netbios]\nwins_server = "wins.corp"\n',
        "netbios.wins_server",
        "not an IPv4",
    ),
    "unknown_netbios_key": (BASE_CONFIG + "[netbios]\nscope = 1\n", "netbios.scope", "unknown key"),
    "bad_dialect": (BASE_CONFIG + '[smb]\nmax_dialect = "3.2"\n', "smb.max_dialect", "not one of"),
    "bad_os_version": (
        BASE_CONFIG + '[smb]\nos_version = "10.0"\n',
        "smb.os_version",
        "MAJOR.MINOR.BUILD",
    ),
    "smb1_not_bool": (BASE_CONFIG + "[smb]\nsmb1 = 1\n", "smb.smb1", "true or false"),
    "freebind_not_bool": (
        BASE_CONFIG + '[daemon]\nfreebind = "yes"\n',
        "daemon.freebind",
        "true or false",
    ),
    "tiny_message_cap": (
        BASE_CONFIG + "[smb]\nmax_message_size = 10\n",
        "smb.max_message_size",
        "between",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_bad_config_names_key_and_reason(case, write_config):
    text, key, reason = BAD_CONFIGS[case]
    path = write_config(text)
    with pytest.raises(ConfigError) as caught:
        load_config(str(path))
    message = str(caught.value)
    assert caught.value.key == key
    assert message.startswith(f"{path}: {key}: ")
    assert reason in message
    assert "\n" not in message


def test_real_and_all_loopback_addresses_are_valid(write_config):
    real = BASE_CONFIG.replace('"127.0.0.10"', '"192.0.2.10"').replace('"127.0.0.1', '"192.0.2.1')
    assert [str(n.management_ip) for n in load_config(str(write_config(real))).nodes] == [
        "192.0.2.11",
        "192.0.2.12",
    ]
    # a lab: every node's IPv4 address on loopback, so any IPv6 one (even ::1) is allowed
    lab = _swap(
        'management_ip = "127.0.0.12"', 'management_ip = "127.0.0.12"\nmanagement_ipv6 = "::1"'
    )
    assert str(load_config(str(write_config(lab))).nodes[1].management_ipv6) == "::1"


@pytest.mark.parametrize(
    "extra",
    [
        "[dns]\nport = 445\n[smb]\nenabled = false\n",  # nothing else on 445
        '[dns]\nlisten = ["127.0.0.10"]\nport = 137\n',  # NBNS is on the node addresses only
        '[health]\nlisten = "127.0.0.1:445"\n',
        '[health]\nlisten = "0.0.0.0:9137"\n',
    ],
)
def test_same_port_on_other_addresses_or_transports_is_no_clash(extra, write_config):
    load_config(str(write_config(NO_LISTEN + extra)))


def test_check_reports_a_port_clash_run_would_meet(write_config):
    path = write_config(NO_LISTEN + "[dns]\nport = 445\n")
    result = subprocess.run(
        [sys.executable, "-m", "responder", "check", "--config", str(path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == (
        f"cozen-responder: {path}: smb.port: clashes with dns.port on TCP 127.0.0.11:445: "
        "run cannot bind both\n"
    )


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(str(tmp_path / "absent.toml"))


def test_check_prints_table_and_exits_zero(write_config):
    result = subprocess.run(
        [sys.executable, "-m", "responder", "check", "--config", str(write_config())],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "SQL01-CZ1" in result.stdout and "sql01-cz2.corp.example" in result.stdout
    assert "127.0.0.12" in result.stdout
    assert "SQL01-CZ2<00>, SQL01-CZ2<20>, CORP<00> group, CORP<1e> group" in result.stdout
    assert "no WINS (B-node)" in result.stdout


@pytest.mark.parametrize("command", ["check", "run"])
def test_bad_config_is_one_line_and_nonzero(command, write_config):
    path = write_config(_swap('"127.0.0.11"', '"not-an-ip"'))
    result = subprocess.run(
        [sys.executable, "-m", "responder", command, "--config", str(path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.strip().count("\n") == 0
    assert f"{path}: node[0].management_ip:" in result.stderr
