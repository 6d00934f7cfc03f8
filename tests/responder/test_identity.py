"""responder.identity: everything a node presents, derived once from the config."""

from __future__ import annotations

import ipaddress

from protocols.dns.authority import Authority, HostRecords
from protocols.netbios.names import NetbiosName
from protocols.netbios.nbns import NbFlags
from responder.config import Config, load_config, parse_config
from responder.identity import (
    cozen_fqdn,
    derived_mac,
    derived_server_guid,
    dns_zone,
    node_identities,
    public_fqdns,
    smb_identity,
)
from tests.helpers import BASE_CONFIG


def make_config(**sections: dict[str, object]) -> Config:
    document: dict[str, object] = {
        "cluster": {"name": "SVC", "dns_domain": "corp.example", "workgroup": "CORP"},
        "dns": {"listen": ["127.0.0.60"]},
        "node": [
            {"cozen_name": "SVC-CZ1", "management_ip": "127.0.0.61"},
            {
                "cozen_name": "svc-cz2",
                "management_ip": "127.0.0.62",
                "management_ipv6": "fd00::62",
            },
        ],
    }
    document.update(sections)
    return parse_config(document, "test")


def test_derived_identity_is_stable_and_distinct(write_config):
    first = load_config(str(write_config()))
    second = load_config(str(write_config(BASE_CONFIG)))
    assert node_identities(first) == node_identities(second)
    one, two = first.nodes
    assert one.mac != two.mac and one.server_guid != two.server_guid
    assert one.mac == derived_mac("SQL01-CZ1")
    assert one.mac[0] & 0x02 and not one.mac[0] & 0x01  # locally administered unicast
    assert one.server_guid == derived_server_guid("SQL01", "SQL01-CZ1")


def test_dns_names_come_from_the_cozen_name_and_addresses():
    one, two = node_identities(make_config())
    assert (one.cozen_name, one.fqdn) == ("SVC-CZ1", "svc-cz1.corp.example")
    assert two.fqdn == cozen_fqdn("SVC-CZ2", "corp.example") == "svc-cz2.corp.example"
    assert one.reverse_names == ("61.0.0.127.in-addr.arpa",)
    assert two.reverse_names[0] == "62.0.0.127.in-addr.arpa"
    assert two.reverse_names[1].endswith(".0.0.d.f.ip6.arpa")
    assert two.ipv6 == ipaddress.IPv6Address("fd00::62")
    assert one.address == "127.0.0.61"


def test_netbios_table_follows_smb_and_wins():
    plain = node_identities(make_config())[0]
    assert [(str(e.name), e.group) for e in plain.netbios_names] == [
        ("SVC-CZ1<00>", False),
        ("SVC-CZ1<20>", False),
        ("CORP<00>", True),
        ("CORP<1e>", True),
    ]
    assert plain.nbns.node_type == NbFlags.ONT_B
    assert plain.nbns.mac == plain.mac
    no_smb = node_identities(
        make_config(smb={"enabled": False}, netbios={"wins_server": "127.0.0.53"})
    )
    first = no_smb[0]
    assert NetbiosName("SVC-CZ1", 0x20) not in [e.name for e in first.netbios_names]
    assert first.nbns.node_type == NbFlags.ONT_H  # a WINS client is an H-node
    assert first.called_names == frozenset()


def test_public_name_is_never_presented():
    config = make_config()
    assert public_fqdns(config) == ("svc.corp.example",)
    for node in node_identities(config):
        assert "SVC" not in {e.name.name for e in node.netbios_names}
        assert "SVC" not in node.called_names
        assert node.ntlm.nb_computer_name != "SVC"


def test_ntlm_and_smb_identity_follow_config():
    config = make_config(
        smb={"native_os": "Custom OS", "smb1": False, "null_session": False, "max_dialect": "2.1"}
    )
    node = node_identities(config)[1]
    identity = smb_identity(config, node)
    assert identity.ntlm.dns_computer_name == "svc-cz2.corp.example"
    assert identity.ntlm.nb_computer_name == "SVC-CZ2"
    assert identity.ntlm.nb_domain_name == "CORP"
    assert identity.native_os == "Custom OS"
    assert (identity.smb1, identity.null_session, identity.max_dialect) == (False, False, 0x0210)
    assert identity.windows.name == "Windows Server 2022"  # os_version default 10.0.20348
    assert {"SVC-CZ2", "*SMBSERVER", "127.0.0.62"} <= identity.accepted_called_names
    assert identity.server_guid == config.nodes[1].server_guid.bytes_le


def test_dns_zone_publishes_each_node_and_in_zone_name_server_glue():
    config = make_config(dns={"listen": ["127.0.0.60"], "ns_name": "ns1.corp.example"})
    zone = dns_zone(config, 7)
    assert zone.serial == 7 and zone.public_names == ("svc.corp.example",)
    assert zone.hosts == (
        HostRecords("svc-cz1.corp.example", ("127.0.0.61",), ()),
        HostRecords("svc-cz2.corp.example", ("127.0.0.62",), ("fd00::62",)),
        HostRecords("ns1.corp.example", ("127.0.0.60",), (), reverse=False),
    )
    Authority(zone)  # compiles


def test_out_of_zone_name_server_gets_no_glue():
    zone = dns_zone(make_config(dns={"listen": ["127.0.0.60"], "ns_name": "ns.example.net"}), 1)
    assert [h.fqdn for h in zone.hosts] == ["svc-cz1.corp.example", "svc-cz2.corp.example"]
