# The compiled drain loop; see responder/net/_udploop.c and responder/net/udp.py.
from array import array
from collections.abc import Callable

def drain(
    fd: int,
    repeats: dict[bytes, bytes] | None,
    handler: Callable[[bytes, tuple[str, int]], bytes | None],
    limit: int,
    counts: array[int],
) -> tuple[list[tuple[bytes, BaseException]] | None, list[BaseException] | None]: ...
