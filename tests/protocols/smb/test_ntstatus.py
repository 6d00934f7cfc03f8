"""NtStatus values against impacket's independent table and the wire layout."""

import pytest
from impacket import nt_errors

from protocols.smb import smb1
from protocols.smb.ntstatus import NtStatus

ABSENT_FROM_IMPACKET = {NtStatus.NO_PREAUTH_INTEGRITY_HASH_OVERLAP, NtStatus.SMB_BAD_TID}


@pytest.mark.parametrize("status", [s for s in NtStatus if s not in ABSENT_FROM_IMPACKET])
def test_value_matches_impacket(status):
    assert status == getattr(nt_errors, f"STATUS_{status.name}")


def test_preauth_overlap_value():
    # MS-SMB2 §3.3.5.4; absent from impacket's table.
    assert NtStatus.NO_PREAUTH_INTEGRITY_HASH_OVERLAP == 0xC05D0000


def test_smb_bad_uid_is_errsrv_errbaduid_on_the_wire():
    message = smb1.encode_error_response(smb1.Header(0x75, status=NtStatus.SMB_BAD_UID))
    assert message[5:9] == b"\x02\x00\x5b\x00"  # ErrorClass ERRSRV, reserved, ErrorCode 0x005B


def test_smb_bad_tid_is_errsrv_errinvtid_on_the_wire():
    # MS-CIFS §2.2.2.4: STATUS_SMB_BAD_TID 0x00050002 = ERRSRV (0x02) / ERRinvtid (0x0005)
    message = smb1.encode_error_response(smb1.Header(0x71, status=NtStatus.SMB_BAD_TID))
    assert message[5:9] == b"\x02\x00\x05\x00"
