"""Dropping root after binding: ``run --user NAME [--group NAME]``.

The daemon starts as root to bind ports 53, 137, 139 and 445, then becomes
the named user. It keeps exactly one capability, ``CAP_NET_BIND_SERVICE``,
so that a reload which adds a node (a new address on a port below 1024)
still binds, in this process, without a privileged helper:

1. ``prctl(PR_SET_KEEPCAPS, 1)``: the permitted set survives the uid change;
2. ``setgroups([gid])``, ``setgid(gid)``, ``setuid(uid)``: real, effective and
   saved ids all change, so there is no way back to root;
3. ``capset``: effective = permitted = {CAP_NET_BIND_SERVICE}, inheritable
   empty; every other capability is gone for good;
4. ``prctl(PR_SET_KEEPCAPS, 0)``.

Names are resolved with :func:`resolve` before anything is bound, so an
unknown user is a usage error, not a half-started daemon. Each worker process
drops on its own, after its own binds.
"""

from __future__ import annotations

import ctypes
import grp
import os
import pwd
from dataclasses import dataclass

PR_SET_KEEPCAPS = 8
CAP_NET_BIND_SERVICE = 10
_CAPABILITY_VERSION_3 = 0x20080522


class PrivilegeError(Exception):
    """The user or group cannot be switched to; the message is the one line to print."""


@dataclass(frozen=True, slots=True)
class Account:
    """Who the daemon becomes after binding."""

    user: str
    uid: int
    gid: int


class _CapHeader(ctypes.Structure):
    _fields_ = (("version", ctypes.c_uint32), ("pid", ctypes.c_int))


class _CapData(ctypes.Structure):
    _fields_ = (
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    )


def resolve(user: str, group: str | None) -> Account:
    """The uid and gid for ``--user`` and ``--group`` (default: the user's primary group).

    Raises:
        PrivilegeError: no such user or group.
    """
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise PrivilegeError(f"--user: no such user {user!r}") from None
    if group is None:
        return Account(user, entry.pw_uid, entry.pw_gid)
    try:
        gid = grp.getgrnam(group).gr_gid
    except KeyError:
        raise PrivilegeError(f"--group: no such group {group!r}") from None
    return Account(user, entry.pw_uid, gid)


def drop_to(account: Account) -> None:
    """Become ``account``, keeping only CAP_NET_BIND_SERVICE.

    Raises:
        PrivilegeError: not running as root, or a system call refused.
    """
    if os.geteuid() == account.uid and os.getegid() == account.gid:
        return  # already there (started as that user): nothing to drop
    if os.geteuid() != 0:
        raise PrivilegeError(f"--user {account.user}: only root can switch users")
    libc = ctypes.CDLL(None, use_errno=True)
    try:
        _prctl(libc, PR_SET_KEEPCAPS, 1)
        os.setgroups([account.gid])
        os.setgid(account.gid)
        os.setuid(account.uid)
        _keep_only(libc, 1 << CAP_NET_BIND_SERVICE)
        _prctl(libc, PR_SET_KEEPCAPS, 0)
    except OSError as exc:
        raise PrivilegeError(f"cannot become {account.user}: {exc.strerror}") from None


def _prctl(libc: ctypes.CDLL, option: int, value: int) -> None:
    if libc.prctl(option, ctypes.c_ulong(value), 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def _keep_only(libc: ctypes.CDLL, mask: int) -> None:
    """Set the effective and permitted capability sets to ``mask``, inheritable to none."""
    header = _CapHeader(_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)(_CapData(mask, mask, 0), _CapData(0, 0, 0))
    if libc.capset(ctypes.byref(header), data) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
