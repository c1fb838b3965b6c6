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
                value = _sysctl_int(key)
                if value:
                    return value
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
class GPU:
    """One GPU's name and memory in bytes (``free`` None where the driver does not say)."""

    name: str
    kind: str  # "cuda" | "metal"
    total: int
    free: int | None
    unified: bool = False  # memory shared with the CPU (Apple silicon)


def gpus() -> list[GPU]:
    """The GPUs llama.cpp could use: NVIDIA through ``nvidia-smi``, Apple silicon through its unified memory."""
    found = _nvidia_gpus()
    if not found and platform.system() == "Darwin" and platform.machine() == "arm64":
        total = _sysctl_int("hw.memsize")
        if total:
            # Metal lets a process wire about three quarters of unified memory (recommendedMaxWorkingSetSize).
            budget = int(total * 0.75)
            found.append(GPU(name="Apple silicon GPU", kind="metal", total=budget, free=budget, unified=True))
    return found


def parse_nvidia_smi(text: str) -> list[GPU]:
    """GPUs from ``nvidia-smi --query-gpu=name,memory.total,memory.free --format=csv,noheader,nounits``."""
    result = []
    for line in text.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != 3:
            continue
        name, total, free = parts
        try:
            result.append(GPU(name=name, kind="cuda", total=int(float(total)) << 20, free=int(float(free)) << 20))
        except ValueError:
            continue
    return result


def _nvidia_gpus() -> list[GPU]:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,memory.free",
                              "--format=csv,noheader,nounits"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return []
    return parse_nvidia_smi(out.stdout) if out.returncode == 0 else []


def _sysctl_int(key: str) -> int | None:
    try:
        out = subprocess.run(["sysctl", "-n", key], capture_output=True, text=True, timeout=2)
        return int(out.stdout.strip()) if out.returncode == 0 else None
    except (OSError, ValueError, subprocess.SubprocessError):
        return None


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


def batching_defaults() -> tuple[int, int]:
    """Replies batched at once for API clients and prompt tokens per step beside them, for this build: (4, 128)
    on a CPU, where a step's cost grows with its tokens; (8, 512) where layers can go to a GPU."""
    import llama_cpp

    return (8, 512) if llama_cpp.llama_supports_gpu_offload() else (4, 128)


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
        "gpus": [asdict(g) for g in gpus()],
        "llama_cpp": asdict(backend_info()),
    }


def _cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"
