"""Names presented, the --expect verdict, the table and the audit's checks, on typed results."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from responder.config import load_config
from responder.identity import NodeIdentity, node_identities
from responder.tools import audit, render
from responder.tools.commands import parse_server
from responder.tools.probe import system_resolver
from responder.tools.result import (
    CalledView,
    DialectView,
    DnsView,
    ForwardView,
    NameQueryView,
    NbnsName,
    NbnsView,
    NbssView,
    NtlmView,
    ProbeResult,
    Smb1View,
    Smb2View,
    Status,
    presented_names,
    verdict,
)
from responder.tools.table import render_table

CONFIG = load_config(None)
CZ1, CZ2 = node_identities(CONFIG)
A = Status.ANSWERED


def seen(node: NodeIdentity) -> ProbeResult:
    """What a probe of ``node`` sees when the daemon serves it as configured."""
    names = tuple(
        NbnsName(o.name.name, o.name.suffix, o.group, ("B", "ACT")) for o in node.netbios_names
    )
    ntlm = node.ntlm
    return ProbeResult(
        address=node.address,
        dns=DnsView(A, "", "127.0.0.10:53", node.reverse_names[0], "NOERROR", (node.fqdn,),
                    (ForwardView(node.fqdn, "NOERROR", (node.address,), True),)),
        nbns=NbnsView(A, names=names, mac=node.mac.hex(":"),
                      query=NameQueryView(A, name=f"{node.cozen_name}<20>", rcode=0,
                                          addresses=(node.address,))),
        nbss=NbssView(A, called=(CalledView(node.cozen_name, A, True, "positive"),
                                 CalledView("*SMBSERVER", A, True, "positive"),
                                 CalledView("SQL01", A, False, "called_name_not_present"))),
        smb2=Smb2View(A, negotiations=tuple(
            DialectView(("2.0.2",), A, dialect=d, server_guid=str(node.server_guid))
            for d in ("2.0.2", "3.0.2", "3.1.1"))),
        ntlm=NtlmView(A, "", "CORP", ntlm.nb_computer_name, ntlm.nb_domain_name,
                      ntlm.dns_computer_name, ntlm.dns_domain_name, ntlm.dns_tree_name,
                      "10.0.20348"),
        smb1=Smb1View(A, "", "NT LM 0.12", node.cozen_name, "CORP", "STATUS_SUCCESS",
                      CONFIG.smb.native_os, CONFIG.smb.native_lanman, "CORP"),
    )  # fmt: skip


SILENT = ProbeResult(
    "127.0.0.99",
    DnsView(Status.SILENT, "no answer within 1 s"),
    NbnsView(Status.SILENT, "port unreachable"),
    NbssView(Status.SILENT, "connection refused"),
    Smb2View(Status.SILENT, "connection refused"),
    NtlmView(Status.SILENT, "connection refused"),
    Smb1View(Status.SILENT, "connection refused"),
)


def test_every_protocol_but_smb2_presents_the_cozen_name():
    assert presented_names(seen(CZ2)) == {
        p: ("SQL01-CZ2",) for p in ("dns", "nbns", "nbss", "ntlm", "smb1")
    }


def test_expect_own_name_agrees_and_public_name_names_every_protocol():
    assert verdict(seen(CZ2), "sql01-cz2") == ((), ())
    assert verdict(seen(CZ2), "sql01-cz2.corp.example") == ((), ())
    assert verdict(seen(CZ2), "SQL01") == (("dns", "nbns", "nbss", "ntlm", "smb1"), ())


def test_silence_is_no_wrong_name():
    assert verdict(SILENT, "SQL01-CZ2") == ((), ("dns", "nbns", "nbss", "smb2", "ntlm", "smb1"))


def test_wildcard_and_address_called_names_are_not_presented():
    result = replace(
        seen(CZ2),
        nbss=NbssView(
            A, called=(CalledView("*SMBSERVER", A, True), CalledView("127.0.0.12", A, True))
        ),
    )
    assert presented_names(result)["nbss"] == ()


def test_table_shows_silence_and_verdict():
    wrong, silent = verdict(SILENT, "SQL01-CZ2")
    text = render.to_table([replace(SILENT, expect="SQL01-CZ2", mismatched=wrong, silent=silent)])
    assert "nbns      silent  port unreachable" in text
    assert "(not counted as a different name)" in text


def test_json_carries_every_view():
    data = json.loads(render.to_json([seen(CZ2)]))["results"][0]
    assert data["dns"]["points_back"] is True
    assert data["smb2"]["server_guid"] == str(CZ2.server_guid)
    assert data["nbns"]["names"][0] == {
        "name": "SQL01-CZ2",
        "suffix": 0,
        "group": False,
        "flags": ["B", "ACT"],
    }
    assert data["presents"]["ntlm"] == ["SQL01-CZ2"]


def test_table_printer_multiline_cells():
    assert render_table(("a", "b"), [("x\ny", "1")]) == "a  b\n-  -\nx  1\ny"
    with pytest.raises(ValueError, match="cells"):
        render_table(("a", "b"), [("x",)])


@pytest.mark.parametrize(
    ("text", "server"),
    [("127.0.0.10", ("127.0.0.10", 53)), ("127.0.0.10:5353", ("127.0.0.10", 5353)),
     ("[fd00::1]:54", ("fd00::1", 54)), ("fd00::1", ("fd00::1", 53))],
)  # fmt: skip
def test_parse_server(text, server):
    assert parse_server(text) == server


@pytest.mark.parametrize("text", ["dns.example", "127.0.0.1:0", "127.0.0.1:x"])
def test_parse_server_rejects(text):
    with pytest.raises(ValueError):
        parse_server(text)


def test_system_resolver(tmp_path: Path):
    conf = tmp_path / "resolv.conf"
    conf.write_text("# comment\nsearch corp.example\nnameserver 127.0.0.53\nnameserver 1.1.1.1\n")
    assert system_resolver(conf) == ("127.0.0.53", 53)
    assert system_resolver(tmp_path / "missing") is None


# -- audit checks -----------------------------------------------------------------------


def cells(*results: ProbeResult) -> list[audit.NodeAudit]:
    extras = [audit.Extras() for _ in results]
    return audit.assemble(CONFIG, list(results), extras, None)


def cell(audits: list[audit.NodeAudit], row: int, check: str) -> audit.Cell:
    return dict(audits[row].checks)[check]


def test_audit_passes_nodes_as_configured():
    audits = cells(seen(CZ1), seen(CZ2))
    assert all(a.ok for a in audits)
    assert cell(audits, 0, "wins").ok is None and cell(audits, 0, "site-dns").ok is None


def test_audit_marks_a_shared_server_guid_on_both_rows():
    guid = str(CZ1.server_guid)
    twin = replace(seen(CZ2), smb2=replace(seen(CZ2).smb2, negotiations=tuple(
        replace(n, server_guid=guid) for n in seen(CZ2).smb2.negotiations)))  # fmt: skip
    audits = cells(seen(CZ1), twin)
    assert cell(audits, 0, "unique").reasons == (f"shares ServerGuid {guid} with SQL01-CZ2",)
    assert cell(audits, 1, "unique").reasons == (f"shares ServerGuid {guid} with SQL01-CZ1",)
    assert cell(audits, 1, "smb2").ok is False and cell(audits, 0, "smb2").ok


def test_audit_marks_a_shared_mac_and_a_wrong_one():
    mac = CZ1.mac.hex(":")
    audits = cells(seen(CZ1), replace(seen(CZ2), nbns=replace(seen(CZ2).nbns, mac=mac)))
    assert cell(audits, 1, "unique").reasons == (f"shares MAC {mac} with SQL01-CZ1",)
    assert cell(audits, 1, "nbns").reasons == (f"MAC {mac}, expected {CZ2.mac.hex(':')}",)


def test_audit_marks_the_public_name_wherever_it_appears():
    result = seen(CZ2)
    leaky = replace(
        result,
        nbss=NbssView(A, called=(CalledView("SQL01-CZ2", A, True), CalledView("SQL01", A, True))),
        ntlm=replace(result.ntlm, nb_computer_name="SQL01"),
    )
    extras = [audit.Extras(), audit.Extras(public_a=("127.0.0.12",))]
    audits = audit.assemble(CONFIG, [seen(CZ1), leaky], extras, None)
    assert cell(audits, 1, "public").reasons == (
        "nbss presents SQL01",
        "ntlm presents SQL01",
        "nbss accepts SQL01 as called name",
        "dns resolves sql01.corp.example to 127.0.0.12",
    )
    assert "NetBIOS computer 'SQL01', expected 'SQL01-CZ2'" in cell(audits, 1, "ntlm").reasons


def test_audit_silent_node_fails_every_served_protocol():
    audits = cells(seen(CZ1), replace(SILENT, address=CZ2.address))
    failing = [name for name, c in audits[1].checks if c.ok is False]
    assert failing == ["dns", "nbns", "nbss", "smb2", "ntlm", "smb1"]
    assert "FAIL silent: connection refused" in audit.to_table(audits)


def test_audit_public_row_must_not_present_a_cozen_name():
    audits = audit.assemble(CONFIG, [seen(CZ1), seen(CZ2)], [audit.Extras()] * 2, seen(CZ1))
    assert cell(audits, 2, "public").ok is False
    assert cell(audits, 0, "unique").ok is False  # the public address answers as SQL01-CZ1


def test_audit_dns_checks_every_listener_and_names_the_failing_one():
    stale = DnsView(A, "", "127.0.0.20:53", CZ2.reverse_names[0], "NXDOMAIN")
    extras = [audit.Extras(), audit.Extras(other_dns=(seen(CZ2).dns, stale))]
    audits = audit.assemble(CONFIG, [seen(CZ1), seen(CZ2)], extras, None)
    assert cell(audits, 1, "dns").reasons == (
        "at 127.0.0.20:53: PTR NXDOMAIN, expected sql01-cz2.corp.example",
    )
