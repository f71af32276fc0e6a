"""What this machine's CPU is, and whether it has the units that make bf16 arithmetic fast.

Two choices depend on it: ``l3ic train --mixed-precision auto`` (``training.recipe``) and the
``auto`` runtime (``runtime``), which both use bf16 only where the CPU does bf16 matrix work in
hardware (AMX or AVX512-BF16). Elsewhere bf16 is emulated or ignored: measured on an AMD EPYC
with AVX2 only, bf16 training ran 10x slower than float32 (docs/training.md), and OpenVINO
there runs float32 whatever it is asked (docs/runtimes.md).
"""

import platform

__all__ = ["FAST_BF16_FLAGS", "cpu_model", "cpu_has_fast_bf16"]

# CPU flags (Linux /proc/cpuinfo) of the units that make bf16 matrix work faster than float32.
FAST_BF16_FLAGS = ("amx_bf16", "avx512_bf16")


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_has_fast_bf16() -> list[str]:
    """The flags of ``FAST_BF16_FLAGS`` this CPU has (Linux); empty elsewhere."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return [name for name in FAST_BF16_FLAGS if name in flags]
    except OSError:
        pass
    return []
