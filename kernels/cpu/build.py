"""Builds the C++ kernels on first use with torch.utils.cpp_extension, in the variant that fits
this CPU (chosen at run time from /proc/cpuinfo):

  * "avx512": AVX-512 F/BW/VL/DQ + AVX512_BF16 + AVX512_VNNI (Intel since Cooper Lake, AMD
    since Zen 4): bf16 dot products (vdpbf16ps), int8 ones (vpdpbusd).
  * "avx2": AVX2 + FMA + F16C (every x86-64 CPU of the last decade, e.g. AMD EPYC before Zen 4):
    bf16 widened to float, int8 dot products through vpmaddubsw.

Both compile the same sources: module.cpp (the bindings, one set of names), moe_route.cpp
(plain C++) and the kernels, each written once over simd.h, which maps its vector operations
to the variant's ISA.

Why a small C++ extension rather than torch.compile: decode must read the packed MXFP4 bytes
at memory speed, which needs a register-level 4-bit decode (a permute or shuffle through a
16-entry table); Inductor cannot express that. The build is cached per source hash under
~/.cache/gpt-oss-agent/, so later processes load it in well under a second. With no variant for
this CPU or no compiler, `extension()` returns None and callers use the pure-torch reference.
GPT_OSS_AGENT_CPU_KERNELS=0 disables the kernels; =avx2 forces that variant (to test it on an
AVX-512 machine). A freshly built variant first checks itself against the reference
(selfcheck.py): one that computes wrong numbers on this CPU is never used.
"""
from __future__ import annotations

import functools
import hashlib
import os
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).parent
HEADERS = [HERE / "kernels.h", HERE / "simd.h"]
SOURCES = ("module.cpp", "moe_route.cpp", "mxfp4_int8.cpp", "attention.cpp", "mxfp4.cpp", "dense.cpp",
           "norm_rope.cpp")


@dataclass(frozen=True)
class Variant:
    name: str
    flags: tuple[str, ...]
    cpu_flags: frozenset[str]  # /proc/cpuinfo flags the variant needs


VARIANTS = (  # best first
    Variant("avx512",
            ("-O3", "-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512dq", "-mavx512bf16",
             "-mavx512vnni", "-mavx512vbmi", "-mf16c", "-fopenmp"),
            frozenset({"avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512_bf16", "avx512_vnni",
                       "avx512vbmi", "f16c"})),
    Variant("avx2",
            ("-O3", "-mavx2", "-mfma", "-mf16c", "-fopenmp"),
            frozenset({"avx2", "fma", "f16c"})),
)


def cpu_flags() -> set[str]:
    """The instruction-set flags /proc/cpuinfo lists (empty when it cannot be read)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


@functools.lru_cache(maxsize=None)
def has_amx() -> bool:
    """AMX tiles (Intel since Sapphire Rapids): there oneDNN's bf16 matmul outruns our int8
    GEMMs for many rows."""
    return "amx_bf16" in cpu_flags()


@functools.lru_cache(maxsize=None)
def runnable_variants() -> tuple[Variant, ...]:
    """The variants this CPU can run, best first."""
    flags = cpu_flags()
    return tuple(v for v in VARIANTS if v.cpu_flags <= flags)


def chosen_variant() -> Variant | None:
    """The variant extension() builds: the best this CPU runs, or the one GPT_OSS_AGENT_CPU_KERNELS
    names; None when the kernels are disabled or none fits."""
    wanted = os.environ.get("GPT_OSS_AGENT_CPU_KERNELS", "1")
    if wanted == "0":
        return None
    runnable = runnable_variants()
    if wanted in ("1", ""):
        return runnable[0] if runnable else None
    return next((v for v in runnable if v.name == wanted), None)


def cache_dir(variant: Variant) -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    text = b"".join((HERE / name).read_bytes() for name in SOURCES)
    text += b"".join(path.read_bytes() for path in HEADERS)
    digest = hashlib.sha256(text + " ".join(variant.flags).encode()).hexdigest()[:16]
    return base / "gpt-oss-agent" / f"cpu-kernels-{variant.name}-{digest}"


@functools.lru_cache(maxsize=None)
def build(name: str):
    """The compiled module of variant `name` (which this CPU must run), or None when the
    compiler is missing or the build fails."""
    variant = next(v for v in VARIANTS if v.name == name)
    if shutil.which(os.environ.get("CXX", "c++")) is None:
        return None
    try:
        from torch.utils.cpp_extension import load

        folder = cache_dir(variant)
        folder.mkdir(parents=True, exist_ok=True)
        return load(name=f"gpt_oss_cpu_kernels_{variant.name}",
                    sources=[str(HERE / s) for s in SOURCES], extra_cflags=list(variant.flags),
                    extra_ldflags=["-fopenmp"], build_directory=str(folder), verbose=False)
    except Exception as exc:  # a broken toolchain must not break the runtime
        warnings.warn(f"CPU kernels ({variant.name}) unavailable, using the reference path: {exc}")
        return None


def verified(module, variant: Variant) -> bool:
    """Whether the built `module` passes selfcheck (run once per build folder, the verdict kept
    there), warning with what failed when it does not."""
    verdict = cache_dir(variant) / "selfcheck"
    if verdict.exists():
        text = verdict.read_text()
        if text == "ok":
            return True
    else:
        from .selfcheck import failures

        try:
            wrong = failures(module)
        except Exception as exc:  # a kernel that raises on valid input is as wrong as one that errs
            wrong = [f"raised {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"]
        text = "ok" if not wrong else "wrong: " + ", ".join(wrong)
        verdict.write_text(text)
        if not wrong:
            return True
    warnings.warn(f"CPU kernels ({variant.name}) failed their self-check against the reference "
                  f"({text}); trying the next variant")
    return False


@functools.lru_cache(maxsize=None)
def extension():
    """The compiled module for this CPU, or None (no fitting variant, no compiler, disabled, or
    the build failed). A variant that fails its self-check gives way to the next one this CPU
    runs (the pure-torch reference after the last)."""
    variant = chosen_variant()
    if variant is None:
        return None
    for candidate in runnable_variants()[runnable_variants().index(variant):]:
        module = build(candidate.name)
        if module is not None and verified(module, candidate):
            return module
    return None
