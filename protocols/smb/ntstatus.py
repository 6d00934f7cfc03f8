"""The NTSTATUS values the SMB server sends or reads, in one enumeration.

Theory of operation
-------------------
SMB2 carries a 32-bit NTSTATUS in every header (MS-SMB2 §2.2.1.2, Status);
SMB1 carries the same value when FLAGS2_NT_STATUS is set (MS-CIFS §2.2.3.1).
The values are those of MS-ERREF §2.3.1, written ``STATUS_`` there; here the
prefix is dropped.  One value is not an NT status code: STATUS_SMB_BAD_UID
(MS-CIFS §2.2.2.4) is the SMB1 DOS error ERRSRV/ERRbaduid packed into the
32-bit Status field (ErrorClass 0x02, reserved byte, ErrorCode 0x005B), which
Windows and Samba send for an SMB1 request on an unknown UID even when
NT status codes were negotiated.

Codecs that report a problem the peer should be told about pass one of these
as ``answer_hint`` (see :mod:`protocols.errors`).
"""

from __future__ import annotations

import enum


class NtStatus(enum.IntEnum):
    """MS-ERREF §2.3.1 NTSTATUS values (and MS-CIFS §2.2.2.4's SMB_BAD_UID and SMB_BAD_TID)."""

    SUCCESS = 0x00000000
    MORE_PROCESSING_REQUIRED = 0xC0000016
    INVALID_PARAMETER = 0xC000000D
    ACCESS_DENIED = 0xC0000022
    NETWORK_NAME_DELETED = 0xC00000C9
    NOT_SUPPORTED = 0xC00000BB
    LOGON_FAILURE = 0xC000006D
    USER_SESSION_DELETED = 0xC0000203
    REQUEST_NOT_ACCEPTED = 0xC00000D0
    NO_PREAUTH_INTEGRITY_HASH_OVERLAP = 0xC05D0000
    SMB_BAD_UID = 0x005B0002
    SMB_BAD_TID = 0x00050002
