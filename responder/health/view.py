"""What the health modules read of the daemon, and the record of its reloads.

:class:`DaemonView` is the part of :class:`responder.app.Daemon` the health
endpoint reads (a Protocol, so this package never imports ``app``).
:class:`ReloadRecord` is the small history ``Daemon`` keeps of its reloads:
how many succeeded and failed, and the last one's result, time and reason.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from responder.config import Config
    from responder.health.board import WorkerBoard


class ServiceView(Protocol):
    name: str

    def status(self) -> dict[str, object]: ...


class DaemonView(Protocol):
    @property
    def config(self) -> Config: ...

    @property
    def services(self) -> Sequence[ServiceView]: ...

    @property
    def reload_record(self) -> ReloadRecord: ...

    @property
    def board(self) -> WorkerBoard | None: ...

    def status(self) -> dict[str, object]: ...


@dataclass(slots=True)
class ReloadRecord:
    """Counts of reloads by result, and the latest one's result, time and reason."""

    ok: int = 0
    failed: int = 0
    last_ok: bool | None = None  # None: never reloaded
    last_at: float | None = None  # time.time()
    last_reason: str = ""

    def record(self, ok: bool, reason: str = "") -> None:
        """Note one reload's result (``reason``: why it failed)."""
        if ok:
            self.ok += 1
        else:
            self.failed += 1
        self.last_ok, self.last_at, self.last_reason = ok, time.time(), reason

    def as_dict(self) -> dict[str, object]:
        """The /status shape."""
        return {
            "ok": self.ok,
            "failed": self.failed,
            "last": None if self.last_ok is None else ("ok" if self.last_ok else "failed"),
            "last_at": self.last_at,
            "last_reason": self.last_reason or None,
        }
