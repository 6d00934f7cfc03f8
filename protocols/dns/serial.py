"""The SOA serial: stable across restarts of one config, rising on every zone change (sans-IO).

Theory of operation
-------------------
The daemon keeps no state on disk, so the serial must be recomputed from what
it is given.  A hash of the zone alone is stable but not monotonic: RFC 1982
serial arithmetic needs every change to move the serial *forward*, and a
hash of the new content can land anywhere.  What does move forward with every
edit is the config file's modification time: an editor, a config manager or
``cp`` writes the file "now", later than the last write.  So:

- at start, serial = the file's mtime in seconds (mod 2**32).  A restart of
  the same file gives the same serial; a restart after an edit gives a later
  one.
- on a reload (SIGHUP) in the same process, the zone's content digest
  (:func:`zone_digest`, over everything the zone answers except the serial)
  decides: unchanged content keeps the serial in force even if the file was
  touched; changed content takes the new mtime when that is greater (RFC 1982
  §3.2), else the serial in force plus one (§3.1), so two edits within one
  second, or an mtime set back by ``cp -p``, still move the serial forward
  while the process runs.

What this cannot see: a file whose mtime goes *back* across a restart (a
backup restored with its old timestamp) restarts with the older serial.
``touch`` the file before restarting in that case.  Without a file (the
embedded example config) the caller passes a fixed base.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace

from protocols.dns.authority import AuthoritySettings

SERIAL_BITS = 32
_MODULUS = 1 << SERIAL_BITS
_HALF = 1 << (SERIAL_BITS - 1)


def serial_gt(a: int, b: int) -> bool:
    """RFC 1982 §3.2: ``a`` is greater than ``b`` in 32-bit serial number arithmetic."""
    return a != b and ((a < b and b - a > _HALF) or (a > b and a - b < _HALF))


def zone_digest(settings: AuthoritySettings) -> bytes:
    """A digest of everything the zone answers, the serial excepted."""
    return hashlib.sha256(repr(replace(settings, serial=0)).encode()).digest()


def next_serial(base: int, digest: bytes, previous: tuple[bytes, int] | None) -> int:
    """The serial to serve for a zone of ``digest`` whose file time is ``base``.

    ``previous`` is (digest, serial) in force in this process, None at start.
    """
    base %= _MODULUS
    if previous is None:
        return base
    old_digest, old_serial = previous
    if digest == old_digest:
        return old_serial
    return base if serial_gt(base, old_serial) else (old_serial + 1) % _MODULUS
