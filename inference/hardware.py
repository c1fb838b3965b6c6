"""What this machine offers: CPU cores, memory, and the llama.cpp backend compiled in."""

from __future__ import annotations

import os
import platform
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


def logical_cores() -> int:
    """CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def physical_cores() -> int:
    """Physical cores (hyper-threads counted once) where the OS tells, else the logical count.

    Generation is memory-bound: one thread per physical core is what llama.cpp itself recommends.
    """
    system = platform.system()
    try:
        if system == "Linux":
            cores = set()
            allowed = os.sched_getaffinity(0)
            for cpu in allowed:
                topo = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
                core = (topo / "core_id").read_text().strip()
                pkg = (topo / "physical_package_id").read_text().strip()
                cores.add((pkg, core))
            if cores:
                return len(cores)
        elif system == "Darwin":
            # Performance cores on Apple silicon; physical cores elsewhere.
            for key in ("hw.perflevel0.physicalcpu", "hw.physicalcpu"):
                out = subprocess.run(["sysctl", "-n", key], capture_output=True, text=True, timeout=2)
                if out.returncode == 0 and out.stdout.strip().isdigit():
                    return int(out.stdout.strip())
    except (OSError, ValueError, subprocess.SubprocessError):
        pass
    return logical_cores()


@dataclass(frozen=True)
class Memory:
    """System memory in bytes (None where the OS does not say)."""

    total: int | None
    available: int | None


def memory() -> Memory:
    """Total and available RAM."""
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        values: dict[str, int] = {}
        for line in meminfo.read_text().splitlines():
            key, _, rest = line.partition(":")
            parts = rest.split()
            if parts and parts[0].isdigit():
                values[key] = int(parts[0]) * 1024
        return Memory(values.get("MemTotal"), values.get("MemAvailable"))
    if hasattr(os, "sysconf"):
        try:
            total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
            return Memory(total, None)
        except (ValueError, OSError):
            pass
    return Memory(None, None)


@dataclass(frozen=True)
class BackendInfo:
    """The llama.cpp build Ember runs on."""

    llama_cpp_python: str
    gpu_offload: bool
    backends: list[str]
    system_info: str


def backend_info() -> BackendInfo:
    """Which llama.cpp backends are compiled in and whether layers can be offloaded to a GPU."""
    import llama_cpp

    from inference import llama_log

    llama_log.install()
    system_info = llama_cpp.llama_print_system_info().decode(errors="replace").strip()
    return BackendInfo(
        llama_cpp_python=llama_cpp.__version__,
        gpu_offload=bool(llama_cpp.llama_supports_gpu_offload()),
        backends=parse_backends(system_info),
        system_info=system_info,
    )


def parse_backends(system_info: str) -> list[str]:
    """Backend names from llama.cpp's system info line, e.g. ``CUDA : ARCHS = 890 | ... | CPU : AVX = 1 |``."""
    names = []
    for segment in system_info.split("|"):
        head, sep, _ = segment.partition(" : ")
        if sep and head.strip() and head.strip() not in names:
            names.append(head.strip())
    return names


def report() -> dict[str, Any]:
    """Hardware and backend facts as plain data (for ``ember doctor``)."""
    mem = memory()
    return {
        "os": f"{platform.system()} {platform.release()} ({platform.machine()})",
        "python": platform.python_version(),
        "cpu": {"logical_cores": logical_cores(), "physical_cores": physical_cores(),
                "model": _cpu_model()},
        "memory": {"total_bytes": mem.total, "available_bytes": mem.available},
        "llama_cpp": asdict(backend_info()),
    }


def _cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"
