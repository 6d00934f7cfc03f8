"""Replay of the captures tshark made (tests/data/captures/, written by tests/make_captures.py).

Our daemon's own captures, in pcapng on loopback (Ethernet), classic pcap and
on ``any`` (Linux cooked SLL2), all match. The capture of Samba nmbd/smbd and
Knot serving SQL01-CZ1 differs exactly where a Samba standalone server and a
Knot zone present another identity than ours, and nowhere else: that is the
harness's proof that it sees identity and ignores what legitimately varies.
"""

from __future__ import annotations

import tomllib

import pytest

from responder.config import Config, parse_config
from responder.tools.replay import exit_status, load_segments, replay, summary
from responder.tools.replay_answer import LocalAnswers
from tests.helpers import BASE_CONFIG, DATA

CAPTURES = DATA / "captures"


def _config() -> Config:
    return parse_config(tomllib.loads(BASE_CONFIG), "test")


def _replay(name: str) -> list:  # type: ignore[type-arg]
    segments = load_segments([str(CAPTURES / name)])
    return replay(segments, _config(), LocalAnswers(_config(), segments[0].timestamp))


@pytest.mark.parametrize("name", ["cozen-lo.pcapng", "cozen-lo.pcap", "cozen-any.pcapng"])
def test_our_daemon_captured_by_tshark_matches(name: str) -> None:
    outcomes = _replay(name)
    assert exit_status(outcomes) == 0, [o for o in outcomes if o.verdict != "matched"]
    counts = summary(outcomes)
    assert counts["dns"]["matched"] >= 7
    assert counts["nbns"]["matched"] >= 6
    assert counts["smb"]["matched"] >= 20


# What Knot, nmbd and a standalone smbd present that we do not, field by field.
SAMBA_KNOT_DIFFERENCES = {
    ("dns", "authority SOA corp.example"),  # its SOA MNAME and timers
    ("dns", "authority SOA corp.example ttl"),
    ("nbns", "names"),  # nmbd registers <03> too
    ("nbns", "nm_flags"),  # RA set
    ("nbns", "ttl"),
    ("nbns", "unit_id"),  # MAC 00:00:00:00:00:00
    ("smb", "capabilities"),
    ("smb", "credits"),
    ("smb", "domain"),  # SMB1: its NEGOTIATE carries no names
    ("smb", "server"),
    ("smb", "length"),
    ("smb", "max transact/read/write"),
    ("smb", "negotiate contexts"),
    ("smb", "ntlm dns_computer_name"),  # the host name, not the Cozen FQDN
    ("smb", "ntlm dns_domain_name"),
    ("smb", "ntlm dns_tree_name"),
    ("smb", "ntlm nb_domain_name"),  # standalone: its own name as domain
    ("smb", "ntlm target"),
    ("smb", "status"),  # it lets the anonymous session connect IPC$; we deny
    ("smb", "smb2 command"),  # ... and so answers what follows
}


def test_samba_and_knot_differ_in_identity_only() -> None:
    outcomes = _replay("samba-knot-lo.pcapng")
    assert exit_status(outcomes) == 1
    found = {(o.protocol, line.split(":")[0]) for o in outcomes for line in o.differences}
    assert found == SAMBA_KNOT_DIFFERENCES
    assert all(o.verdict != "unanswered" for o in outcomes)
    counts = summary(outcomes)
    assert counts["dns"]["matched"] >= 5  # the A and PTR answers are the same records


def test_every_capture_is_small() -> None:
    for path in CAPTURES.iterdir():
        assert path.stat().st_size < 100_000, path
