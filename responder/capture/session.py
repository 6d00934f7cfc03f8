"""Starting and stopping the recorder of one daemon process (``run --pcap``).

Worker 0 records to the configured file; an extra worker process N (see
:mod:`responder.workers`) records to ``FILE.wN``, so no two writers share a
file. The recorder is installed as the listeners' tap
(:data:`responder.net.tap.current`) before any service binds, so the first
packet is recorded too, and removed before the file is closed.
"""

from __future__ import annotations

from responder.capture.recorder import Recorder
from responder.config import Config
from responder.net import tap


def start_recording(config: Config, worker: int = 0) -> Recorder | None:
    """Start the recorder ``config.capture`` asks for, or None when it asks for none.

    Raises:
        OSError: the capture file cannot be created.
    """
    settings = config.capture
    if settings.file is None:
        return None
    path = settings.file if worker == 0 else f"{settings.file}.w{worker}"
    ports = {config.dns.port: "dns", config.netbios.port: "nbns", config.netbios.wins_port: "nbns"}
    ports |= {config.smb.port: "smb", config.smb.netbios_port: "smb"}
    recorder = Recorder(
        path,
        ports=ports,
        capture_filter=settings.filter,
        rotation=settings.rotate,
        queue=settings.queue,
    )
    recorder.start()
    tap.current = recorder
    return recorder


def stop_recording(recorder: Recorder | None) -> None:
    """Stop reporting to ``recorder`` and close its file."""
    if recorder is None:
        return
    if tap.current is recorder:
        tap.current = None
    recorder.stop()
