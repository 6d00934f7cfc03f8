"""Replay: a request named in a few words, for the report (``PTR 12.0.0.127.in-addr.arpa?``)."""

from __future__ import annotations

import struct

from protocols.dns import message as dns
from protocols.errors import MalformedMessage
from protocols.netbios import nbns

_SMB2_COMMANDS = {0: "NEGOTIATE", 1: "SESSION_SETUP", 2: "LOGOFF", 3: "TREE_CONNECT", 13: "ECHO"}
_SMB1_COMMANDS = {0x72: "NEGOTIATE", 0x73: "SESSION_SETUP_ANDX", 0x74: "LOGOFF_ANDX", 0x2B: "ECHO"}
_NBSS = {0x81: "NBSS SESSION REQUEST", 0x85: "NBSS KEEP ALIVE"}


def label(protocol: str, request: bytes) -> str:
    """A few words naming ``request``; never raises."""
    if protocol == "dns":
        return _dns(request)
    if protocol == "nbns":
        return _nbns(request)
    return _smb(request)


def _dns(request: bytes) -> str:
    try:
        question = dns.decode_message(request).questions[0]
    except (MalformedMessage, IndexError):
        return f"{len(request)} bytes"
    known = question.qtype in dns.RRType._value2member_map_
    qtype = dns.RRType(question.qtype).name if known else str(question.qtype)
    return f"{qtype} {dns.name_to_text(question.name).rstrip('.').lower()}?"


def _nbns(request: bytes) -> str:
    try:
        message = nbns.decode_packet(request)
    except MalformedMessage:
        return f"{len(request)} bytes"
    name = getattr(message, "name", None)
    return f"{type(message).__name__} {name}" if name is not None else type(message).__name__


def _smb(frame: bytes) -> str:
    if frame[:1] != b"\x00":
        return _NBSS.get(frame[0], f"NBSS type {frame[0]:#04x}")
    message = frame[4:]
    if message[:4] == b"\xfeSMB" and len(message) >= 14:
        command = struct.unpack_from("<H", message, 12)[0]
        return f"SMB2 {_SMB2_COMMANDS.get(command, str(command))}"
    if message[:4] == b"\xffSMB" and len(message) >= 5:
        return f"SMB1 {_SMB1_COMMANDS.get(message[4], hex(message[4]))}"
    return f"{len(frame)} bytes"
