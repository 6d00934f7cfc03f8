"""Keeping a set of bound listeners in step with the config.

Each service (DNS, NBNS, SMB) wants one listener per ``(address, port)``.
On start and on every reload it hands the wanted keys to
:meth:`ListenerSet.update`, which opens the missing ones first and closes the
stale ones only after every new one is bound. If any bind fails, the ones
just opened are closed again and the error propagates: the old set keeps
serving untouched, which is what makes a reload atomic.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable, Iterable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
L = TypeVar("L")


class ListenerSet(Generic[K, L]):
    def __init__(
        self, open_one: Callable[[K], Awaitable[L]], close_one: Callable[[L], Awaitable[None]]
    ) -> None:
        self._open_one = open_one
        self._close_one = close_one
        self.active: dict[K, L] = {}

    async def update(self, wanted: Iterable[K]) -> None:
        """Make the active set equal ``wanted``.

        Raises:
            OSError: a new listener could not be bound; nothing was changed.
        """
        wanted_keys = list(dict.fromkeys(wanted))
        opened: dict[K, L] = {}
        try:
            for key in wanted_keys:
                if key not in self.active:
                    opened[key] = await self._open_one(key)
        except BaseException:
            for listener in opened.values():
                await self._close_one(listener)
            raise
        stale = [key for key in self.active if key not in set(wanted_keys)]
        self.active.update(opened)
        for key in stale:
            await self._close_one(self.active.pop(key))

    async def close(self) -> None:
        await self.update(())


class BindError(OSError):
    """A listener could not be bound; the message names protocol, address and reason."""

    def __init__(self, what: str, host: str, port: int, exc: OSError) -> None:
        super().__init__(f"{what}: cannot bind {host}:{port}: {exc.strerror or exc}")
