"""B-node claim and release, driven with an explicit clock."""

from __future__ import annotations

import pytest

from protocols.netbios.claim import BNodeClaim, ClaimEvent, ClaimState
from protocols.netbios.names import NetbiosName
from protocols.netbios.nbns import (
    NameRegistrationRequest,
    NameReleaseRequest,
    NbFlags,
    NmFlags,
    Opcode,
    Rcode,
    RegistrationResponse,
    decode_packet,
)
from protocols.netbios.registration import OwnedName
from tests.helpers import golden

CZ1 = NetbiosName("SQL01-CZ1")
CZ1_SMB = NetbiosName("SQL01-CZ1", 0x20)
CORP = NetbiosName("CORP")
BCAST = ("127.255.255.255", 137)


def make_claim() -> BNodeClaim:
    names = [OwnedName(CZ1, False), OwnedName(CZ1_SMB, False), OwnedName(CORP, True)]
    return BNodeClaim(names, "127.0.0.5", first_trn_id=0x5E36, broadcast=BCAST)


def sent(claim: BNodeClaim) -> list[object]:
    out = claim.datagrams_to_send()
    assert all(dest == BCAST for _, dest in out)
    return [decode_packet(data) for data, _ in out]


def test_three_broadcasts_250ms_apart_then_claimed() -> None:
    claim = make_claim()
    assert claim.next_timer() is None
    claim.start(10.0)
    first = sent(claim)
    assert first[0] == NameRegistrationRequest(
        0x5E36,
        Opcode.REGISTRATION,
        CZ1,
        NmFlags.RD | NmFlags.B,
        300_000,
        NbFlags.ONT_B,
        "127.0.0.5",
    )
    assert isinstance(first[2], NameRegistrationRequest)
    assert first[2].flags == NbFlags.G
    assert claim.next_timer() == pytest.approx(10.25)
    claim.handle_timer(10.1)  # too early: nothing happens
    assert sent(claim) == []
    claim.handle_timer(10.25)
    assert [m.trn_id for m in sent(claim)] == [0x5E36, 0x5E37, 0x5E38]  # type: ignore[attr-defined]
    claim.handle_timer(10.5)
    assert len(sent(claim)) == 3
    assert claim.state_of(CZ1) == ClaimState.CLAIMING
    claim.handle_timer(10.75)
    assert sent(claim) == []
    assert claim.state_of(CZ1) == ClaimState.CLAIMED
    assert claim.next_timer() is None
    assert claim.finished()


def test_matches_nmbd_registration_shape() -> None:
    # nmbd's broadcast registration differs only in TTL (0) and node type (H).
    nmbd = decode_packet(golden("nbns_nmbd_bcast_registration_unique"))
    claim = BNodeClaim(
        [OwnedName(CZ1, False)],
        "127.0.0.5",
        first_trn_id=0x5E38,
        ttl=0,
        node_type=NbFlags.ONT_H,
        broadcast=BCAST,
    )
    claim.start(0.0)
    assert sent(claim) == [nmbd]


def test_negative_response_while_claiming_is_conflict() -> None:
    claim = make_claim()
    claim.start(0.0)
    objection = RegistrationResponse(
        0x5E37,
        Opcode.REGISTRATION,
        CZ1_SMB,
        NmFlags.AA | NmFlags.RD | NmFlags.RA,
        Rcode.ACT_ERR,
        0,
        NbFlags.ONT_B,
        "127.0.0.5",
    )
    claim.receive_message(objection, 0.1)
    assert claim.state_of(CZ1_SMB) == ClaimState.CONFLICT
    assert claim.conflicted() == frozenset({CZ1_SMB.key()})
    assert claim.events() == [ClaimEvent(CZ1_SMB, Rcode.ACT_ERR, "127.0.0.5")]
    assert claim.events() == []
    for t in (0.25, 0.5, 0.75):
        claim.handle_timer(t)
    assert len(sent(claim)) == 3 + 2 + 2  # the conflicted name is no longer sent
    assert claim.state_of(CZ1) == ClaimState.CLAIMED
    assert claim.state_of(CZ1_SMB) == ClaimState.CONFLICT


def test_group_conflict_not_reported_to_node() -> None:
    claim = make_claim()
    claim.start(0.0)
    objection = RegistrationResponse(
        0x5E38, Opcode.REGISTRATION, CORP, NmFlags.AA, Rcode.ACT_ERR, 0, NbFlags.ONT_B, "1.2.3.4"
    )
    claim.receive_message(objection, 0.1)
    assert claim.state_of(CORP) == ClaimState.CONFLICT
    assert claim.conflicted() == frozenset()


def test_positive_and_foreign_responses_ignored() -> None:
    claim = make_claim()
    claim.start(0.0)
    positive = RegistrationResponse(
        0x5E36, Opcode.REGISTRATION, CZ1, NmFlags.AA, 0, 0, NbFlags.ONT_B, "127.0.0.5"
    )
    claim.receive_message(positive, 0.1)
    other = RegistrationResponse(
        0x5E36, Opcode.REGISTRATION, NetbiosName("X"), NmFlags.AA, 6, 0, NbFlags.ONT_B, "1.1.1.1"
    )
    claim.receive_message(other, 0.1)
    assert claim.state_of(CZ1) == ClaimState.CLAIMING


def test_release_broadcasts_three_times_then_released() -> None:
    claim = make_claim()
    claim.start(0.0)
    for t in (0.25, 0.5, 0.75):
        claim.handle_timer(t)
    claim.datagrams_to_send()
    claim.release(5.0)
    releases = sent(claim)
    assert all(isinstance(m, NameReleaseRequest) for m in releases)
    assert releases[0] == NameReleaseRequest(0x5E39, CZ1, NmFlags.B, 0, NbFlags.ONT_B, "127.0.0.5")
    assert not claim.finished()
    claim.handle_timer(5.25)
    claim.handle_timer(5.5)
    assert len(sent(claim)) == 6
    claim.handle_timer(5.75)
    assert claim.state_of(CZ1) == ClaimState.RELEASED
    assert claim.finished()


def test_release_skips_conflicted_names() -> None:
    claim = make_claim()
    claim.start(0.0)
    claim.receive_message(
        RegistrationResponse(
            0x5E36, Opcode.REGISTRATION, CZ1, NmFlags.AA, 6, 0, NbFlags.ONT_B, "127.0.0.5"
        ),
        0.1,
    )
    claim.datagrams_to_send()
    claim.release(0.2)
    assert [m.name for m in sent(claim)] == [CZ1_SMB, CORP]  # type: ignore[attr-defined]


def test_state_of_unknown_name() -> None:
    with pytest.raises(KeyError):
        make_claim().state_of(NetbiosName("NOPE"))
