# The compiled drain loop; see responder/net/_udploop.c and responder/net/udp.py.
from array import array
from collections.abc import Callable

def drain(
    fd: int,
    repeats: dict[bytes, bytes] | None,
    handler: Callable[[bytes, tuple[str, int]], bytes | None],
    limit: int,
    counts: array[int],
    guard: Guard | None = None,
) -> tuple[list[tuple[bytes, BaseException]] | None, list[BaseException] | None]: ...

class Guard:
    def __init__(
        self,
        ports: bytes,
        bad: bytes,
        exempt: bytes,
        interval: int,
        heavy_interval: int,
        tolerance: int,
        slip: int,
        log_only: bool,
        v4_bits: int,
        v6_bits: int,
        heavy_suffix: bytes,
        table_size: int,
        seed: int,
        slip_fn: Callable[[bytes], bytes | None] | None,
    ) -> None: ...
    def check_source(self, packed: bytes, port: int) -> bool: ...
    def admit(self, packed: bytes, now: int, heavy: bool) -> int: ...
    def counts(self) -> tuple[int, ...]: ...
    def sources(self) -> int: ...
