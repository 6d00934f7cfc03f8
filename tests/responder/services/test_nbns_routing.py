"""NBNS routing: one decode per broadcast datagram, responses reach retiring nodes."""

from __future__ import annotations

import asyncio
import logging
import time

import protocols.netbios.node as node_module
import responder.services.nbns as nbns_service
from protocols.netbios.names import NetbiosName
from protocols.netbios.nbns import (
    NameQueryRequest,
    NameQueryResponse,
    NameReleaseRequest,
    NbnsMessage,
    NmFlags,
)
from protocols.netbios.nbns_encode import encode_packet
from tests.helpers import BASE_CONFIG, run_on
from tests.responder.services.test_nbns import Client, FakeWins, make_config, service

WINS = '\n[netbios]\nwins_server = "127.0.0.53"\n'


def test_broadcast_missing_every_fast_path_is_decoded_once(loop_kind, monkeypatch):
    decoded: list[bytes] = []

    def counting(data: bytes) -> NbnsMessage:
        decoded.append(data)
        return node_module.decode_packet(data)

    monkeypatch.setattr(nbns_service, "decode_packet", counting)

    async def scenario() -> None:
        both = {"127.0.0.11": "127.0.0.255", "127.0.0.12": "127.0.0.255"}
        svc = service(asyncio.get_running_loop(), both)
        await svc.apply(make_config(), 1)
        client = Client()
        try:
            # Lower case misses both nodes' fast paths; only CZ2 answers.
            question = NetbiosName("sql01-cz2")
            request = NameQueryRequest(8, question, NmFlags.RD | NmFlags.B)
            client.send(request, "127.0.0.255")
            got = await client.receive()
            assert got is not None and got[1] == ("127.0.0.12", 137)
            assert isinstance(got[0], NameQueryResponse) and got[0].name == question
            assert await client.silent()
            # (The nodes' own claims arrive on the broadcast socket too.)
            assert decoded.count(encode_packet(request)) == 1
        finally:
            client.close()
            await svc.stop()

    run_on(loop_kind, scenario)


def test_release_responses_reach_a_retiring_node_sharing_its_address(loop_kind, caplog):
    # SQL01-CZ1 becomes SQL01-CZ7 on the same address: the old node releases its
    # names while the new one registers, and the server answers both on 127.0.0.11.
    async def scenario() -> None:
        svc = service(asyncio.get_running_loop())
        wins = FakeWins(ttl=60)
        await svc.apply(make_config(WINS), 1)
        try:
            await wins.serve(time.monotonic() + 1.5)  # a WACK, then registered
            renamed = BASE_CONFIG.replace("SQL01-CZ1", "SQL01-CZ7")
            await svc.apply(make_config(WINS, renamed), 2)
            [old] = svc.retiring
            assert old.plan.address == "127.0.0.11"
            assert svc.view.by_address["127.0.0.11"].plan.identity.cozen_name == "SQL01-CZ7"
            await wins.serve(time.monotonic() + 0.5)
            # Answered, not timed out: the first release resend is due after 1 s.
            assert old.nbns.finished()
            assert svc.retiring == []  # let go at once, not at the next refresh (30 s away)
            assert {n["wins"] for n in old.nbns.status()["names"]} == {"released"}  # type: ignore[attr-defined]
            client = Client()
            reply = await query_cz7(client)
            client.close()
            assert isinstance(reply, NameQueryResponse)
        finally:
            stopping = asyncio.ensure_future(svc.stop())
            await wins.serve(time.monotonic() + 1.0)
            await stopping
            wins.peer.close()
        released = [m for m in wins.seen if isinstance(m, NameReleaseRequest)]
        assert sum(1 for m in released if str(m.name) == "SQL01-CZ1<00>") == 1

    with caplog.at_level(logging.INFO, logger="responder.services.nbns"):
        run_on(loop_kind, scenario)
    assert "nbns: WINS 127.0.0.53: SQL01-CZ1<00> for 127.0.0.11 is released" in caplog.text


async def query_cz7(client: Client) -> object:
    client.send(NameQueryRequest(0x1234, NetbiosName("SQL01-CZ7")), "127.0.0.11")
    got = await client.receive()
    return None if got is None else got[0]
