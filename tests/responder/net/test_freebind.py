"""IP_FREEBIND / IPV6_FREEBIND: binding an address that is on no interface (yet)."""

from __future__ import annotations

import errno

import pytest

from responder.net.tcp import bind_tcp
from responder.net.udp import bind_udp

ABSENT = ["198.18.0.99", "fd00::99"]


@pytest.mark.parametrize("host", ABSENT)
@pytest.mark.parametrize("bind", [bind_udp, bind_tcp], ids=["udp", "tcp"])
def test_an_absent_address_binds_only_with_freebind(bind, host):
    with pytest.raises(OSError) as caught:
        bind(host, 0)
    assert caught.value.errno == errno.EADDRNOTAVAIL
    sock = bind(host, 0, freebind=True)
    try:
        assert sock.getsockname()[0] == host
    finally:
        sock.close()
