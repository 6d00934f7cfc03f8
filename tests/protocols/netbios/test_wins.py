"""WINS client: register, WACK, refresh, conflict, backoff, release; explicit clock."""

from __future__ import annotations

import pytest

from protocols.netbios.names import NetbiosName
from protocols.netbios.nbns import (
    NameRegistrationRequest,
    NameReleaseRequest,
    NbFlags,
    NmFlags,
    Opcode,
    Rcode,
    RegistrationResponse,
    ReleaseResponse,
    WaitForAck,
    decode_packet,
)
from protocols.netbios.registration import OwnedName
from protocols.netbios.wins import WinsClient, WinsEvent, WinsNameStatus, WinsState
from tests.helpers import golden

CZ1 = NetbiosName("SQL01-CZ1")
CORP = NetbiosName("CORP")
SERVER = ("127.0.0.53", 137)


def make_client(**kwargs: float) -> WinsClient:
    names = [OwnedName(CZ1, False), OwnedName(CORP, True)]
    return WinsClient(names, "127.0.0.5", SERVER, first_trn_id=0x100, **kwargs)  # type: ignore[arg-type]


def sent(client: WinsClient) -> list[object]:
    out = client.datagrams_to_send()
    assert all(dest == SERVER for _, dest in out)
    return [decode_packet(data) for data, _ in out]


def answer(
    client: WinsClient, request: object, now: float, *, rcode: int = 0, ttl: int = 600
) -> None:
    assert isinstance(request, NameRegistrationRequest)
    response = RegistrationResponse(
        request.trn_id,
        request.opcode,
        request.name,
        NmFlags.AA | NmFlags.RD | NmFlags.RA,
        rcode,
        ttl,
        request.flags,
        request.address,
    )
    client.receive_message(response, now)


def test_registers_each_name_unicast() -> None:
    client = make_client()
    client.start(0.0)
    requests = sent(client)
    assert requests == [
        NameRegistrationRequest(
            0x100, Opcode.REGISTRATION, CZ1, NmFlags.RD, 300_000, NbFlags.ONT_H, "127.0.0.5"
        ),
        NameRegistrationRequest(
            0x101,
            Opcode.REGISTRATION,
            CORP,
            NmFlags.RD,
            300_000,
            NbFlags.ONT_H | NbFlags.G,
            "127.0.0.5",
        ),
    ]
    assert client.state_of(CZ1) == WinsState.REGISTERING


def test_positive_response_then_refresh_at_half_ttl() -> None:
    client = make_client()
    client.start(0.0)
    first = sent(client)
    answer(client, first[0], 1.0, ttl=600)
    assert client.state_of(CZ1) == WinsState.REGISTERED
    assert client.status()[0] == WinsNameStatus(CZ1, WinsState.REGISTERED, 600, 0, 301.0)
    answer(client, first[1], 1.0, ttl=0)  # infinite TTL: never refreshed
    assert client.next_timer() == 301.0
    client.handle_timer(301.0)
    (refresh,) = sent(client)
    assert isinstance(refresh, NameRegistrationRequest)
    assert (refresh.opcode, refresh.nm_flags, refresh.trn_id) == (
        Opcode.REFRESH,
        NmFlags.NONE,
        0x102,
    )
    answer(client, refresh, 302.0, ttl=1000)
    assert client.status()[0].ttl == 1000
    assert client.next_timer() == 802.0


def test_resends_then_unreachable_with_bounded_backoff() -> None:
    client = make_client(backoff_initial=30.0, backoff_max=100.0)
    client.start(0.0)
    sent(client)
    client.handle_timer(5.0)
    client.handle_timer(10.0)
    assert len(sent(client)) == 4  # two names, two resends each
    client.handle_timer(15.0)
    assert client.state_of(CZ1) == WinsState.UNREACHABLE
    assert client.next_timer() == 45.0
    delays = []
    now = 15.0
    for _ in range(4):
        now = client.next_timer()  # type: ignore[assignment]
        client.handle_timer(now)  # fresh registration
        assert client.state_of(CZ1) == WinsState.REGISTERING
        for _ in range(3):
            now += 5.0
            client.handle_timer(now)
        delays.append(client.next_timer() - now)  # type: ignore[operator]
    assert delays == [60.0, 100.0, 100.0, 100.0]
    late = sent(client)[-2]
    answer(client, late, now + 1)  # no transaction in flight: ignored
    assert client.state_of(CZ1) == WinsState.UNREACHABLE
    now = client.next_timer()  # type: ignore[assignment]
    client.handle_timer(now)
    answer(client, sent(client)[0], now + 1)
    assert client.state_of(CZ1) == WinsState.REGISTERED


def test_wack_extends_the_wait() -> None:
    client = make_client()
    client.start(0.0)
    request = sent(client)[0]
    assert isinstance(request, NameRegistrationRequest)
    client.receive_message(WaitForAck(request.trn_id, CZ1, NmFlags.AA, 40, 0x2900), 1.0)
    client.handle_timer(5.0)
    client.handle_timer(10.0)
    assert [m.name for m in sent(client)] == [CORP, CORP]  # type: ignore[attr-defined]
    assert client.state_of(CZ1) == WinsState.REGISTERING
    client.handle_timer(41.0)  # WACK expired without an answer: resend
    assert [m.name for m in sent(client)] == [CZ1]  # type: ignore[attr-defined]


def test_wack_ttl_is_capped() -> None:
    client = make_client(max_wack=60.0)
    client.start(0.0)
    request = sent(client)[0]
    assert isinstance(request, NameRegistrationRequest)
    client.receive_message(WaitForAck(request.trn_id, CZ1, NmFlags.AA, 10**6, 0x2900), 1.0)
    assert client.status()[0].next_event == 61.0


def test_negative_response_is_conflict() -> None:
    client = make_client()
    client.start(0.0)
    first = sent(client)
    answer(client, first[0], 1.0, rcode=Rcode.ACT_ERR)
    assert client.state_of(CZ1) == WinsState.CONFLICT
    assert client.conflicted() == frozenset({CZ1.key()})
    assert client.events() == [WinsEvent(CZ1, Rcode.ACT_ERR)]
    answer(client, first[1], 1.0, rcode=Rcode.ACT_ERR)
    assert client.state_of(CORP) == WinsState.CONFLICT
    assert client.conflicted() == frozenset({CZ1.key()})  # groups never reported
    assert client.next_timer() is None


def test_stale_or_foreign_responses_ignored() -> None:
    client = make_client()
    client.start(0.0)
    request = sent(client)[0]
    assert isinstance(request, NameRegistrationRequest)
    wrong_id = RegistrationResponse(
        request.trn_id + 7, Opcode.REGISTRATION, CZ1, NmFlags.AA, 6, 0, NbFlags.ONT_H, "127.0.0.5"
    )
    client.receive_message(wrong_id, 1.0)
    assert client.state_of(CZ1) == WinsState.REGISTERING


def test_release_on_stop() -> None:
    client = make_client(release_retry_timeout=1.0)
    client.start(0.0)
    first = sent(client)
    answer(client, first[0], 1.0)
    client.release(2.0)
    releases = sent(client)
    assert len(releases) == 2  # registered and still-registering names
    release = releases[0]
    assert isinstance(release, NameReleaseRequest)
    assert (release.name, release.nm_flags, release.ttl) == (CZ1, NmFlags.NONE, 0)
    response = ReleaseResponse(release.trn_id, CZ1, NmFlags.AA, 0, 0, NbFlags.ONT_H, "127.0.0.5")
    client.receive_message(response, 2.1)
    assert client.state_of(CZ1) == WinsState.RELEASED
    client.handle_timer(3.0)
    client.handle_timer(4.0)
    assert not client.finished()
    client.handle_timer(5.0)
    assert client.state_of(CORP) == WinsState.RELEASED
    assert client.finished()
    assert len(sent(client)) == 2


def test_release_of_unreachable_name_sends_nothing() -> None:
    client = make_client()
    client.start(0.0)
    for t in (5.0, 10.0, 15.0):
        client.handle_timer(t)
    client.datagrams_to_send()
    client.release(16.0)
    assert sent(client) == []
    assert client.state_of(CZ1) == WinsState.RELEASED


def test_state_of_unknown_name() -> None:
    with pytest.raises(KeyError):
        make_client().state_of(NetbiosName("NOPE"))


def test_real_nmbd_wack_then_refusal() -> None:
    # Captured: nmbd (WINS) answered our registration of SQL01-CZ2, owned by another
    # live client, with a WACK of 60 s, challenged the owner, then refused: ACT_ERR.
    wack = golden("nbns_nmbd_wins_wack")
    refusal = golden("nbns_nmbd_wins_act_err_registration_response")
    name = NetbiosName("SQL01-CZ2")
    client = WinsClient([OwnedName(name, False)], "127.0.0.9", SERVER, first_trn_id=0x4000)
    client.start(0.0)
    client.receive_message(decode_packet(wack), 0.5)
    assert client.next_timer() == 60.5
    client.receive_message(decode_packet(refusal), 2.0)
    assert client.state_of(name) == WinsState.CONFLICT
    assert client.events() == [WinsEvent(name, Rcode.ACT_ERR)]
