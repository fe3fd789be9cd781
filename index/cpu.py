"""The CPU's feature flags, where the kernels a model runs on (and so its speed) depend on them."""

from __future__ import annotations

from functools import cache
from pathlib import Path

NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@cache
def cpu_flags() -> frozenset[str]:
    """The flags line of /proc/cpuinfo (empty where it cannot be read: not Linux, or a sandbox without /proc)."""
    try:
        line = next(ln for ln in Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("flags"))
    except (OSError, StopIteration):
        return frozenset()
    return frozenset(line.split(":", 1)[-1].split())


def native_bf16() -> bool | None:
    """Whether the CPU computes in bf16 natively (None: unknown). Without it, torch's bf16 autocast emulates the
    format and trains ~2x slower than fp32 (docs/ablation.md, nineteenth session's Xeon without avx512_bf16)."""
    flags = cpu_flags()
    return any(f in flags for f in NATIVE_BF16_FLAGS) if flags else None


def int8_isa() -> str:
    """The widest int8 dot-product instructions the CPU has: ONNX Runtime's int8 kernels run ~2x faster with VNNI
    than with plain AVX2 (docs/performance.md, sixth session), so bench numbers differ between such machines."""
    flags = cpu_flags()
    if not flags:
        return "unknown"
    for flag in ("amx_int8", "avx512_vnni", "avx_vnni", "avx512bw", "avx2"):
        if flag in flags:
            return flag
    return "none of amx_int8 / avx512_vnni / avx_vnni / avx512bw / avx2"
