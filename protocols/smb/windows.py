"""What a Windows Server of a given build puts in its NEGOTIATE responses (sans-IO data).

Theory of operation
-------------------
A scanner tells Windows from everything else by the NEGOTIATE response: nmap's
service database (``nmap-service-probes``, probe ``SMBProgNeg``) matches the
SMB1 response byte for byte up to the challenge, and SMB2 tools print the
capabilities, sizes and ServerStartTime.  :data:`WINDOWS_SERVERS` holds one
:class:`WindowsServer` row per release, keyed by the build number of
``smb.os_version``; :func:`windows_server` picks the row of a build (the
nearest lower row for a build in between, the oldest row below them all).

SMB2 (MS-SMB2 §2.2.4 and the "Product Behavior" notes of §3.3.5.4):

- SecurityMode is SIGNING_ENABLED: signing is required by default only on
  domain controllers, and this server presents a member server.
- Capabilities: DFS from 2.0.2; LEASING and LARGE_MTU from 2.1, and for
  the 0x02FF answer to an SMB1 "SMB 2.???" negotiate (§3.3.5.3.1) -- LARGE_MTU
  only when Connection.SupportsMultiCredit, i.e. on TCP 445, not on
  NetBIOS 139 (§3.3.5.3.1, §3.3.5.4);
  MULTI_CHANNEL and DIRECTORY_LEASING from 3.0 (Windows Server 2012 and
  later); ENCRYPTION only for 3.0 and 3.0.2 -- for 3.1.1 encryption is
  negotiated by context (§3.3.5.4: "if Connection.Dialect is 3.0 or 3.0.2 and
  ... IsEncryptionSupported, the server MUST set SMB2_GLOBAL_CAP_ENCRYPTION").
  PERSISTENT_HANDLES belongs to continuously available (cluster) shares and
  is not set by a stand-alone server.  Windows Server 2022: 0x2F at 3.1.1,
  0x6F at 3.0/3.0.2, 0x07 at 2.1, 0x01 at 2.0.2.
- MaxTransactSize / MaxReadSize / MaxWriteSize: 8 MiB from 2.1 and for the
  0x02FF answer (Windows 8 / Server 2012 and later; §3.3.5.3.1 asks only for
  at least 65536), 64 KiB for 2.0.2 (the sizes of the 2.0.2 family,
  §3.3.5.3.2 notes).
- ServerStartTime: 0 ("<...> Windows 10 and Windows Server 2016 and later set
  ServerStartTime to zero").
- Negotiate contexts answered at 3.1.1 (each only when the client sent it):
  PREAUTH_INTEGRITY and ENCRYPTION from Server 2016; COMPRESSION from build
  18362 (Windows 10 v1903 / Server v1903), so Server 2022 and 2025;
  SIGNING_CAPABILITIES and RDMA_TRANSFORM from Server 2022; TRANSPORT
  (SMB over QUIC) on Server 2025.  RDMA_TRANSFORM and TRANSPORT concern
  RDMA and QUIC connections; over TCP this server never answers them
  (the row records what the release supports, :mod:`~protocols.smb.negotiate`
  answers what TCP needs).

SMB1 (MS-CIFS §2.2.4.52.2, MS-SMB §2.2.4.5.2) for the NT LM 0.12 answer of a
server SKU, as nmap's "Windows Server 2008 R2 - 2012" lines match it:
MaxMpxCount 50, MaxNumberVcs 1, MaxBufferSize 16644, MaxRawSize 65536,
SessionKey 0, Capabilities 0x0001F3FC (UNICODE, LARGE_FILES, NT_SMBS,
RPC_REMOTE_APIS, STATUS32, LEVEL_II_OPLOCKS, LOCK_AND_READ, NT_FIND, DFS,
INFOLEVEL_PASSTHRU, LARGE_READX, LARGE_WRITEX, LWIO) plus EXTENDED_SECURITY
when the client asked for it, and SecurityMode USER | ENCRYPT_PASSWORDS.
Windows Server 2016 and later keep the SMB1 server unchanged (and off unless
installed), so every row carries those values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from protocols.smb.negotiate import Capabilities, ContextType, Dialect
from protocols.smb.smb2 import SecurityMode

_SMB3 = (Dialect.SMB300, Dialect.SMB302, Dialect.SMB311)
_BASE_CONTEXTS: Final = frozenset(
    {ContextType.PREAUTH_INTEGRITY_CAPABILITIES, ContextType.ENCRYPTION_CAPABILITIES}
)

#: MS-SMB §2.2.4.5.2 Capabilities of a Windows server SKU (no EXTENDED_SECURITY).
SMB1_CAPABILITIES: Final = 0x0001F3FC
SMB1_MAX_MPX_COUNT: Final = 50
SMB1_MAX_BUFFER_SIZE: Final = 16644
SMB1_MAX_RAW_SIZE: Final = 65536


@dataclass(frozen=True, slots=True)
class WindowsServer:
    """One Windows Server release's NEGOTIATE details (see the module comment)."""

    name: str
    build: int
    contexts: frozenset[ContextType]
    max_size: int = 8 * 1024 * 1024
    small_size: int = 64 * 1024
    server_start_time: int = 0
    security_mode: SecurityMode = SecurityMode.SIGNING_ENABLED

    def capabilities(self, dialect: int, *, multi_credit: bool = True) -> Capabilities:
        """SMB2 Capabilities sent for ``dialect`` (MS-SMB2 §3.3.5.3.1, §3.3.5.4).

        ``multi_credit`` is Connection.SupportsMultiCredit: True on TCP 445,
        False on NetBIOS 139; it decides LARGE_MTU from 2.1 on.
        """
        caps = Capabilities.DFS
        if dialect == Dialect.SMB202:
            return caps
        caps |= Capabilities.LEASING
        if multi_credit:
            caps |= Capabilities.LARGE_MTU
        if dialect == Dialect.WILDCARD:
            return caps
        if dialect in _SMB3:
            caps |= Capabilities.MULTI_CHANNEL | Capabilities.DIRECTORY_LEASING
        if dialect in (Dialect.SMB300, Dialect.SMB302):
            caps |= Capabilities.ENCRYPTION
        return caps

    def max_sizes(self, dialect: int) -> int:
        """MaxTransactSize = MaxReadSize = MaxWriteSize for ``dialect``."""
        return self.small_size if dialect == Dialect.SMB202 else self.max_size

    def answers(self, context_type: int) -> bool:
        """True if this release answers a 3.1.1 context of ``context_type``."""
        return context_type in self.contexts


WINDOWS_SERVERS: Final = (
    WindowsServer("Windows Server 2016", 14393, _BASE_CONTEXTS),
    WindowsServer("Windows Server 2019", 17763, _BASE_CONTEXTS),
    WindowsServer(
        "Windows Server 2022",
        20348,
        _BASE_CONTEXTS
        | {
            ContextType.COMPRESSION_CAPABILITIES,
            ContextType.SIGNING_CAPABILITIES,
            ContextType.RDMA_TRANSFORM_CAPABILITIES,
        },
    ),
    WindowsServer(
        "Windows Server 2025",
        26100,
        _BASE_CONTEXTS
        | {
            ContextType.COMPRESSION_CAPABILITIES,
            ContextType.SIGNING_CAPABILITIES,
            ContextType.RDMA_TRANSFORM_CAPABILITIES,
            ContextType.TRANSPORT_CAPABILITIES,
        },
    ),
)


def windows_server(build: int) -> WindowsServer:
    """The row for ``build``: the nearest row at or below it, else the oldest row."""
    below = [row for row in WINDOWS_SERVERS if row.build <= build]
    return below[-1] if below else WINDOWS_SERVERS[0]
