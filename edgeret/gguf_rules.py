"""What llama.cpp assumes of a GGUF re-ranker pair and never checks itself (it asserts or crashes instead).

A text model whose block count disagrees with its tensors dies in GGML_ASSERT (SIGABRT); an mmproj that declares a
projector without that projector's tensors dies in a null dereference (SIGSEGV); zero sizes divide by zero. These
rules, read from llama.cpp's loaders (src/llama-model.cpp, tools/mtmd/clip.cpp), refuse such files with a message.
"""

from __future__ import annotations

from edgeret.errors import ModelError
from edgeret.modelfiles import GgufHeader

MAX_BLOCKS = 1024
# the projector's own tensors, and the one whose output must match the text model's embedding size
PROJECTOR_TENSORS = {
    "mlp": (("mm.0.weight", "mm.2.weight"), "mm.2.weight"),
    "idefics3": (("mm.model.fc.weight",), "mm.model.fc.weight"),
    "qwen2vl_merger": (("mm.0.weight", "mm.2.weight"), "mm.2.weight"),
    "qwen2.5vl_merger": (("mm.0.weight", "mm.2.weight"), "mm.2.weight"),
    "gemma3": (("mm.input_projection.weight", "mm.soft_emb_norm.weight"), "mm.input_projection.weight"),
}


def check_pair(text: GgufHeader, proj: GgufHeader) -> None:
    """Refuse a (text model, mmproj) pair llama.cpp would abort or crash on; raises ModelError."""
    n_embd = check_text(text)
    check_projector(proj, n_embd)


def _positive(h: GgufHeader, key: str, required: bool = True) -> int:
    """`key`'s value, refused unless a positive whole number; 0 when it is absent and not `required`."""
    v = h.values.get(key)
    if v is None and not required:
        return 0
    if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
        raise ModelError(f"{h.path}: {key} must be a positive whole number (found {v!r})")
    return v


def _blocks(h: GgufHeader, prefix: str, key: str) -> None:
    n = _positive(h, key)
    if n > MAX_BLOCKS:
        raise ModelError(f"{h.path}: {key} is {n}, more layers than any model has")
    present = {int(p[len(prefix):].split(".", 1)[0]) for p in h.tensors
               if p.startswith(prefix) and p[len(prefix):].split(".", 1)[0].isdigit()}
    if present != set(range(n)):
        missing, extra = sorted(set(range(n)) - present)[:5], sorted(present - set(range(n)))[:5]
        raise ModelError(f"{h.path}: {key} says {n} layers but the tensors disagree "
                         f"(missing layers {missing or 'none'}, extra layers {extra or 'none'})")


def _require(h: GgufHeader, names) -> None:
    missing = [n for n in names if n not in h.tensors]
    if missing:
        raise ModelError(f"{h.path}: tensors {', '.join(missing)} are missing")


def check_text(h: GgufHeader) -> int:
    """Checks of the text model; returns its embedding size."""
    arch = h.values["general.architecture"]
    _blocks(h, "blk.", f"{arch}.block_count")
    n_embd = _positive(h, f"{arch}.embedding_length")
    n_head = _positive(h, f"{arch}.attention.head_count")
    _positive(h, f"{arch}.context_length")
    _positive(h, f"{arch}.attention.head_count_kv", required=False)
    if f"{arch}.attention.key_length" not in h.values and n_embd % n_head:
        raise ModelError(f"{h.path}: embedding size {n_embd} is not a multiple of the {n_head} attention heads")
    _require(h, ["token_embd.weight"])
    if h.tensors["token_embd.weight"][1][0] != n_embd:
        raise ModelError(f"{h.path}: token_embd rows hold {h.tensors['token_embd.weight'][1][0]} values, "
                         f"the model embeds {n_embd}")
    return n_embd


def check_projector(h: GgufHeader, text_embd: int) -> None:
    """Checks of the mmproj file against its projector family and the text model's embedding size."""
    family = h.values.get("clip.projector_type")
    if family not in PROJECTOR_TENSORS:
        return  # a family edgeret does not know: left to libmtmd (mllm warns that it is untested)
    image, patch = _positive(h, "clip.vision.image_size"), _positive(h, "clip.vision.patch_size")
    if patch > image:
        raise ModelError(f"{h.path}: patch size {patch} exceeds the image size {image}")
    width, heads = _positive(h, "clip.vision.embedding_length"), _positive(h, "clip.vision.attention.head_count")
    if width % heads:
        raise ModelError(f"{h.path}: vision width {width} is not a multiple of the {heads} attention heads")
    _positive(h, "clip.vision.feed_forward_length")
    _positive(h, "clip.vision.projector.scale_factor", required=family in ("idefics3", "gemma3"))
    _blocks(h, "v.blk.", "clip.vision.block_count")
    needed, final = PROJECTOR_TENSORS[family]
    _require(h, ["v.patch_embd.weight", *needed])
    if text_embd not in h.tensors[final][1]:
        raise ModelError(f"{h.path}: the projector's output {h.tensors[final][1]} does not match the text model's "
                         f"embedding size {text_embd}: the files do not belong together")
