"""The NBNS service follows its addresses: claims when one arrives, releases when it goes.

An address watch stand-in decides what is present; the real wire behaviour
(a release broadcast after the address is gone) is in tests/interop/test_standby.py.
"""

from __future__ import annotations

import asyncio
import ipaddress

from responder.net.addresses import AddressChange, AddressInfo
from responder.services.nbns import NbnsService
from tests.helpers import run_on
from tests.responder.services.test_nbns import make_config

ADDRESS = "127.0.0.11"


class Snapshot:
    """The stand-in's presence and last-known table, as the service snapshots them."""

    def __init__(self, absent: frozenset[str], broadcast: str | None) -> None:
        self.absent = absent
        self.broadcast = broadcast

    def __contains__(self, address: str) -> bool:
        return address not in self.absent

    def get(self, address: str) -> AddressInfo:
        return AddressInfo(address, 8, 1, self.broadcast, True)


class Watch:
    """What AddressWatch offers the service, with presence set by the test."""

    def __init__(self, absent: set[str], broadcast: str | None = None) -> None:
        self.absent = absent
        self.broadcast = broadcast
        self.callbacks: list = []

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def subscribe(self, callback) -> None:
        self.callbacks.append(callback)

    def unsubscribe(self, callback) -> None:
        self.callbacks.remove(callback)

    def present(self, address: str) -> bool:
        return address not in self.absent

    def where(self, address: str) -> AddressInfo:
        return AddressInfo(address, 8, 1, self.broadcast, True)

    def presence(self) -> Snapshot:
        return Snapshot(frozenset(self.absent), self.broadcast)

    def last_known(self) -> Snapshot:
        return Snapshot(frozenset(self.absent), self.broadcast)

    def set(self, address: str, present: bool) -> None:
        (self.absent.discard if present else self.absent.add)(address)
        for callback in self.callbacks:
            callback(AddressChange(address, present, self.where(address)))


def node_status(svc: NbnsService) -> dict:
    return next(n for n in svc.status()["nodes"] if n["address"] == ADDRESS)


async def settled(svc: NbnsService) -> None:
    """Let the re-plan the address change scheduled run to its end."""
    await asyncio.gather(*svc._cleanup)


def test_claims_wait_for_the_address_and_follow_it(loop_kind):
    async def scenario() -> None:
        watch = Watch({ADDRESS})
        broadcasts = {ipaddress.IPv4Address(ADDRESS): ipaddress.IPv4Address("127.0.0.255")}
        svc = NbnsService(
            asyncio.get_running_loop(),
            interfaces=lambda: broadcasts,
            trn_id=lambda: 0x4000,
            addresses=watch,  # type: ignore[arg-type]
        )
        await svc.apply(make_config(), 1)
        try:
            node = svc.view.by_address[ADDRESS]
            assert not node.started and node.nbns.claim is None
            assert node_status(svc)["address_present"] is False
            listeners = {x["address"]: x["address_present"] for x in svc.status()["listeners"]}
            assert listeners == {f"{ADDRESS}:137": False, "127.0.0.12:137": True}
            watch.set(ADDRESS, True)
            await settled(svc)
            node = svc.view.by_address[ADDRESS]
            assert node.started and node_status(svc)["address_present"] is True
            assert {n["claim"] for n in node_status(svc)["names"]} <= {"claiming", "claimed"}
            watch.set(ADDRESS, False)
            await settled(svc)
            assert not svc.view.by_address[ADDRESS].started
            assert node.nbns.claim is not None
            assert {node.nbns.claim.state_of(e.name).value for e in node.nbns.table} <= {
                "releasing",
                "released",
            }
        finally:
            await svc.stop()

    run_on(loop_kind, scenario)


def test_the_broadcast_address_rtnetlink_reported_serves_when_ip_lists_none(loop_kind):
    async def scenario() -> None:
        watch = Watch(set(), broadcast="127.0.0.255")
        svc = NbnsService(
            asyncio.get_running_loop(),
            interfaces=dict,
            trn_id=lambda: 0x4000,
            addresses=watch,  # type: ignore[arg-type]
        )
        await svc.apply(make_config(), 1)
        try:
            assert svc.view.by_address[ADDRESS].plan.broadcast == "127.0.0.255"
            assert "127.0.0.255:137" in svc.bound()
        finally:
            await svc.stop()

    run_on(loop_kind, scenario)
