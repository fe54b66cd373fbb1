"""`/stats/` resource monitor: cgroup v2 and v1 file trees, host fallback, process-tree climbing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from drum.observability import resources
from drum.observability.resources import (
    CGROUP_V1_UNLIMITED,
    MB,
    CgroupMemory,
    ResourceMonitor,
    _is_drum_command,
    find_server_process,
    read_cgroup_memory,
)

GIB = 1024**3


def write(directory: Path, files: dict[str, object]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, value in files.items():
        (directory / name).write_text(f"{value}\n")


def test_cgroup_v2_root(tmp_path):
    write(tmp_path, {"cgroup.controllers": "memory", "memory.max": 2 * GIB, "memory.current": GIB, "memory.peak": 3})
    assert read_cgroup_memory(tmp_path, "0::/\n") == CgroupMemory(2, 2 * GIB, GIB, 3)


def test_cgroup_v2_nested_tightest_limit_and_peak_fallback(tmp_path):
    write(tmp_path, {"memory.current": 10 * GIB})  # the root cgroup has no memory.max
    write(tmp_path / "system.slice", {"memory.max": GIB, "memory.current": 5 * GIB})
    write(tmp_path / "system.slice" / "drum.scope", {"memory.max": "max", "memory.current": 100})
    memory = read_cgroup_memory(tmp_path, "0::/system.slice/drum.scope\n")
    assert memory == CgroupMemory(2, GIB, 100, 100)


def test_cgroup_v2_unlimited(tmp_path):
    write(tmp_path, {"memory.max": "max", "memory.current": 7, "memory.peak": 9})
    assert read_cgroup_memory(tmp_path, "0::/") == CgroupMemory(2, None, 7, 9)


def test_cgroup_v2_path_missing_in_namespace_uses_root(tmp_path):
    write(tmp_path, {"memory.max": GIB, "memory.current": 7})
    assert read_cgroup_memory(tmp_path, "0::/docker/abc\n") == CgroupMemory(2, GIB, 7, 7)


def test_cgroup_v1(tmp_path):
    write(
        tmp_path / "memory",
        {"memory.limit_in_bytes": GIB, "memory.usage_in_bytes": 5, "memory.max_usage_in_bytes": 6},
    )
    assert read_cgroup_memory(tmp_path, "4:memory:/\n0::/\n") == CgroupMemory(1, GIB, 5, 6)


def test_cgroup_v1_nested_unlimited(tmp_path):
    memory = tmp_path / "memory"
    write(memory, {"memory.limit_in_bytes": CGROUP_V1_UNLIMITED, "memory.usage_in_bytes": 50})
    write(
        memory / "kubepods" / "pod1",
        {"memory.limit_in_bytes": CGROUP_V1_UNLIMITED, "memory.usage_in_bytes": 5, "memory.max_usage_in_bytes": 8},
    )
    proc = "12:cpu,cpuacct:/kubepods/pod1\n4:memory:/kubepods/pod1\n0::/\n"
    assert read_cgroup_memory(tmp_path, proc) == CgroupMemory(1, None, 5, 8)


def test_hybrid_without_v2_memory_uses_v1(tmp_path):
    write(tmp_path / "unified", {"cgroup.controllers": ""})
    write(tmp_path / "memory", {"memory.limit_in_bytes": GIB, "memory.usage_in_bytes": 5})
    assert read_cgroup_memory(tmp_path, "0::/\n4:memory:/\n") == CgroupMemory(1, GIB, 5, 5)


def test_no_cgroup_files(tmp_path):
    assert read_cgroup_memory(tmp_path, "") is None
    write(tmp_path, {"memory.current": "garbage"})
    assert read_cgroup_memory(tmp_path, "0::/") is None


def test_mem_info_from_cgroup_v2_limit(tmp_path):
    write(tmp_path, {"memory.max": 2 * GIB, "memory.current": GIB, "memory.peak": GIB + 1024 * 1024})
    mem = ResourceMonitor(tmp_path, "0::/").collect()["mem_info"]
    assert mem["container_limit"] == 2048.0
    assert mem["container_used"] == 1024.0
    assert mem["container_max_used"] == 1025.0
    assert mem["avail"] == mem["free"] == 1024.0
    assert mem["total"] == psutil.virtual_memory().total / MB


def test_mem_info_from_cgroup_v1_limit(tmp_path):
    write(
        tmp_path / "memory",
        {"memory.limit_in_bytes": GIB, "memory.usage_in_bytes": GIB // 4, "memory.max_usage_in_bytes": GIB // 2},
    )
    mem = ResourceMonitor(tmp_path, "4:memory:/").collect()["mem_info"]
    assert (mem["container_limit"], mem["container_used"], mem["container_max_used"]) == (1024.0, 256.0, 512.0)
    assert mem["avail"] == mem["free"] == 768.0


def test_mem_info_unlimited_outside_container_is_host(tmp_path, monkeypatch):
    write(tmp_path, {"memory.max": "max", "memory.current": GIB})
    monkeypatch.setattr(resources.os.path, "exists", lambda path: False)
    mem = ResourceMonitor(tmp_path, "0::/").collect()["mem_info"]
    assert mem["container_limit"] is mem["container_used"] is mem["container_max_used"] is None
    assert 0 < mem["avail"] <= mem["total"]


def test_mem_info_unlimited_inside_container_uses_host_total(tmp_path, monkeypatch):
    write(tmp_path, {"memory.max": "max", "memory.current": GIB})
    monkeypatch.setattr(resources.os.path, "exists", lambda path: path == "/.dockerenv")
    mem = ResourceMonitor(tmp_path, "0::/").collect()["mem_info"]
    assert mem["container_limit"] == mem["total"]
    assert mem["container_used"] == 1024.0
    assert mem["avail"] == mem["total"] - 1024.0


def test_mem_info_without_cgroup_is_host(tmp_path, monkeypatch):
    monkeypatch.setattr(resources.os.path, "exists", lambda path: True)  # even "in a container"
    body = ResourceMonitor(tmp_path / "missing", "").collect()
    mem = body["mem_info"]
    assert mem["container_limit"] is None
    assert mem["drum_rss"] == pytest.approx(sum(p["mem"] for p in body["drum_info"]))
    assert sorted(body["drum_info"][0]) == ["cmdline", "cpu_percent", "mem", "pid"]


def test_unreadable_cgroup_never_raises(tmp_path, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("broken")

    monkeypatch.setattr(resources, "read_cgroup_memory", boom)
    assert ResourceMonitor(tmp_path).collect()["mem_info"]["container_limit"] is None


@pytest.mark.parametrize(
    ("cmdline", "expected"),
    [
        (["/venv/bin/drum", "server"], True),
        (["/usr/bin/python3", "/venv/bin/drum", "server"], True),
        (["python", "-m", "drum", "server"], True),
        (["python", "-m", "datarobot_drum.drum.entry_point", "server"], True),
        (["python", "-c", "from multiprocessing.spawn import spawn_main; spawn_main()"], False),
        (["python", "-m", "pytest", "tests/drum"], False),
        ([], False),
    ],
)
def test_is_drum_command(cmdline, expected):
    assert _is_drum_command(cmdline) is expected


def test_climbs_to_the_drum_process_and_lists_its_children(tmp_path):
    # a fake `drum` (a script named drum) that starts a worker; the worker reports what it finds
    script = tmp_path / "drum"
    out = tmp_path / "out.txt"
    worker = (
        "import json, sys, time; from drum.observability.resources import ResourceMonitor; "
        f"info = ResourceMonitor().drum_info(); open({str(out)!r}, 'w').write(json.dumps(info))"
    )
    script.write_text(f"import subprocess, sys\nsubprocess.run([sys.executable, '-c', {worker!r}], check=True)\n")
    subprocess.run([sys.executable, str(script)], check=True, timeout=60)
    import json

    info = json.loads(out.read_text())
    assert info[0]["cmdline"][1] == str(script)
    assert len(info) == 2
    assert info[1]["cmdline"][1] == "-c"


def test_own_process_when_no_drum_ancestor():
    assert find_server_process().pid in (os.getpid(), *(p.pid for p in psutil.Process().parents()))
    assert ResourceMonitor().drum_info()
