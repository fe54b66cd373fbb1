"""Resource monitor behind `/stats/`: server processes, host memory, container memory (cgroup v2, then v1).

Keys and units are DRUM 1.18.1's (MB = bytes / 1024 / 1024). Differences, on purpose:

* `drum_info` lists every process of the server: the process the user started (`drum server`,
  found by climbing the process tree from the worker that answers) first, then all its children, so
  every uvicorn worker is covered; DRUM's werkzeug server listed only itself.
* Container memory comes from cgroup v2 (`memory.max`, `memory.current`, `memory.peak`) and falls
  back to cgroup v1 (`memory.limit_in_bytes`, ...). It is reported inside a container (`/.dockerenv`)
  or whenever a cgroup memory limit applies; otherwise container fields are null and host values are
  used. Nothing here raises: unreadable files or vanished processes only leave values out.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import psutil

logger = logging.getLogger("drum.observability.resources")
MB = 1024.0 * 1024.0
CGROUP_ROOT = Path("/sys/fs/cgroup")
#: cgroup v1 reports "no limit" as a huge page-aligned number (LONG_MAX rounded down to the page size).
CGROUP_V1_UNLIMITED = 9223372036854771712
_UNLIMITED_FLOOR = 1 << 62


@dataclass(frozen=True)
class CgroupMemory:
    """Memory of the cgroup this process belongs to, in bytes; `limit` None means unlimited."""

    version: int
    limit: int | None
    usage: int
    peak: int | None


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except (OSError, ValueError):
        return None
    if text == "max":
        return None
    try:
        return int(text)
    except ValueError:
        return None


def _own_cgroup_paths(proc_cgroup: str) -> tuple[str | None, str | None]:
    """(cgroup v2 path, cgroup v1 memory path) of this process from the text of /proc/self/cgroup."""
    v2 = v1 = None
    for line in proc_cgroup.splitlines():
        parts = line.strip().split(":", 2)
        if len(parts) != 3:
            continue
        hierarchy, controllers, path = parts
        if hierarchy == "0" and controllers == "":
            v2 = path
        elif "memory" in controllers.split(","):
            v1 = path
    return v2, v1


def _candidate_dirs(base: Path, own: str | None) -> list[Path]:
    """The own cgroup directory and its ancestors up to `base` (own first); just `base` when unknown."""
    dirs: list[Path] = []
    parts = PurePosixPath(own or "/").parts[1:]
    for i in range(len(parts), 0, -1):
        candidate = base.joinpath(*parts[:i])
        if candidate.is_dir():
            dirs.append(candidate)
    dirs.append(base)
    return dirs


def _tightest_limit(dirs: list[Path], name: str, unlimited_floor: int | None = None) -> int | None:
    limits = [v for d in dirs if (v := _read_int(d / name)) is not None]
    if unlimited_floor is not None:
        limits = [v for v in limits if v < unlimited_floor]
    return min(limits) if limits else None


def _first_existing(dirs: list[Path], name: str) -> tuple[Path, int] | None:
    for d in dirs:
        value = _read_int(d / name)
        if value is not None:
            return d, value
    return None


def read_cgroup_memory(root: Path = CGROUP_ROOT, proc_cgroup: str | None = None) -> CgroupMemory | None:
    """This process's cgroup memory: v2 first, then v1; None when neither can be read.

    `root` is the cgroup mount point and `proc_cgroup` the text of /proc/self/cgroup (both injectable
    for tests). The limit is the tightest one of the own cgroup and its ancestors.
    """
    if proc_cgroup is None:
        try:
            proc_cgroup = Path("/proc/self/cgroup").read_text()
        except OSError:
            proc_cgroup = ""
    own_v2, own_v1 = _own_cgroup_paths(proc_cgroup)

    v2_dirs = _candidate_dirs(root, own_v2)
    current = _first_existing(v2_dirs, "memory.current")
    if current is not None:
        directory, usage = current
        dirs = v2_dirs[v2_dirs.index(directory) :]
        peak = _read_int(directory / "memory.peak")
        return CgroupMemory(2, _tightest_limit(dirs, "memory.max"), usage, usage if peak is None else peak)

    v1_dirs = _candidate_dirs(root / "memory", own_v1)
    current = _first_existing(v1_dirs, "memory.usage_in_bytes")
    if current is not None:
        directory, usage = current
        dirs = v1_dirs[v1_dirs.index(directory) :]
        limit = _tightest_limit(dirs, "memory.limit_in_bytes", _UNLIMITED_FLOOR)
        peak = _read_int(directory / "memory.max_usage_in_bytes")
        return CgroupMemory(1, limit, usage, usage if peak is None else peak)
    return None


def _is_drum_command(cmdline: list[str]) -> bool:
    """Whether a command line is the `drum` command a user starts (script, `python -m drum`, DRUM's entry point)."""
    if not cmdline:
        return False
    if os.path.basename(cmdline[0]) == "drum":
        return True
    if len(cmdline) > 1 and os.path.basename(cmdline[1]) == "drum":
        return True
    for i, arg in enumerate(cmdline[:-1]):
        if arg == "-m" and cmdline[i + 1] in ("drum", "drum.cli.main", "datarobot_drum.drum.entry_point"):
            return True
    return any("datarobot_drum.drum.entry_point" in arg for arg in cmdline)


def find_server_process(current: psutil.Process | None = None) -> psutil.Process:
    """The process the user started: the closest `drum` ancestor of (or) this process, else this process."""
    current = current or psutil.Process()
    process: psutil.Process | None = current
    while process is not None:
        try:
            if _is_drum_command(process.cmdline()) or process.name() == "drum":
                return process
            process = process.parent()
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            break
    return current


class ResourceMonitor:
    """Collects `/stats/`'s `mem_info` and `drum_info` (see the module docstring)."""

    def __init__(self, cgroup_root: Path = CGROUP_ROOT, proc_cgroup: str | None = None) -> None:
        self._cgroup_root = cgroup_root
        self._proc_cgroup = proc_cgroup
        self._server: psutil.Process | None = None
        # the same Process objects between calls: cpu_percent() measures since the previous call
        self._procs: dict[int, psutil.Process] = {}

    def _processes(self) -> list[psutil.Process]:
        if self._server is None or not self._server.is_running():
            self._server = find_server_process()
        server = self._server
        try:
            children = server.children(recursive=True)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            children = []
        current = [server, *children]
        alive = {p.pid for p in current}
        self._procs = {pid: p for pid, p in self._procs.items() if pid in alive}
        result = []
        for p in current:
            cached = self._procs.setdefault(p.pid, p)
            result.append(cached)
        return result

    @staticmethod
    def _proc_info(p: psutil.Process) -> dict | None:
        try:
            with p.oneshot():
                return {
                    "pid": p.pid,
                    "cmdline": p.cmdline(),
                    "mem": p.memory_info().rss / MB,
                    "cpu_percent": p.cpu_percent(),
                }
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            return None

    def drum_info(self) -> list[dict]:
        try:
            processes = self._processes()
        except Exception:  # noqa: BLE001 - /stats/ never fails
            logger.debug("could not list the server processes", exc_info=True)
            processes = [psutil.Process()]
        return [info for p in processes if (info := self._proc_info(p)) is not None]

    def container_memory(self) -> CgroupMemory | None:
        try:
            return read_cgroup_memory(self._cgroup_root, self._proc_cgroup)
        except Exception:  # noqa: BLE001 - /stats/ never fails
            logger.debug("could not read cgroup memory", exc_info=True)
            return None

    def collect(self) -> dict:
        drum_info = self.drum_info()
        vm = psutil.virtual_memory()
        total = vm.total / MB
        cgroup = self.container_memory()
        in_container = os.path.exists("/.dockerenv")
        if cgroup is not None and (cgroup.limit is not None or in_container):
            limit = (cgroup.limit if cgroup.limit is not None else vm.total) / MB
            used = cgroup.usage / MB
            max_used = cgroup.peak / MB if cgroup.peak is not None else used
            avail = free = limit - used
            container = (limit, max_used, used)
        else:
            avail, free = vm.available / MB, vm.free / MB
            container = (None, None, None)
        mem_info = {
            "total": total,
            "avail": avail,
            "free": free,
            "drum_rss": sum(i["mem"] for i in drum_info),
            "container_limit": container[0],
            "container_max_used": container[1],
            "container_used": container[2],
        }
        return {"mem_info": mem_info, "drum_info": drum_info}
