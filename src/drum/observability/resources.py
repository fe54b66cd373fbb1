"""Resource monitor behind `/stats/`: process memory and CPU, host memory, container memory (cgroup v1 or v2)."""

from __future__ import annotations

import os
from pathlib import Path

import psutil

MB = 1024.0 * 1024.0
CGROUP_ROOT = Path("/sys/fs/cgroup")


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return None if text == "max" else int(text)


def container_memory(root: Path = CGROUP_ROOT) -> dict[str, float | None] | None:
    """Container limit/usage/peak in MB from cgroup v1 files, else cgroup v2; None when neither exists."""
    v1 = root / "memory"
    limit = _read_int(v1 / "memory.limit_in_bytes")
    if limit is not None:
        usage = _read_int(v1 / "memory.usage_in_bytes")
        peak = _read_int(v1 / "memory.max_usage_in_bytes")
    else:
        usage = _read_int(root / "memory.current")
        if usage is None:
            return None
        limit = _read_int(root / "memory.max")
        peak = _read_int(root / "memory.peak")
        if limit is None:
            limit = psutil.virtual_memory().total
    return {
        "limit": limit / MB,
        "used": None if usage is None else usage / MB,
        "max_used": None if peak is None else peak / MB,
    }


class ResourceMonitor:
    """Reports the current process, as DRUM does for the worker that answers `/stats/`."""

    def __init__(self) -> None:
        self._proc = psutil.Process()

    def _proc_info(self) -> dict:
        p = self._proc
        return {
            "pid": p.pid,
            "cmdline": p.cmdline(),
            "mem": p.memory_info().rss / MB,
            "cpu_percent": p.cpu_percent(),
        }

    def collect(self) -> dict:
        drum_info = [self._proc_info()]
        vm = psutil.virtual_memory()
        container = container_memory() if os.path.exists("/.dockerenv") else None
        if container is not None:
            avail = free = container["limit"] - (container["used"] or 0.0)
        else:
            avail, free = vm.available / MB, vm.free / MB
        mem_info = {
            "total": vm.total / MB,
            "avail": avail,
            "free": free,
            "drum_rss": sum(i["mem"] for i in drum_info),
            "container_limit": container["limit"] if container else None,
            "container_max_used": container["max_used"] if container else None,
            "container_used": container["used"] if container else None,
        }
        return {"mem_info": mem_info, "drum_info": drum_info}
