"""GGUF files read without llama.cpp: a model file's identity, header fields, tensor table and token-embedding rows.

llama.cpp aborts the process on a broken file, so files are checked here first; gguf.GGUFReader is avoided on the
hot path because it decodes the whole vocabulary into Python objects.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from edgeret.errors import ModelMissing
from edgeret.modelfiles import GgufHeader, read_gguf

_FINGERPRINT_BYTES = 1 << 20

def fingerprint(path: Path) -> str:
    """Cheap stable identity of a model file: size + hash of its first and last MiB (header and tail)."""
    h = hashlib.sha256()
    size = path.stat().st_size
    h.update(str(size).encode())
    with path.open("rb") as f:
        h.update(f.read(_FINGERPRINT_BYTES))
        if size > 2 * _FINGERPRINT_BYTES:
            f.seek(size - _FINGERPRINT_BYTES)
            h.update(f.read())
    return h.hexdigest()


def check_file(path: Path, what: str) -> GgufHeader:
    """Refuse a missing or structurally broken GGUF before llama.cpp touches it (it would abort the process);
    returns its header (modelfiles.read_gguf, the one bounds-checked GGUF reader) for the later checks to share."""
    if not path.is_file():
        raise ModelMissing(f"{what} not found: {path}")
    return read_gguf(path)


class TokenTable:
    """Rows of the text model's token_embd tensor, memory-mapped from the GGUF and dequantized per lookup."""

    def __init__(self, model_path: Path, n_embd: int, tensors: dict | None = None):
        """`tensors`: the file's tensor table when its header was read already (else it is read here)."""
        from gguf import GGML_QUANT_SIZES, GGMLQuantizationType
        from gguf.quants import dequantize

        tensors = read_gguf(model_path).tensors if tensors is None else tensors
        if "token_embd.weight" not in tensors:
            raise ValueError("no token_embd.weight tensor")
        qtype, ne, offset = tensors["token_embd.weight"]
        qtype = GGMLQuantizationType(qtype)
        block, type_size = GGML_QUANT_SIZES[qtype]
        if ne[0] != n_embd:
            raise ValueError(f"token_embd rows hold {ne[0]} values, the model embeds {n_embd}")
        row_bytes = ne[0] // block * type_size
        self._data = np.memmap(model_path, dtype=np.uint8, mode="r", offset=offset, shape=(ne[1], row_bytes))
        self._type, self._dequantize, self.n_embd = qtype, dequantize, n_embd
        self.rows(np.zeros(1, dtype=np.int64))  # fail now (unsupported type) rather than mid-query

    def rows(self, ids: np.ndarray) -> np.ndarray:
        raw = np.asarray(self._data[np.asarray(ids, dtype=np.int64)])
        if self._type == self._type.F32:
            return raw.view(np.float32).reshape(-1, self.n_embd)
        if self._type == self._type.F16:
            return raw.view(np.float16).astype(np.float32).reshape(-1, self.n_embd)
        return np.ascontiguousarray(self._dequantize(raw, self._type), dtype=np.float32).reshape(-1, self.n_embd)

