"""Deterministic random-weight GGUF text model + mmproj pairs for tests and benchmarks.

Projector families: "mlp" (LLaVA) and "idefics3" (SmolVLM) with a llama text model, "qwen2vl" and "qwen25vl"
(Qwen2-VL, Qwen2.5-VL) with an M-RoPE qwen2vl text model, "gemma3" with a sliding-window gemma3 text model.
Two sizes:
- "tiny": a 2-layer text model and a 2-layer vision tower, each file well under 1 MB;
- "smolvlm-256m": the real layer sizes of SmolVLM-256M-Instruct (SmolLM2-135M-shaped text model with the real
  49,280-token vocabulary, idefics3 mmproj with SigLIP-B/16-512 sizes), for the benchmark.

Weights are random, so answers are meaningless but fully deterministic for a given seed.
Usage: python scripts/tiny_gguf.py OUT_DIR [--projector mlp|idefics3|qwen2vl|qwen25vl|gemma3] [--shape tiny|...]
       [--text-type f32|f16|bf16|q8_0]
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType, GGUFWriter
from gguf.quants import quantize

# SmolVLM's own chat template (what ggml-org's GGUF carries), so MTMDChatHandler renders the real prompt shape.
SMOLVLM_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}"
    "{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n"
    "{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)

SPECIAL_TOKENS = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<end_of_utterance>",
    "<fake_token_around_image>", "<global-img>", "<image>",
] + [f"<row_{r}_col_{c}>" for r in range(1, 7) for c in range(1, 7)]

# Words that become single tokens (as in a real BPE vocabulary), so prompts have realistic token counts; they
# include the answer words and their variants ("Yes", " Yes", "yes", ...) that the re-ranker merges.
WORDS = [
    "Do", "the", "first", "and", "second", "image", "show", "exact", "same", "object", "instance", "not", "just",
    "kind", "of", "Answer", "with", "a", "single", "digit", "if", "they", "do", "Yes", "No", "yes", "no", "or",
    "for", "User", "Assistant", "these", "two", "images", "photo", "picture",
]


def _word_merges() -> list[str]:
    """Train byte-level BPE merges on WORDS (bare and space-prefixed) until each word is one token, plus "\n\n".

    Real training (most frequent adjacent pair first) keeps the merge ranks consistent, so llama.cpp's BPE
    tokenizer reproduces the single-token words; hand-made merge chains would collide between words.
    """
    words = [list(w) for word in dict.fromkeys(WORDS) for w in (word, "Ġ" + word)]
    merges = ["Ċ Ċ"]
    while True:
        pairs: dict[tuple[str, str], int] = {}
        for w in words:
            for pair in zip(w, w[1:], strict=False):
                pairs[pair] = pairs.get(pair, 0) + 1
        if not pairs:
            return merges
        best = max(pairs, key=lambda p: (pairs[p], p))  # ties broken deterministically
        merges.append(f"{best[0]} {best[1]}")
        for w in words:
            i = 0
            while i < len(w) - 1:
                if (w[i], w[i + 1]) == best:
                    w[i:i + 2] = [w[i] + w[i + 1]]
                i += 1


MERGES = _word_merges()

# family name -> the GGUF's clip.projector_type, and the text architecture that goes with it
PROJECTORS = {"mlp": "mlp", "idefics3": "idefics3", "qwen2vl": "qwen2vl_merger", "qwen25vl": "qwen2.5vl_merger",
              "gemma3": "gemma3"}
TEXT_ARCH = {"qwen2vl": "qwen2vl", "qwen25vl": "qwen2vl", "gemma3": "gemma3"}
SLIDING_WINDOW = 24  # gemma3 text models: tokens each sliding-window layer looks back over

QTYPES = {"f32": GGMLQuantizationType.F32, "f16": GGMLQuantizationType.F16, "bf16": GGMLQuantizationType.BF16,
          "q8_0": GGMLQuantizationType.Q8_0}


@dataclass(frozen=True)
class TextShape:
    n_embd: int = 64
    n_layer: int = 2
    n_head: int = 4
    n_head_kv: int = 2
    n_ff: int = 96
    n_vocab: int | None = None  # None: just the byte, special and merged tokens (~310)
    n_ctx: int = 4096
    rope_theta: float = 10000.0


@dataclass(frozen=True)
class VisionShape:
    image_size: int = 32
    patch_size: int = 4
    n_embd: int = 32
    n_ff: int = 64
    n_layer: int = 2
    n_head: int = 2
    scale_factor: int = 2  # idefics3 pixel shuffle; 8x8 patches -> 4x4 = 16 tokens per tile
    longest_edge: int = 64  # idefics3 preprocessing: up to 2x2 tiles + overview when uncapped


SHAPES = {
    "tiny": (TextShape(), VisionShape()),
    "smolvlm-256m": (
        TextShape(n_embd=576, n_layer=30, n_head=9, n_head_kv=3, n_ff=1536, n_vocab=49280, n_ctx=8192,
                  rope_theta=100000.0),
        VisionShape(image_size=512, patch_size=16, n_embd=768, n_ff=3072, n_layer=12, n_head=12,
                    scale_factor=4, longest_edge=2048),
    ),
}


def _byte_tokens() -> list[str]:
    """GPT-2's byte-to-unicode table, so the byte-level BPE tokenizer can spell any text."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), 256))
    table, extra = {}, 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return [table[b] for b in range(256)]


def vocabulary(n_vocab: int | None) -> tuple[list[str], list[int]]:
    """Tokens and token types (1 normal, 3 control), padded with unique filler words up to n_vocab."""
    tokens = SPECIAL_TOKENS + _byte_tokens() + list(dict.fromkeys(m.replace(" ", "") for m in MERGES))
    types = [3] * len(SPECIAL_TOKENS) + [1] * (len(tokens) - len(SPECIAL_TOKENS))
    if n_vocab is not None:
        fill = n_vocab - len(tokens)
        tokens += [f"Ġw{i}" for i in range(fill)]
        types += [1] * fill
    return tokens, types


class _Weights:
    """Seeded random tensors; matrices scaled 1/sqrt(fan_in) so activations and logits stay O(1)."""

    def __init__(self, seed: int, mat_type: str):
        self.rng = np.random.default_rng(seed)
        self.mat_type = QTYPES[mat_type]

    def vec(self, n: int, scale: float = 0.0, base: float = 1.0) -> np.ndarray:
        return (base + scale * self.rng.standard_normal(n)).astype(np.float32)

    def mat(self, rows: int, cols: int, std: float | None = None) -> np.ndarray:
        std = 1.0 / np.sqrt(cols) if std is None else std
        return (std * self.rng.standard_normal((rows, cols), dtype=np.float32)).astype(np.float32)

    def add_mat(self, w: GGUFWriter, name: str, rows: int, cols: int, std: float | None = None) -> None:
        """Add a (rows, cols) matrix (ggml ne = [cols, rows]) in the configured storage type."""
        m = self.mat(rows, cols, std)
        if self.mat_type == GGMLQuantizationType.F32:
            w.add_tensor(name, m)
        elif self.mat_type == GGMLQuantizationType.F16:
            w.add_tensor(name, m.astype(np.float16))
        else:
            w.add_tensor(name, quantize(m, self.mat_type), raw_dtype=self.mat_type)


def write_text_model(path: str | Path, shape: TextShape = TextShape(), *, text_type: str = "f32",
                     seed: int = 0, chat_template: str = SMOLVLM_TEMPLATE, arch: str = "llama") -> Path:
    """Write a "llama", "qwen2vl" (M-RoPE, q/k/v biases) or "gemma3" (sliding-window attention, q/k norms,
    post-norms) text model with a byte-level BPE vocabulary."""
    if arch not in ("llama", "qwen2vl", "gemma3"):
        raise ValueError(f"unknown text architecture {arch!r}")
    path = Path(path)
    s = shape
    tokens, types = vocabulary(s.n_vocab)
    head_dim = s.n_embd // s.n_head
    w = GGUFWriter(str(path), arch)
    w.add_name("edgeret-test-text")
    w.add_context_length(s.n_ctx)
    w.add_embedding_length(s.n_embd)
    w.add_block_count(s.n_layer)
    w.add_feed_forward_length(s.n_ff)
    w.add_head_count(s.n_head)
    w.add_head_count_kv(s.n_head_kv)
    w.add_rope_dimension_count(head_dim)
    w.add_rope_freq_base(s.rope_theta)
    if arch == "qwen2vl":  # M-RoPE: temporal, height, width (and an unused 4th) shares of the rotated half
        half = head_dim // 2
        w.add_rope_dimension_sections([half - 2 * (half * 3 // 8), half * 3 // 8, half * 3 // 8, 0])
    if arch == "gemma3":  # a window shorter than a prompt, so the sliding-window cache and mask really act
        w.add_sliding_window(SLIDING_WINDOW)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(len(tokens))
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(MERGES)
    w.add_bos_token_id(tokens.index("<|im_start|>"))
    w.add_eos_token_id(tokens.index("<end_of_utterance>"))
    w.add_pad_token_id(tokens.index("<|endoftext|>"))
    w.add_add_bos_token(False)
    w.add_chat_template(chat_template)

    r = _Weights(seed, text_type)
    r.add_mat(w, "token_embd.weight", len(tokens), s.n_embd, std=1.0)
    w.add_tensor("output_norm.weight", r.vec(s.n_embd, 0.1))
    r.add_mat(w, "output.weight", len(tokens), s.n_embd)
    kv = s.n_head_kv * head_dim
    for i in range(s.n_layer):
        p = f"blk.{i}."
        w.add_tensor(p + "attn_norm.weight", r.vec(s.n_embd, 0.1))
        r.add_mat(w, p + "attn_q.weight", s.n_embd, s.n_embd)
        r.add_mat(w, p + "attn_k.weight", kv, s.n_embd)
        r.add_mat(w, p + "attn_v.weight", kv, s.n_embd)
        if arch == "qwen2vl":
            for name, n in (("attn_q", s.n_embd), ("attn_k", kv), ("attn_v", kv)):
                w.add_tensor(p + name + ".bias", r.vec(n, 0.02, 0.0))
        r.add_mat(w, p + "attn_output.weight", s.n_embd, s.n_embd)
        if arch == "gemma3":
            for name, n in (("attn_q_norm", head_dim), ("attn_k_norm", head_dim), ("post_attention_norm", s.n_embd),
                            ("post_ffw_norm", s.n_embd)):
                w.add_tensor(p + name + ".weight", r.vec(n, 0.1))
        w.add_tensor(p + "ffn_norm.weight", r.vec(s.n_embd, 0.1))
        r.add_mat(w, p + "ffn_gate.weight", s.n_ff, s.n_embd)
        r.add_mat(w, p + "ffn_up.weight", s.n_ff, s.n_embd)
        r.add_mat(w, p + "ffn_down.weight", s.n_embd, s.n_ff)
    _finish(w)
    return path


def write_mmproj(path: str | Path, projector: str, shape: VisionShape = VisionShape(), *, text_embd: int = 64,
                 weight_type: str = "f32", seed: int = 1) -> Path:
    """Write a vision tower with an "mlp" (LLaVA), "idefics3" (SmolVLM), "qwen2vl", "qwen25vl" or "gemma3" projector.

    qwen2vl: two patch convolutions (the temporal pair), no position table (2-D rotary inside the tower), and a
    2x2-merging MLP projector; its tokens are placed with M-RoPE by the text model. qwen25vl adds windowed attention
    in every other layer, RMS norms and gated (SiLU) MLPs.
    """
    if projector not in PROJECTORS:
        raise ValueError(f"unknown projector family {projector!r}")
    path = Path(path)
    s = shape
    n_patches = (s.image_size // s.patch_size) ** 2
    w = GGUFWriter(str(path), "clip")
    w.add_name(f"edgeret-test-mmproj-{projector}")
    w.add_bool("clip.has_vision_encoder", True)
    w.add_string("clip.projector_type", PROJECTORS[projector])
    w.add_uint32("clip.vision.image_size", s.image_size)
    w.add_uint32("clip.vision.patch_size", s.patch_size)
    w.add_uint32("clip.vision.embedding_length", s.n_embd)
    w.add_uint32("clip.vision.feed_forward_length", s.n_ff)
    w.add_uint32("clip.vision.block_count", s.n_layer)
    w.add_uint32("clip.vision.projection_dim", text_embd)
    w.add_uint32("clip.vision.attention.head_count", s.n_head)
    w.add_float32("clip.vision.attention.layer_norm_epsilon", 1e-6)
    w.add_array("clip.vision.image_mean", [0.5, 0.5, 0.5])
    w.add_array("clip.vision.image_std", [0.5, 0.5, 0.5])
    qwen = projector in ("qwen2vl", "qwen25vl")
    if projector == "qwen25vl":
        w.add_bool("clip.use_silu", True)
        w.add_uint32("clip.vision.n_wa_pattern", 2)  # layer 2 attends globally, layer 1 within windows
        w.add_uint32("clip.vision.window_size", 2 * 2 * s.patch_size)  # 2x2 merged tokens per window
    if projector == "gemma3":
        w.add_bool("clip.use_gelu", True)
        w.add_uint32("clip.vision.projector.scale_factor", s.scale_factor)  # average pooling, as tinygemma3
    if projector == "idefics3":
        w.add_bool("clip.use_gelu", True)
        w.add_uint32("clip.vision.projector.scale_factor", s.scale_factor)
        w.add_uint32("clip.vision.preproc_image_size", s.longest_edge)

    r = _Weights(seed, weight_type)
    # The patch convolution and position table stay f32: ggml's im2col path wants a float kernel.
    convs = ("v.patch_embd.weight", "v.patch_embd.weight.1") if qwen else ("v.patch_embd.weight",)
    for name in convs:
        w.add_tensor(name, r.rng.standard_normal((s.n_embd, 3, s.patch_size, s.patch_size), dtype=np.float32)
                     / np.float32(np.sqrt(3 * s.patch_size**2 * len(convs))))
    if not qwen:
        w.add_tensor("v.patch_embd.bias", r.vec(s.n_embd, 0.02, 0.0))
        w.add_tensor("v.position_embd.weight", r.mat(n_patches, s.n_embd, std=0.5))
    for i in range(s.n_layer):
        p = f"v.blk.{i}."
        for name in ("attn_q", "attn_k", "attn_v", "attn_out"):
            r.add_mat(w, p + name + ".weight", s.n_embd, s.n_embd)
            w.add_tensor(p + name + ".bias", r.vec(s.n_embd, 0.02, 0.0))
        for ln in ("ln1", "ln2"):
            w.add_tensor(p + ln + ".weight", r.vec(s.n_embd, 0.1))
            w.add_tensor(p + ln + ".bias", r.vec(s.n_embd, 0.02, 0.0))
        for ffn in ("ffn_gate", "ffn_up") if projector == "qwen25vl" else ("ffn_up",):
            r.add_mat(w, p + ffn + ".weight", s.n_ff, s.n_embd)
            w.add_tensor(p + ffn + ".bias", r.vec(s.n_ff, 0.02, 0.0))
        r.add_mat(w, p + "ffn_down.weight", s.n_embd, s.n_ff)
        w.add_tensor(p + "ffn_down.bias", r.vec(s.n_embd, 0.02, 0.0))
    if qwen:
        if projector == "qwen25vl":
            w.add_tensor("v.post_ln.weight", r.vec(s.n_embd, 0.1))
        hidden = s.n_embd * 4
        r.add_mat(w, "mm.0.weight", hidden, s.n_embd * 4)
        w.add_tensor("mm.0.bias", r.vec(hidden, 0.02, 0.0))
        r.add_mat(w, "mm.2.weight", text_embd, hidden)
        w.add_tensor("mm.2.bias", r.vec(text_embd, 0.02, 0.0))
    elif projector == "gemma3":
        w.add_tensor("v.post_ln.weight", r.vec(s.n_embd, 0.1))
        w.add_tensor("v.post_ln.bias", r.vec(s.n_embd, 0.02, 0.0))
        w.add_tensor("mm.soft_emb_norm.weight", r.vec(s.n_embd, 0.1))
        r.add_mat(w, "mm.input_projection.weight", s.n_embd, text_embd)
    elif projector == "mlp":
        hidden = text_embd
        r.add_mat(w, "mm.0.weight", hidden, s.n_embd)
        w.add_tensor("mm.0.bias", r.vec(hidden, 0.02, 0.0))
        r.add_mat(w, "mm.2.weight", text_embd, hidden)
        w.add_tensor("mm.2.bias", r.vec(text_embd, 0.02, 0.0))
    else:
        w.add_tensor("v.post_ln.weight", r.vec(s.n_embd, 0.1))
        w.add_tensor("v.post_ln.bias", r.vec(s.n_embd, 0.02, 0.0))
        r.add_mat(w, "mm.model.fc.weight", text_embd, s.n_embd * s.scale_factor**2)
    _finish(w)
    return path


def _finish(w: GGUFWriter) -> None:
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def make_pair(out_dir: str | Path, projector: str = "mlp", *, shape: str = "tiny", text_type: str = "f32",
              mmproj_type: str = "f32", text_embd: int | None = None, seed: int = 0,
              reuse: bool = False) -> tuple[Path, Path]:
    """Write (text model, mmproj) into out_dir; text_embd overrides the projector output size (mismatch tests).

    reuse=True keeps files already generated with the same settings (the benchmark's 280 MB take a while).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    text_shape, vision_shape = SHAPES[shape]
    stem = f"{shape}-{projector}-{text_type}-s{seed}"
    model = out / f"{stem}.gguf"
    mmproj = out / f"mmproj-{stem}-{mmproj_type}-e{text_embd or text_shape.n_embd}.gguf"
    if not (reuse and model.is_file()):
        write_text_model(model, text_shape, text_type=text_type, seed=seed,
                         arch=TEXT_ARCH.get(projector, "llama"))
    if not (reuse and mmproj.is_file()):
        write_mmproj(mmproj, projector, vision_shape, text_embd=text_embd or text_shape.n_embd,
                     weight_type=mmproj_type, seed=seed + 1)
    return model, mmproj


def main(argv: list[str] | None = None) -> None:
    """The command line: write a (text model, mmproj) pair into OUT_DIR and print their paths."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out_dir")
    ap.add_argument("--projector", choices=sorted(PROJECTORS), default="idefics3")
    ap.add_argument("--shape", choices=sorted(SHAPES), default="tiny")
    ap.add_argument("--text-type", choices=sorted(QTYPES), default="f32")
    ap.add_argument("--mmproj-type", choices=sorted(QTYPES), default="f32")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    model, mmproj = make_pair(a.out_dir, a.projector, shape=a.shape, text_type=a.text_type,
                              mmproj_type=a.mmproj_type, seed=a.seed)
    print(model)
    print(mmproj)


if __name__ == "__main__":
    main()
