"""Cheap structural checks run before onnxruntime or llama.cpp sees a model file.

Native loaders crash (or worse) on truncated or hostile files; these checks turn such files into a ModelError
with a message the user can act on. They read headers only and never load weights.
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass
from pathlib import Path

from edgeret.errors import ModelError

GGUF_MAGIC = b"GGUF"
GGUF_VERSIONS = (2, 3)
GGML_MAX_DIMS = 4
# Smallest possible encodings, used to bound counts read from an untrusted header before looping over them.
_MIN_KV_BYTES = 8 + 1 + 4 + 1  # empty key, type, one-byte value
_MIN_TENSOR_INFO_BYTES = 8 + 1 + 4 + 8 + 4 + 8  # name len, name, n_dims, 1 dim, type, offset
_MAX_KEPT_STRING = 1 << 16
_SCALAR_FORMATS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
_NOT_A_MODEL = {
    b"version https://git-lfs": "a Git LFS pointer, not the model itself (download it with `git lfs pull`)",
    b"<!DOCTYPE": "an HTML page (a login or error page saved instead of the file)",
    b"<html": "an HTML page (a login or error page saved instead of the file)",
    b"{": "a JSON document, not a model",
}


class _Truncated(Exception):
    pass


def _head(path: Path, n: int) -> bytes:
    try:
        with path.open("rb") as f:
            return f.read(n)
    except OSError as e:
        raise ModelError(f"Cannot read model file {path}: {e.strerror or e}") from e


def _size(path: Path) -> int:
    if not path.is_file():
        raise ModelError(f"Model file not found: {path}")
    size = path.stat().st_size
    if size == 0:
        raise ModelError(f"Model file {path} is empty (0 bytes): download or copy it again")
    return size


def _impostor(path: Path, head: bytes) -> None:
    stripped = head.lstrip()
    for prefix, what in _NOT_A_MODEL.items():
        if stripped[: len(prefix)].lower() == prefix.lower():
            raise ModelError(f"Model file {path} is {what}")


def _gguf_prefix(path: Path, size: int) -> tuple[int, int, int]:
    """Validate the fixed 24-byte GGUF prefix; returns (version, tensor_count, kv_count)."""
    head = _head(path, 24)
    if head[:4] != GGUF_MAGIC:
        _impostor(path, head)
        raise ModelError(f"{path} is not a GGUF file (bad magic {head[:4]!r})")
    if size < 24:
        raise ModelError(f"GGUF file {path} is truncated ({size} bytes, header needs 24)")
    version, n_tensors, n_kv = struct.unpack("<IQQ", head[4:24])
    if version not in GGUF_VERSIONS:
        raise ModelError(f"GGUF file {path} has unsupported version {version} (supported: 2, 3)")
    room = size - 24
    if n_kv * _MIN_KV_BYTES > room or n_tensors * _MIN_TENSOR_INFO_BYTES > room:
        raise ModelError(
            f"GGUF file {path} is truncated or corrupt: header claims {n_tensors} tensors and {n_kv} "
            f"metadata keys, which cannot fit in {size} bytes"
        )
    return version, n_tensors, n_kv


class _GGUFWalker:
    """Bounds-checked reader over the GGUF header. Skips values without decoding them.

    gguf.GGUFReader decodes every vocabulary entry into numpy objects (7.6 s for a 150k-token vocabulary);
    this walker only steps over them, using the gguf package's type tables, so a check costs milliseconds.
    """

    def __init__(self, buf, size: int):
        from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFValueType

        self.buf, self.size, self.pos = buf, size, 24
        self.vt, self.qt, self.qsizes = GGUFValueType, GGMLQuantizationType, GGML_QUANT_SIZES
        self.scalar = {
            GGUFValueType.UINT8: 1, GGUFValueType.INT8: 1, GGUFValueType.BOOL: 1,
            GGUFValueType.UINT16: 2, GGUFValueType.INT16: 2,
            GGUFValueType.UINT32: 4, GGUFValueType.INT32: 4, GGUFValueType.FLOAT32: 4,
            GGUFValueType.UINT64: 8, GGUFValueType.INT64: 8, GGUFValueType.FLOAT64: 8,
        }  # fmt: skip

    def take(self, n: int) -> int:
        start = self.pos
        if n < 0 or start + n > self.size:
            raise _Truncated(f"needs {n} bytes at offset {start}, file has {self.size}")
        self.pos = start + n
        return start

    def u32(self) -> int:
        return struct.unpack_from("<I", self.buf, self.take(4))[0]

    def u64(self) -> int:
        return struct.unpack_from("<Q", self.buf, self.take(8))[0]

    def string(self) -> bytes:
        n = self.u64()
        start = self.take(n)
        return bytes(self.buf[start : start + n])

    def value_type(self):
        raw = self.u32()
        try:
            return self.vt(raw)
        except ValueError:
            raise ValueError(f"unknown metadata value type {raw} at offset {self.pos - 4}") from None

    def skip_value(self, vtype) -> None:
        if vtype in self.scalar:
            self.take(self.scalar[vtype])
        elif vtype == self.vt.STRING:
            self.take(self.u64())
        else:  # ARRAY
            itype, count = self.value_type(), self.u64()
            if itype in self.scalar:
                self.take(self.scalar[itype] * count)
                return
            if count > self.size - self.pos:  # each element takes at least one byte
                raise _Truncated(f"array of {count} items at offset {self.pos} cannot fit")
            for _ in range(count):
                self.skip_value(itype)

    def scalar_value(self, vtype):
        """A number, bool or (short) string value; None (stepped over) for arrays and long strings."""
        if vtype in self.scalar:
            fmt = _SCALAR_FORMATS[int(vtype)]
            return struct.unpack_from("<" + fmt, self.buf, self.take(struct.calcsize(fmt)))[0]
        if vtype == self.vt.STRING:
            n = self.u64()
            start = self.take(n)
            return bytes(self.buf[start:start + n]).decode("utf-8", "replace") if n <= _MAX_KEPT_STRING else None
        self.skip_value(vtype)
        return None

    def metadata(self, n_kv: int) -> tuple[dict, int]:
        """Read n_kv key/value pairs; return every scalar value (arrays are stepped over) and the alignment."""
        found: dict = {}
        for _ in range(n_kv):
            key = self.string().decode("utf-8", "replace")
            value = self.scalar_value(self.value_type())
            if value is not None:
                found[key] = value
        alignment = found.get("general.alignment", 32)
        if not isinstance(alignment, int) or alignment <= 0 or alignment & (alignment - 1):
            raise ValueError(f"invalid alignment {alignment}")
        return found, alignment

    def tensor_info(self) -> tuple[str, int, tuple[int, ...], int, int]:
        """Read one tensor info: (name, type, dims, offset in the data section, end in the data section)."""
        name = self.string().decode("utf-8", "replace")
        n_dims = self.u32()
        if not 1 <= n_dims <= GGML_MAX_DIMS:
            raise ValueError(f"tensor {name!r} has {n_dims} dimensions")
        dims = [self.u64() for _ in range(n_dims)]
        raw_type = self.u32()
        try:
            block, type_size = self.qsizes[self.qt(raw_type)]
        except (ValueError, KeyError):
            raise ValueError(f"tensor {name!r} has unknown type {raw_type}") from None
        offset = self.u64()
        n_elems = 1
        for d in dims:
            n_elems *= d
        if dims[0] % block:
            raise ValueError(f"tensor {name!r} row length {dims[0]} is not a multiple of block {block}")
        return name, raw_type, tuple(dims), offset, offset + n_elems // block * type_size


@dataclass(frozen=True)
class GgufHeader:
    """A GGUF file's header, read with every length and offset checked against the file."""

    path: Path
    size: int
    version: int
    values: dict  # every scalar metadata value (numbers, bools, strings up to 64 KiB); arrays are left out
    tensors: dict  # name -> (ggml type, dims, absolute offset of its data)
    data_end: int
    kv_count: int


def read_gguf(path: str | Path) -> GgufHeader:
    """The one GGUF header reader: bounds-checked, never decodes the vocabulary; raises ModelError."""
    path = Path(path)
    size = _size(path)
    version, n_tensors, n_kv = _gguf_prefix(path, size)
    try:
        with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            walker = _GGUFWalker(buf, size)
            found, alignment = walker.metadata(n_kv)
            infos = [walker.tensor_info() for _ in range(n_tensors)]
            data_start = -(-walker.pos // alignment) * alignment
    except _Truncated as e:
        raise ModelError(f"GGUF file {path} is truncated or corrupt: header {e}") from e
    except (ValueError, OverflowError, RecursionError) as e:  # RecursionError: hostile nested arrays
        raise ModelError(f"GGUF file {path} is corrupt: {e}") from e
    except OSError as e:
        raise ModelError(f"Cannot read model file {path}: {e.strerror or e}") from e
    data_end = data_start + max((end for *_, end in infos), default=0)
    if data_end > size:
        raise ModelError(f"GGUF file {path} is truncated: its tensors need {data_end} bytes, file has {size}")
    if n_tensors == 0:
        raise ModelError(f"GGUF file {path} holds no tensors")
    if not isinstance(found.get("general.architecture"), str) or not found["general.architecture"]:
        raise ModelError(f"GGUF file {path} lacks the general.architecture key")
    tensors = {name: (t, dims, data_start + off) for name, t, dims, off, _ in infos}
    return GgufHeader(path, size, int(version), found, tensors, data_end, int(n_kv))


def check_gguf(path: str | Path) -> dict:
    """Parse a GGUF header and check that every tensor lies inside the file.

    Returns {path, size, version, tensor_count, kv_count, architecture, projector_type, data_end}; raises
    ModelError for missing, empty, truncated, non-GGUF or structurally broken files.
    """
    h = read_gguf(path)
    proj = h.values.get("clip.projector_type")
    return {
        "path": str(h.path),
        "size": h.size,
        "version": h.version,
        "tensor_count": len(h.tensors),
        "kv_count": h.kv_count,
        "architecture": h.values["general.architecture"],
        "projector_type": proj if isinstance(proj, str) else None,
        "data_end": h.data_end,
    }


# ModelProto fields (onnx.proto) with their protobuf wire types: 0 varint, 2 length-delimited.
_ONNX_FIELDS = {1: 0, 2: 2, 3: 2, 4: 2, 5: 0, 6: 2, 7: 2, 8: 2, 14: 2, 20: 2, 25: 2}
_ONNX_MIN_SIZE = 32


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while pos < len(buf) and shift < 64:
        b = buf[pos]
        value |= (b & 0x7F) << shift
        pos += 1
        if not b & 0x80:
            return value, pos
        shift += 7
    raise ValueError("bad varint")


def _onnx_walk(buf: bytes, size: int) -> int | None:
    """Walk top-level ModelProto fields in `buf`; returns ir_version if seen. Raises ValueError on garbage."""
    pos, ir_version = 0, None
    while pos < len(buf):
        tag, pos = _varint(buf, pos)
        field, wire = tag >> 3, tag & 7
        if _ONNX_FIELDS.get(field) != wire:
            raise ValueError(f"unexpected field {field} (wire type {wire}) at byte {pos}")
        value, pos = _varint(buf, pos)
        if wire == 0:
            ir_version = value if field == 1 else ir_version
            continue
        if pos + value > size:
            raise ValueError(f"field {field} needs {value} bytes past byte {pos}, file has {size}")
        if pos + value > len(buf):
            break  # field extends beyond what we read; its length already fits in the file
        pos += value
    return ir_version


def _onnx_walk_file(path: Path, size: int) -> None:
    """Walk every top-level ModelProto field of the whole file by seeking: they must end exactly at its end."""
    with path.open("rb") as f:
        pos = 0
        while pos < size:
            f.seek(pos)
            head = f.read(20)  # a tag and a length: two varints of at most 10 bytes
            tag, n = _varint(head, 0)
            field, wire = tag >> 3, tag & 7
            if _ONNX_FIELDS.get(field) != wire:
                raise ValueError(f"unexpected field {field} (wire type {wire}) at byte {pos}")
            value, n = _varint(head, n)
            pos += n + (value if wire == 2 else 0)
            if pos > size:
                raise ValueError(f"field {field} ends at byte {pos}, past the file's end ({size})")


def _onnx_parse(path: Path) -> None:
    """Parse the whole model the way the encoder will: an onnxruntime session over it."""
    from .encoders import onnx_session

    onnx_session(path, threads=1)


def check_onnx(path: str | Path, full: bool = False) -> dict:
    """Sanity check of an ONNX file: non-empty, protobuf ModelProto layout, lengths that fit the file.

    `full` (import, verify) walks every top-level field to the file's end and parses the model with onnxruntime,
    so a truncated file is refused even when its first 64 KiB look right. Returns {path, size, ir_version};
    raises ModelError.
    """
    path = Path(path)
    size = _size(path)
    head = _head(path, 1 << 16)
    _impostor(path, head)
    if size < _ONNX_MIN_SIZE:
        raise ModelError(f"ONNX file {path} is too small to be a model ({size} bytes)")
    try:
        ir_version = _onnx_walk(head, size)
        if full:
            _onnx_walk_file(path, size)
    except ValueError as e:
        raise ModelError(f"{path} is not a valid ONNX model or is truncated ({e})") from e
    if full:
        _onnx_parse(path)
    if ir_version is not None and not 3 <= ir_version <= 64:
        raise ModelError(f"{path} is not a valid ONNX model (ir_version {ir_version})")
    return {"path": str(path), "size": size, "ir_version": ir_version}
