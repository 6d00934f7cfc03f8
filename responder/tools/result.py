"""What a probe saw at one address: typed, per protocol, JSON-ready.

Every view holds plain values only (text, numbers, booleans, tuples), so
:func:`dataclasses.asdict` is the JSON form and the table is a rendering of
the same object. Each view carries a ``status``:

- ``answered``  the protocol answered and the answer decoded;
- ``silent``    no answer within the timeout, connection refused or closed
  before answering (``detail`` says which): nothing was presented;
- ``malformed`` an answer came but our codecs rejected it (``detail``: why).

The names each protocol *presents* (:func:`presented_names`) are what
``probe --expect`` and ``audit`` compare; silence presents no name, so it is
never a wrong name (see :func:`verdict`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Status(StrEnum):
    ANSWERED = "answered"
    SILENT = "silent"
    MALFORMED = "malformed"


#: Protocols in the order discovery tools ask (SolarWinds, LanGuard: DNS, NetBIOS, SMB).
PROTOCOLS = ("dns", "nbns", "nbss", "smb2", "ntlm", "smb1")


@dataclass(frozen=True, slots=True)
class ForwardView:
    """The A lookup of one PTR target: does it point back at the probed address?"""

    name: str
    rcode: str
    addresses: tuple[str, ...]
    points_back: bool


@dataclass(frozen=True, slots=True)
class DnsView:
    """Reverse DNS (PTR) of the address and the forward A of each name found."""

    status: Status
    detail: str = ""
    server: str = ""
    reverse_name: str = ""
    rcode: str = ""
    ptr: tuple[str, ...] = ()
    forward: tuple[ForwardView, ...] = ()

    @property
    def points_back(self) -> bool:
        return any(f.points_back for f in self.forward)


@dataclass(frozen=True, slots=True)
class NbnsName:
    """One node status entry (RFC 1002 §4.2.18)."""

    name: str
    suffix: int
    group: bool
    flags: tuple[str, ...]  # ONT and the state bits: B, ACT, PRM, DRG, CNF

    @property
    def label(self) -> str:
        return f"{self.name}<{self.suffix:02x}>"


@dataclass(frozen=True, slots=True)
class NameQueryView:
    """A unicast name query (RFC 1002 §4.2.12) for a name of the node status table."""

    status: Status
    detail: str = ""
    name: str = ""
    rcode: int | None = None
    addresses: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class NbnsView:
    """NBSTAT node status (nmblookup -A, nbtstat -A) and a name query for its <20> name."""

    status: Status
    detail: str = ""
    names: tuple[NbnsName, ...] = ()
    mac: str = ""
    query: NameQueryView | None = None


@dataclass(frozen=True, slots=True)
class CalledView:
    """One NBSS SESSION REQUEST on 139 and what came back."""

    name: str
    status: Status
    accepted: bool = False
    answer: str = ""  # "positive", or the negative response's code name


@dataclass(frozen=True, slots=True)
class NbssView:
    status: Status
    detail: str = ""
    called: tuple[CalledView, ...] = ()

    @property
    def accepted(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.called if c.accepted)


@dataclass(frozen=True, slots=True)
class DialectView:
    """One SMB2 NEGOTIATE on its own connection: what was offered, what was chosen."""

    offered: tuple[str, ...]
    status: Status
    detail: str = ""
    dialect: str = ""
    server_guid: str = ""
    security_mode: tuple[str, ...] = ()
    capabilities: tuple[str, ...] = ()
    system_time: str = ""  # ISO 8601, UTC
    skew_seconds: float | None = None  # server clock minus ours


@dataclass(frozen=True, slots=True)
class Smb2View:
    status: Status
    detail: str = ""
    negotiations: tuple[DialectView, ...] = ()

    @property
    def server_guid(self) -> str:
        return next((n.server_guid for n in self.negotiations if n.server_guid), "")


@dataclass(frozen=True, slots=True)
class NtlmView:
    """The CHALLENGE's target info (MS-NLMP §2.2.1.2), the names impacket and nmap read."""

    status: Status
    detail: str = ""
    target_name: str = ""
    nb_computer_name: str = ""
    nb_domain_name: str = ""
    dns_computer_name: str = ""
    dns_domain_name: str = ""
    dns_tree_name: str = ""
    os_version: str = ""


@dataclass(frozen=True, slots=True)
class Smb1View:
    """NT LM 0.12 NEGOTIATE and an anonymous SESSION_SETUP_ANDX (nmap smb-os-discovery)."""

    status: Status
    detail: str = ""
    dialect: str = ""
    server_name: str = ""
    domain_name: str = ""
    setup_status: str = ""
    native_os: str = ""
    native_lanman: str = ""
    primary_domain: str = ""


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """Everything one probe of one address saw."""

    address: str
    dns: DnsView
    nbns: NbnsView
    nbss: NbssView
    smb2: Smb2View
    ntlm: NtlmView
    smb1: Smb1View
    expect: str | None = None
    mismatched: tuple[str, ...] = field(default=())
    silent: tuple[str, ...] = field(default=())

    def view(self, protocol: str) -> DnsView | NbnsView | NbssView | Smb2View | NtlmView | Smb1View:
        """The view of ``protocol`` (one of :data:`PROTOCOLS`)."""
        return getattr(self, protocol)  # type: ignore[no-any-return]


# NetBIOS suffixes that carry the computer's own name (workstation, server service);
# <1b>/<1d> are unique too but name the domain/workgroup, and <03> may name a user.
HOST_SUFFIXES = frozenset({0x00, 0x20})
# Called names every SMB server accepts by convention: not a name it presents.
WILDCARD_CALLED = frozenset({"*SMBSERVER", "*SMBSERV"})


def host_label(name: str) -> str:
    """The NetBIOS-comparable form of a host or FQDN: first label, upper-case."""
    return name.rstrip(".").split(".", 1)[0].upper()


def presented_names(result: ProbeResult) -> dict[str, tuple[str, ...]]:
    """The host names each answering protocol presents, as upper-case first labels.

    SMB2 NEGOTIATE carries no name (its identity is the ServerGuid): it never
    appears here.
    """
    names: dict[str, tuple[str, ...]] = {}
    if result.dns.status is Status.ANSWERED:
        names["dns"] = tuple(host_label(n) for n in result.dns.ptr)
    if result.nbns.status is Status.ANSWERED:
        hosts = (n for n in result.nbns.names if not n.group and n.suffix in HOST_SUFFIXES)
        names["nbns"] = tuple(dict.fromkeys(n.name.upper() for n in hosts))
    if result.nbss.status is Status.ANSWERED:
        accepted = (n.upper() for n in result.nbss.accepted if n.upper() not in WILDCARD_CALLED)
        names["nbss"] = tuple(n for n in accepted if n != result.address)
    if result.ntlm.status is Status.ANSWERED:
        ntlm = (result.ntlm.nb_computer_name, result.ntlm.dns_computer_name)
        names["ntlm"] = tuple(dict.fromkeys(host_label(n) for n in ntlm if n))
    if result.smb1.status is Status.ANSWERED and result.smb1.server_name:
        names["smb1"] = (host_label(result.smb1.server_name),)
    return names


def verdict(result: ProbeResult, expect: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(protocols presenting a name other than ``expect``, protocols that were silent).

    Silence is not a wrong name: a host that does not speak a protocol
    presents nothing there, and it is reported apart.
    """
    wanted = host_label(expect)
    names = presented_names(result)
    wrong = tuple(p for p, found in names.items() if any(n != wanted for n in found))
    silent = tuple(p for p in PROTOCOLS if result.view(p).status is Status.SILENT)
    return wrong, silent
