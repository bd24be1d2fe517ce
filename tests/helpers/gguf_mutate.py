"""Rewrite a GGUF file with changed metadata or without some tensors (for the crafted-file fuzz test)."""

from __future__ import annotations

from pathlib import Path

from gguf import GGUFReader, GGUFValueType, GGUFWriter


def rewrite(src: Path, dst: Path, values: dict | None = None, drop: set[str] = frozenset()) -> Path:
    """Copy `src` to `dst`, replacing metadata `values` (same value type) and leaving out the `drop` tensors."""
    values = values or {}
    reader = GGUFReader(src)
    arch = reader.fields["general.architecture"].contents()
    writer = GGUFWriter(dst, arch)
    for name, field in reader.fields.items():
        if name.startswith("GGUF.") or name == "general.architecture":
            continue
        vtype = field.types[0]
        sub = field.types[-1] if vtype == GGUFValueType.ARRAY else None
        writer.add_key_value(name, values.get(name, field.contents()), vtype, sub)
    for t in reader.tensors:
        if t.name not in drop:
            writer.add_tensor(t.name, t.data, raw_shape=list(reversed(t.shape.tolist())), raw_dtype=t.tensor_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return dst
