"""Builds the C++ kernels (module.cpp, mxfp4.cpp, dense.cpp, attention.cpp, norm_rope.cpp) on
first use with torch.utils.cpp_extension.

Why a small C++ extension rather than torch.compile: decode must read the packed MXFP4 bytes
at memory speed, which needs a register-level 4-bit -> bf16 decode (vpermw) and bf16 dot
products (vdpbf16ps); Inductor cannot express either. The build is cached per source hash
under ~/.cache/gpt-oss-agent/, so later processes load it in well under a second. When the CPU
lacks AVX-512-BF16 or no compiler is present, `extension()` returns None and callers use the
pure-torch reference.
"""
from __future__ import annotations

import functools
import hashlib
import os
import shutil
import warnings
from pathlib import Path

HERE = Path(__file__).parent
SOURCES = [HERE / name for name in ("module.cpp", "mxfp4.cpp", "dense.cpp", "attention.cpp",
                                          "norm_rope.cpp")]
HEADER = HERE / "kernels.h"
FLAGS = ["-O3", "-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512dq", "-mavx512bf16", "-fopenmp"]
REQUIRED_CPU_FLAGS = {"avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512_bf16"}


def cpu_supported() -> bool:
    """True when /proc/cpuinfo lists every instruction set the kernels use."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    for line in text.splitlines():
        if line.startswith("flags"):
            return REQUIRED_CPU_FLAGS <= set(line.split(":", 1)[1].split())
    return False


def cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    text = b"".join(path.read_bytes() for path in [*SOURCES, HEADER])
    digest = hashlib.sha256(text + " ".join(FLAGS).encode()).hexdigest()[:16]
    return base / "gpt-oss-agent" / f"cpu-kernels-{digest}"


@functools.lru_cache(maxsize=None)
def extension():
    """The compiled module, or None (no AVX-512-BF16, no compiler, disabled, or build failed)."""
    if os.environ.get("GPT_OSS_CPU_KERNELS", "1") == "0" or not cpu_supported():
        return None
    if shutil.which(os.environ.get("CXX", "c++")) is None:
        return None
    try:
        from torch.utils.cpp_extension import load

        build = cache_dir()
        build.mkdir(parents=True, exist_ok=True)
        return load(name="gpt_oss_cpu_kernels", sources=[str(p) for p in SOURCES], extra_cflags=FLAGS,
                    extra_ldflags=["-fopenmp"], build_directory=str(build), verbose=False)
    except Exception as exc:  # a broken toolchain must not break the runtime
        warnings.warn(f"CPU kernels unavailable, using the reference path: {exc}")
        return None
