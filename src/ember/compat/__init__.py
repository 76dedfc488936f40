"""CUDA, driver, GCC and GPU compatibility: the facts as data, and a resolver over them.

The facts live in TOML tables under `ember/compat/data/` (toolkits,
architectures, GPU names, known traps), each row with its source; they are
transcribed from `shared/reference/cuda-compat.md`. This package is pure: no
I/O beyond reading those tables once.

    >>> from ember.compat import Request, resolve
    >>> d = resolve(Request(gpus=("Tesla K80",), driver="470.256.02"))
    >>> (d.cuda, d.gcc, d.cuda_architectures)
    ('11.4', 10, '37-real')
"""

from __future__ import annotations

from ember.compat.gpus import Gpu, known_gpus, lookup_gpu
from ember.compat.resolver import (
    ARCH_MODES,
    ArchEntry,
    Decision,
    Refusal,
    Request,
    check_architectures,
    native_cuda,
    parse_architectures,
    resolve,
)

__all__ = [
    "ARCH_MODES",
    "ArchEntry",
    "Decision",
    "Gpu",
    "Refusal",
    "Request",
    "check_architectures",
    "known_gpus",
    "lookup_gpu",
    "native_cuda",
    "parse_architectures",
    "resolve",
]
