"""Host load for `resource_limits`: CPU and memory use of the whole machine, in percent."""

from __future__ import annotations

from typing import Protocol

__all__ = ["HostLoad", "PsutilHostLoad"]


class HostLoad(Protocol):
    def sample(self) -> tuple[float, float]:
        """(CPU %, memory %) now; CPU is averaged since the previous sample."""
        ...


class PsutilHostLoad:
    """Reads the machine's load through psutil (non-blocking: no sampling interval)."""

    def __init__(self) -> None:
        import psutil

        self._psutil = psutil
        psutil.cpu_percent(interval=None)  # the first reading is meaningless; prime it

    def sample(self) -> tuple[float, float]:
        cpu = float(self._psutil.cpu_percent(interval=None))
        memory = float(self._psutil.virtual_memory().percent)
        return cpu, memory
