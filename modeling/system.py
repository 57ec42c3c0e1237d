"""What this machine offers: the cores this process may use and the CPU's feature flags."""

from __future__ import annotations

import os
from pathlib import Path

NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


def available_cores() -> int:
    """The cores this process may use: a container's or taskset's CPU set, not the host's count."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)  # macOS, Windows


def cpu_flags() -> frozenset[str]:
    """The CPU feature flags the kernel reports (Linux); empty where /proc/cpuinfo is absent."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def cpu_has_native_bf16() -> bool:
    """True where bf16 matmuls run in hardware (AVX-512 BF16 / AMX); emulated bf16 is slower than fp32."""
    flags = cpu_flags()
    if flags:
        return bool(NATIVE_BF16_FLAGS & flags)
    import torch  # non-Linux: ask torch what it dispatches to, e.g. "AVX512_BF16"

    capability = torch.backends.cpu.get_cpu_capability().upper()
    return "BF16" in capability or "AMX" in capability
