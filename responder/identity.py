"""What each node presents on its management address, derived once per config load.

A node's identity on the wire is its Cozen FQDN and reverse names (DNS), its
NetBIOS name table and MAC (NBNS node status), the called names it accepts
(NBSS), its ServerGuid (SMB NEGOTIATE) and its NTLM target info (the
CHALLENGE). All of it follows from the node's Cozen name and management
address, the cluster's names and a few settings; this module is the one
place that does the deriving (DESIGN.md "Identity model"). The services
build their answers from it, ``check`` prints it, and whatever later compares
the network's view with the config (audit, DNS registration) reads it too.

The first three functions take plain names, not a config: config validation
uses them for its defaults and duplicate checks, and this module reads the
config only under type checking, so the two never import each other at run
time.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from protocols.auth.ntlmssp import NtlmIdentity
from protocols.dns.authority import AuthoritySettings, HostRecords
from protocols.dns.ownership import NodeNames, RecordSet, mac_dhcid, plan_record_sets
from protocols.dns.serial import next_serial, zone_digest
from protocols.netbios.nbns import NbFlags
from protocols.netbios.node import NbnsIdentity, build_name_table
from protocols.netbios.registration import OwnedName
from protocols.smb.session import SmbIdentity, default_called_names
from protocols.smb.windows import windows_server

if TYPE_CHECKING:
    from responder.config import Config, Node

# Fixed namespace for derived identities; changing it would change every node's GUID.
_IDENTITY_NAMESPACE = uuid.UUID("6c1f1e2a-5d1b-4c59-9a53-2f0c8f3b7e10")


def cozen_fqdn(name: str, dns_domain: str) -> str:
    """``lower(name) + "." + dns_domain``: a node's Cozen FQDN, or the public one."""
    return f"{name.lower()}.{dns_domain}"


def derived_mac(cozen_name: str) -> bytes:
    """A stable locally administered unicast MAC for a node without ``mac``."""
    digest = hashlib.sha256(b"cozen-responder/mac/" + cozen_name.encode()).digest()
    return bytes([(digest[0] & 0xFC) | 0x02]) + digest[1:6]


def derived_server_guid(cluster_name: str, cozen_name: str) -> uuid.UUID:
    """A stable ServerGuid from the cluster and Cozen names (never shared by two nodes)."""
    return uuid.uuid5(_IDENTITY_NAMESPACE, f"{cluster_name}/{cozen_name}")


@dataclass(frozen=True, slots=True)
class NodeIdentity:
    """Everything one node presents, per protocol."""

    cozen_name: str  # upper-case NetBIOS form
    fqdn: str
    ipv4: ipaddress.IPv4Address
    ipv6: ipaddress.IPv6Address | None
    reverse_names: tuple[str, ...]  # PTR owners of ipv4 (and ipv6), no trailing dot
    mac: bytes  # NBSTAT unit ID
    server_guid: uuid.UUID  # SMB ServerGuid
    nbns: NbnsIdentity
    netbios_names: tuple[OwnedName, ...]  # the NBNS name table, in node status order
    called_names: frozenset[str]  # NBSS called names accepted on 139 (empty without SMB)
    ntlm: NtlmIdentity
    dhcid: bytes  # RFC 4701 DHCID RDATA marking its names in the site's DNS (from mac + fqdn)

    @property
    def address(self) -> str:
        """The management IPv4 address as text: the key services index nodes by."""
        return str(self.ipv4)


def node_identity(config: Config, node: Node) -> NodeIdentity:
    """What ``node`` presents under ``config``."""
    cluster = config.cluster
    fqdn = cozen_fqdn(node.cozen_name, cluster.dns_domain)
    nbns = NbnsIdentity(
        cozen_name=node.cozen_name,
        workgroup=cluster.workgroup,
        ipv4=str(node.management_ip),
        mac=node.mac,
        serve_smb=config.smb.enabled,
        public_name=cluster.name,
        ttl=config.netbios.ttl,
        node_type=NbFlags.ONT_H if config.netbios.wins_server else NbFlags.ONT_B,
    )
    called: frozenset[str] = frozenset()
    if config.smb.enabled:
        called = default_called_names(node.cozen_name, str(node.management_ip))
    return NodeIdentity(
        cozen_name=node.cozen_name,
        fqdn=fqdn,
        ipv4=node.management_ip,
        ipv6=node.management_ipv6,
        reverse_names=tuple(a.reverse_pointer for a in node.addresses),
        mac=node.mac,
        server_guid=node.server_guid,
        nbns=nbns,
        netbios_names=build_name_table(nbns),
        called_names=called,
        ntlm=NtlmIdentity(
            nb_computer_name=node.cozen_name,
            nb_domain_name=cluster.workgroup,
            dns_computer_name=fqdn,
            dns_domain_name=cluster.dns_domain,
            dns_tree_name=cluster.dns_domain,
            version=config.smb.os_version,
        ),
        dhcid=mac_dhcid(node.mac, fqdn),
    )


# The last few configs' identities, by the config object itself: on a reload every service
# asks for the same new config's (and, on a rollback, the old one's) in turn.
_IDENTITY_CACHE: list[tuple[Config, tuple[NodeIdentity, ...]]] = []
_IDENTITY_CACHE_SIZE = 3


def node_identities(config: Config) -> tuple[NodeIdentity, ...]:
    """Every node's identity, in config order; derived once per config object.

    The daemon derives a new config's identities off the event loop (see
    :mod:`responder.offload`), so the services that ask next find them here.
    """
    for known, identities in _IDENTITY_CACHE:
        if known is config:
            return identities
    identities = tuple(node_identity(config, node) for node in config.nodes)
    _IDENTITY_CACHE.insert(0, (config, identities))
    del _IDENTITY_CACHE[_IDENTITY_CACHE_SIZE:]
    return identities


def public_fqdns(config: Config) -> tuple[str, ...]:
    """The production names no management address may present (DNS answers REFUSED)."""
    return (cozen_fqdn(config.cluster.name, config.cluster.dns_domain),)


def dns_zone(config: Config, serial: int) -> AuthoritySettings:
    """The authoritative zone: every node's A/AAAA and PTR, the apex SOA and NS."""
    cluster, dns = config.cluster, config.dns
    hosts = [
        HostRecords(
            fqdn=node.fqdn,
            ipv4=(str(node.ipv4),),
            ipv6=(str(node.ipv6),) if node.ipv6 else (),
        )
        for node in node_identities(config)
    ]
    if dns.ns_name.endswith("." + cluster.dns_domain):
        # In-zone name server: publish its addresses (glue), but no PTR for them.
        hosts.append(
            HostRecords(
                fqdn=dns.ns_name,
                ipv4=tuple(str(a) for a in dns.listen if a.version == 4),
                ipv6=tuple(str(a) for a in dns.listen if a.version == 6),
                reverse=False,
            )
        )
    return AuthoritySettings(
        domain=cluster.dns_domain,
        hosts=tuple(hosts),
        public_names=public_fqdns(config),
        ns_name=dns.ns_name,
        hostmaster=dns.hostmaster,
        serial=serial,
        ttl=dns.ttl,
        negative_ttl=dns.negative_ttl,
        refresh=dns.refresh,
        retry=dns.retry,
        expire=dns.expire,
        identity=dns.identity,
        version=dns.version,
    )


#: (zone digest, serial) in force; None before the first config of a process
ZoneSerial = tuple[bytes, int]
_EMBEDDED_SERIAL_BASE = 1  # the embedded example config has no file time


def zone_serial(config: Config, previous: ZoneSerial | None) -> ZoneSerial:
    """The SOA serial for ``config`` (:mod:`protocols.dns.serial` explains the design).

    The base is the config file's modification time, read here; ``previous``
    is what this process serves now.
    """
    digest = zone_digest(dns_zone(config, 0))
    return digest, next_serial(_source_time(config.source), digest, previous)


def _source_time(source: str) -> int:
    try:
        return int(os.stat(source).st_mtime)
    except OSError:  # the embedded example, or a file gone since it was read
        return _EMBEDDED_SERIAL_BASE


def smb_identity(config: Config, node: NodeIdentity) -> SmbIdentity:
    """What ``node`` presents over SMB: the Windows Server row of ``smb.os_version``.

    The row (:func:`protocols.smb.windows.windows_server`, the nearest release
    at or below the configured build) fixes the NEGOTIATE details, among them
    ServerStartTime 0 as Windows 10 / Server 2016 and later send it.
    """
    smb = config.smb
    return SmbIdentity(
        ntlm=node.ntlm,
        server_guid=node.server_guid.bytes_le,
        workgroup=config.cluster.workgroup,
        cozen_name=node.cozen_name,
        accepted_called_names=node.called_names,
        windows=windows_server(smb.os_version[2]),
        smb1=smb.smb1,
        max_dialect=smb.max_dialect,
        native_os=smb.native_os,
        native_lanman=smb.native_lanman,
        null_session=smb.null_session,
    )


def dns_registrations(config: Config) -> tuple[RecordSet, ...]:
    """What ``[registration.dns]`` registers: each node's A/AAAA + DHCID at its FQDN in the
    zone, PTR + DHCID at each reverse name in its reverse zone (none when it is off)."""
    settings = config.registration
    if settings is None:
        return ()
    nodes = [
        NodeNames(
            n.cozen_name, n.fqdn, tuple(a for a in (n.ipv4, n.ipv6) if a is not None), n.dhcid
        )
        for n in node_identities(config)
    ]
    return plan_record_sets(settings.zone, settings.reverse_zones, nodes, settings.ttl)
