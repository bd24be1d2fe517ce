"""Which weights file the re-ranker's language model runs from: the file as given, or an f32 copy of it.

On CPUs with AVX-512, llama.cpp's f32 matrix kernels use the full 512-bit registers while its Q8_0 kernels (with the
AMX path off, see mllm.py) stay at 256 bits: a SmolVLM-256M candidate then decodes 19-24% faster from f32 weights
(scripts/bench_rerank.py: rows (c) and (c as-is)). Unpacking Q8_0 or f16 to f32 is exact, so the model is the same;
only the arithmetic is finer (no 8-bit rounding of activations). The copy costs 4 bytes per parameter on disk and in
memory, so "auto" makes it only for small text models, once, in the models directory. On AVX2-only CPUs both kernels
are 256 bits wide and the quantized file is kept.

Policies: "auto" (the above), "as-is" (never copy), "f32" (always copy). EDGERET_VLM_WEIGHTS sets the default.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
from pathlib import Path

from edgeret.errors import ConfigError, ModelError, UsageError
from edgeret.settings import ENV_VLM_WEIGHTS, env, models_dir

log = logging.getLogger(__name__)

POLICIES = ("auto", "as-is", "f32")
COPIES = "unpacked"  # the copies' folder inside the models directory
# SmolVLM-256M's text model (163M parameters with its separate output layer: 0.65 GB as f32) qualifies; 0.5B-class
# models and larger would need 2 GB and more, and keep their file.
MAX_AUTO_PARAMS = 200_000_000
_F32 = 0  # ggml type id
_LLAMA_FTYPE_ALL_F32 = 0


def policy_from_env() -> str:
    """The default policy: EDGERET_VLM_WEIGHTS, else "auto"."""
    value = env(ENV_VLM_WEIGHTS) or "auto"
    if value not in POLICIES:
        raise ConfigError(f"{ENV_VLM_WEIGHTS}={value!r}: choose one of {', '.join(POLICIES)}")
    return value


def cpu_has_avx512() -> bool:
    """Whether llama.cpp's CPU backend was built for, and runs on, AVX-512."""
    import llama_cpp

    return "AVX512 = 1" in llama_cpp.llama_print_system_info().decode(errors="replace")


def weights_for(model: Path, tensors: dict, policy: str, fingerprint: str) -> Path:
    """The file to load for `model` (already checked): itself, or its f32 copy (made if missing).

    tensors: {name: (ggml type, ne, offset)} from the GGUF header; fingerprint: the model file's identity.
    """
    if policy not in POLICIES:
        raise UsageError(f"unknown weights policy {policy!r}: choose one of {', '.join(POLICIES)}")
    packed = any(t != _F32 for t, ne, _ in tensors.values() if len(ne) >= 2)
    if policy == "as-is" or not packed:
        return model
    if policy == "auto":
        n_params = sum(math.prod(int(d) for d in ne) for _, ne, _ in tensors.values())
        if n_params > MAX_AUTO_PARAMS or not cpu_has_avx512():
            return model
    copy = models_dir() / COPIES / f"{model.stem}-{hashlib.sha256(fingerprint.encode()).hexdigest()[:12]}.f32.gguf"
    if copy.is_file() and not _intact(copy):
        log.warning("the f32 copy %s is damaged; making it again", copy)
        copy.unlink(missing_ok=True)
    if not copy.is_file():
        _unpack(model, copy)
    return copy if copy.is_file() else model


def _intact(path: Path) -> bool:
    """The same header check every model file gets before llama.cpp may open it."""
    from edgeret.modelfiles import check_gguf

    try:
        check_gguf(path)
    except ModelError:
        return False
    return True


def _unpack(model: Path, copy: Path) -> None:
    """Write the f32 copy with llama.cpp's own converter, under a lock, through a temporary name."""
    import llama_cpp
    from filelock import FileLock

    copy.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(copy) + ".lock"):
        if copy.is_file():  # another process made it while we waited
            return
        tmp = copy.with_name(copy.name + ".part")
        params = llama_cpp.llama_model_quantize_default_params()
        params.ftype = _LLAMA_FTYPE_ALL_F32
        params.allow_requantize = True
        params.nthread = os.cpu_count() or 1
        log.info("unpacking %s to f32 for faster CPU decoding: %s", model.name, copy)
        rc = llama_cpp.llama_model_quantize(str(model).encode(), str(tmp).encode(), params)
        if rc != 0 or not tmp.is_file():
            tmp.unlink(missing_ok=True)
            log.warning("could not unpack %s to f32 (code %s); using it as it is", model.name, rc)
            return
        os.replace(tmp, copy)
