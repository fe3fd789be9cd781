"""What a benchmark ran on: CPU model, int8 instruction set, cores, load; recorded beside every timing."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path
from typing import Any

from index.cpu import cpu_flags, int8_isa


def machine() -> dict[str, Any]:
    model = next(
        (ln.split(":", 1)[1].strip() for ln in _stdout(["lscpu"]).splitlines() if ln.startswith("Model name")), "?"
    )
    return {
        "cpu": model,
        "int8_isa": int8_isa(),
        "simd_flags": simd_flags(),
        "cores": os.cpu_count(),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "threads_env": os.environ.get("LIGHTGUARD_THREADS"),
    }


SIMD_FLAGS = ("avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8")
"""The /proc/cpuinfo flags that change ONNX Runtime's and FAISS's kernels (int8 dot products, 512-bit vectors)."""


def simd_flags() -> list[str]:
    """Which of `SIMD_FLAGS` the CPU has, in that order (empty where /proc/cpuinfo cannot be read)."""
    flags = cpu_flags()
    return [flag for flag in SIMD_FLAGS if flag in flags]


def proc_stats(pid: int) -> dict[str, float]:
    """Resident and peak memory (MB) and CPU seconds used so far by process `pid` (Linux /proc)."""
    status = Path(f"/proc/{pid}/status").read_text()
    kb = {ln.split(":")[0]: int(ln.split()[1]) for ln in status.splitlines() if ln.startswith(("VmRSS", "VmHWM"))}
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return {
        "rss_mb": kb["VmRSS"] / 1024,
        "peak_rss_mb": kb["VmHWM"] / 1024,
        "cpu_s": (int(fields[11]) + int(fields[12])) / ticks,
    }


def _stdout(cmd: list[str]) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ""
