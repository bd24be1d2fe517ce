"""The libmtmd pair scorer: a GGUF multimodal LLM judges "same object?" for (query, candidate) image pairs.

Prompt = [template head + query image + text up to the candidate] + [candidate image + question + answer cue].
The first part (the prefix) is decoded once per query; for each candidate the KV cache is truncated back to the
prefix and only the candidate's part is decoded. Candidate images are given as visual tokens (the mmproj output,
computed once and stored, see tokens.py) or as loaders that are encoded on the fly.

For plain-RoPE causal models the candidate's text tokens are looked up in the model's own token-embedding table
so that text and image embeddings go to llama.cpp in a single embedding batch (one llama_decode call); other
models decode piece by piece through libmtmd's helper, which handles M-RoPE positions and non-causal masks.

P(same) = softmax over the two answer words only; every vocabulary variant of a word ("1", " 1", "Yes",
"▁yes", ...) is merged with logsumexp. All calls must come from one thread (a llama context is not thread-safe).
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import logging
import math
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from edgeret.errors import DecodeError, EdgeretError, ModelError, ModelMissing
from edgeret.rerank.prompts import PairPrompt, get_prompt, text_prompt
from edgeret.rerank.weights import policy_from_env, weights_for

log = logging.getLogger(__name__)

# Text models whose token input is a plain row lookup in token_embd (no scaling, no extra inputs); only these
# get the single-batch path, where the candidate's text tokens are fed as embeddings alongside its image.
_PLAIN_EMBEDDING_ARCHS = {"llama", "qwen2", "qwen3"}
# mtmd projector families exercised by the tests; others may work and are allowed with a warning.
_TESTED_PROJECTORS = {"mlp", "idefics3", "qwen2vl_merger", "qwen2.5vl_merger", "gemma3"}
_DEFAULT_N_CTX = 4096
_N_BATCH = 512
_FINGERPRINT_BYTES = 1 << 20


@dataclass(frozen=True)
class _Layout:
    """A prompt cut at the candidate's marker: `prefix` is evaluated once per query, `tail` once per candidate."""

    prefix: str
    tail: str
    answers: tuple[np.ndarray, np.ndarray]  # vocabulary ids of the positive and the negative answer


class RerankerError(ModelError):
    """The re-ranker model pair cannot be used (wrong files, unsupported model, inference failure)."""


@dataclass
class VisualTokens:
    """One image's mmproj output: what the token store holds.

    chunks: (n_tokens, n_embd) float arrays, one per image chunk (multi-tile projectors give several), in order.
    size: (width, height) of the image given to mtmd; it fixes the tile layout around the chunks.
    grids: (rows, cols) of each chunk's token grid, when known (needed for pooling).
    pool: spatial pooling factor already applied to the chunks (1 = exact mmproj output).
    """

    chunks: list[np.ndarray]
    size: tuple[int, int]
    grids: list[tuple[int, int]] = field(default_factory=list)
    pool: int = 1

    @property
    def n_tokens(self) -> int:
        return sum(len(c) for c in self.chunks)


# ---------------------------------------------------------------------------------------------------------------
# llama.cpp / mtmd plumbing


def _import_backend():
    try:
        import llama_cpp
        from llama_cpp import mtmd_cpp
    except ImportError as e:  # pragma: no cover - dependency declared in pyproject
        raise ModelError(f"llama-cpp-python with libmtmd is required for re-ranking: {e}") from e
    return llama_cpp, mtmd_cpp


_LOG_CALLBACK = None  # kept alive for the life of the process: C holds the pointer


def _route_native_logs() -> None:
    """Send llama.cpp and mtmd logs to Python logging at debug level instead of stderr (mtmd ignores verbose)."""
    global _LOG_CALLBACK
    if _LOG_CALLBACK is not None:
        return
    llama_cpp, mtmd_cpp = _import_backend()
    native = logging.getLogger("edgeret.native")

    @llama_cpp.llama_log_callback
    def _cb(_level, text, _user):
        # Everything at debug: llama.cpp reports normal model loading as warnings; real failures surface as
        # return codes that edgeret turns into errors with a message.
        if native.isEnabledFor(logging.DEBUG):
            msg = text.decode("utf-8", "replace").rstrip()
            if msg:
                native.debug(msg)

    _LOG_CALLBACK = _cb
    llama_cpp.llama_log_set(_cb, ctypes.c_void_p(0))
    mtmd_cpp.mtmd_helper_log_set(_cb, ctypes.c_void_p(0))


def physical_cores() -> int:
    """Physical core count (llama.cpp runs slower on hyper-threads); falls back to the logical count."""
    try:
        cores = set()
        phys = "0"
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("physical id"):
                    phys = line.split(":")[1].strip()
                elif line.startswith("core id"):
                    cores.add((phys, line.split(":")[1].strip()))
        if cores:
            return len(cores)
    except OSError:
        pass
    return max(1, os.cpu_count() or 1)


def _fingerprint(path: Path) -> str:
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


def _check_file(path: Path, what: str) -> dict:
    """Refuse a missing or structurally broken GGUF before llama.cpp touches it (it would abort the process)."""
    if not path.is_file():
        raise ModelMissing(f"{what} not found: {path}")
    from edgeret.modelfiles import check_gguf

    return check_gguf(path)


_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
_GGUF_STRING, _GGUF_ARRAY = 8, 9


def _gguf_index(path: Path, keys: set[str]) -> tuple[dict, dict]:
    """Scalar values of `keys` and {tensor name: (type, ne, absolute offset)} from a GGUF header.

    gguf.GGUFReader decodes the whole vocabulary into Python objects (seconds for 49k tokens); this only
    steps over it. The file already passed check_gguf, so the header is known to be consistent.
    """
    import mmap
    import struct

    with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        pos = 24
        n_tensors, n_kv = struct.unpack_from("<QQ", buf, 8)

        def read(fmt: str):
            nonlocal pos
            v = struct.unpack_from("<" + fmt, buf, pos)[0]
            pos += struct.calcsize(fmt)
            return v

        def skip(vtype: int) -> None:
            nonlocal pos
            if vtype == _GGUF_STRING:
                n = read("Q")  # read first: `pos += read()` would add to the stale pos
                pos += n
            elif vtype == _GGUF_ARRAY:
                itype, count = read("I"), read("Q")
                if itype in _SCALARS:
                    pos += struct.calcsize(_SCALARS[itype]) * count
                else:
                    for _ in range(count):
                        skip(itype)
            else:
                pos += struct.calcsize(_SCALARS[vtype])

        values, alignment = {}, 32
        for _ in range(n_kv):
            n = read("Q")
            key = bytes(buf[pos:pos + n]).decode("utf-8", "replace")
            pos += n
            vtype = read("I")
            if key in keys and vtype in _SCALARS:
                values[key] = read(_SCALARS[vtype])
            elif key == "general.alignment":
                alignment = read("I")
            else:
                skip(vtype)
        tensors = {}
        for _ in range(n_tensors):
            n = read("Q")
            name = bytes(buf[pos:pos + n]).decode("utf-8", "replace")
            pos += n
            ne = tuple(read("Q") for _ in range(read("I")))
            tensors[name] = (read("I"), ne, read("Q"))
        data_start = -(-pos // alignment) * alignment
    return values, {k: (t, ne, data_start + off) for k, (t, ne, off) in tensors.items()}


class _TokenTable:
    """Rows of the text model's token_embd tensor, memory-mapped from the GGUF and dequantized per lookup."""

    def __init__(self, model_path: Path, n_embd: int):
        from gguf import GGML_QUANT_SIZES, GGMLQuantizationType
        from gguf.quants import dequantize

        _, tensors = _gguf_index(model_path, set())
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


@dataclass
class _Piece:
    """A run of the prompt: text token ids, or an image chunk's embeddings (with its mtmd chunk for the helper)."""

    tokens: np.ndarray | None = None
    embd: np.ndarray | None = None
    chunk: object = None

    def __len__(self) -> int:
        return len(self.tokens) if self.tokens is not None else len(self.embd)


# ---------------------------------------------------------------------------------------------------------------


class MllmReranker:
    """Scores (query, candidate) image pairs with a GGUF multimodal LLM through libmtmd; see the module doc."""

    def __init__(self, model_path: str | os.PathLike, mmproj_path: str | os.PathLike, *, threads: int | None = None,
                 image_tokens: int | None = None, prompt: str = "object01", n_ctx: int | None = None,
                 flash_attn: bool = False, weights: str | None = None):
        self._llama, self._mtmd = _import_backend()
        self._model = self._ctx = self._mctx = None
        self._tok_batch = self._emb_batch = None
        self.model_path, self.mmproj_path = Path(model_path), Path(mmproj_path)
        self.prompt = get_prompt(prompt)
        self.threads = threads or physical_cores()
        # Off by default: llama.cpp's CPU flash-attention kernel rounds queries to f16 only in batches shorter than its
        # tile, so a candidate decoded in one batch differs (up to 5e-3 in logits) from a piecewise evaluation;
        # without it the fast path is bit-exact.
        self.flash_attn = flash_attn
        self.weights_policy = weights or policy_from_env()
        text_info = _check_file(self.model_path, "re-ranker model")
        mm_info = _check_file(self.mmproj_path, "re-ranker mmproj")
        self.architecture, self.projector = self._check_pair(text_info, mm_info)
        self.image_tokens = image_tokens if image_tokens is not None else self._default_image_tokens()
        _route_native_logs()
        try:
            self._load(n_ctx)
            self._n_vocab = self._llama.llama_vocab_n_tokens(self._vocab)
            self._answers: dict[str, np.ndarray] = {}
            self._layout = self._make_layout(self.prompt, query_images=1)
        except BaseException:
            self.close()
            raise
        self.model_id = self._make_model_id()
        self._owner: object | None = None  # the score() generator currently using the KV cache

    # ---- loading -----------------------------------------------------------------------------------------------

    def _check_pair(self, text_info: dict, mm_info: dict) -> tuple[str, str]:
        if text_info["architecture"] == "clip":
            raise RerankerError(f"{self.model_path} is a projector (mmproj) file; pass it as the mmproj")
        if mm_info["architecture"] != "clip" or not mm_info.get("projector_type"):
            raise RerankerError(f"{self.mmproj_path} is not a multimodal projector (mmproj) file")
        proj = mm_info["projector_type"]
        if proj not in _TESTED_PROJECTORS:
            log.warning("projector family %r is not covered by edgeret's tests", proj)
        return text_info["architecture"], proj

    def _default_image_tokens(self) -> int | None:
        """Cheapest cap that keeps one full tile: one tile's token count for tiling projectors, else mtmd's own."""
        if self.projector != "idefics3":
            return None
        keys = {"clip.vision.image_size", "clip.vision.patch_size", "clip.vision.projector.scale_factor"}
        v, _ = _gguf_index(self.mmproj_path, keys)
        side = int(v.get("clip.vision.image_size", 512)) // int(v.get("clip.vision.patch_size", 16))
        return (side // int(v.get("clip.vision.projector.scale_factor", 1))) ** 2

    def _load(self, n_ctx: int | None) -> None:
        lc = self._llama
        _, tensors = _gguf_index(self.model_path, set())
        # The file llama.cpp runs (maybe an f32 copy, see weights.py); model_id stays that of the given file.
        self.weights_path = weights_for(self.model_path, tensors, self.weights_policy, _fingerprint(self.model_path))
        lc.llama_backend_init()
        mp = lc.llama_model_default_params()
        mp.n_gpu_layers = 0
        # Q8_0 weights on AMX CPUs go to llama.cpp's extra (AMX) buffer type, whose multi-token decode dies with
        # SIGSEGV or SIGILL (upstream #20824); the plain CPU buffer is safe.
        mp.use_extra_bufts = False
        self._model = lc.llama_model_load_from_file(str(self.weights_path).encode(), mp)
        if not self._model:
            raise RerankerError(f"llama.cpp could not load the re-ranker model {self.model_path}")
        if lc.llama_model_is_recurrent(self._model) or lc.llama_model_is_hybrid(self._model):
            raise RerankerError(
                f"{self.model_path}: recurrent/hybrid language models cannot rewind their state to the query prefix; "
                "pick a transformer re-ranker (SmolVLM, Qwen2-VL, Gemma 3, LLaVA)")
        self._vocab = lc.llama_model_get_vocab(self._model)
        self.n_embd = lc.llama_model_n_embd_inp(self._model)
        self._new_context(n_ctx)
        self._init_mtmd()
        self._tok_batch = lc.llama_batch_init(_N_BATCH, 0, 1)
        self._table = self._maybe_token_table()
        if self._table is not None:
            self._emb_batch = lc.llama_batch_init(_N_BATCH, self.n_embd, 1)
            self._emb_views = self._batch_views(self._emb_batch, self.n_embd)
        self._tok_views = self._batch_views(self._tok_batch, 0)

    def _new_context(self, n_ctx: int | None) -> None:
        lc = self._llama
        train_ctx = lc.llama_model_n_ctx_train(self._model)
        cp = lc.llama_context_default_params()
        cp.n_ctx = n_ctx or min(_DEFAULT_N_CTX, train_ctx if train_ctx > 0 else _DEFAULT_N_CTX)
        cp.n_batch = cp.n_ubatch = _N_BATCH
        cp.n_seq_max = 1
        cp.swa_full = True  # sliding-window caches (Gemma 3) can only be truncated back to the prefix when full
        cp.n_threads = cp.n_threads_batch = self.threads
        cp.flash_attn_type = lc.LLAMA_FLASH_ATTN_TYPE_ENABLED if self.flash_attn else lc.LLAMA_FLASH_ATTN_TYPE_DISABLED
        cp.no_perf = True
        self._ctx = lc.llama_init_from_model(self._model, cp)
        if not self._ctx:
            raise RerankerError(f"llama.cpp could not create a context of {cp.n_ctx} tokens for {self.model_path}")
        self.n_ctx = lc.llama_n_ctx(self._ctx)

    def _init_mtmd(self) -> None:
        mt = self._mtmd
        p = mt.mtmd_context_params_default()
        p.use_gpu = False
        p.print_timings = False
        p.n_threads = self.threads
        p.warmup = False
        p.flash_attn_type = (self._llama.LLAMA_FLASH_ATTN_TYPE_ENABLED if self.flash_attn
                             else self._llama.LLAMA_FLASH_ATTN_TYPE_DISABLED)  # as the stock handler's default
        if self.image_tokens is not None:
            p.image_max_tokens = int(self.image_tokens)
        self._mctx = mt.mtmd_init_from_file(str(self.mmproj_path).encode(), self._model, p)
        if not self._mctx:
            raise RerankerError(
                f"libmtmd refused the pair {self.model_path.name} + {self.mmproj_path.name}: the projector's output "
                f"size must equal the text model's embedding size ({self.n_embd}); are they from the same model?")
        if not mt.mtmd_support_vision(self._mctx):
            raise RerankerError(f"{self.mmproj_path} has no vision encoder")
        self._marker = mt.mtmd_default_marker().decode()
        self._mrope = bool(mt.mtmd_decode_use_mrope(self._mctx))
        self._non_causal = bool(mt.mtmd_decode_use_non_causal(self._mctx, None))

    def _maybe_token_table(self) -> _TokenTable | None:
        """Enable the single-batch path when the model's inputs are plain embedding-row lookups."""
        if self.architecture not in _PLAIN_EMBEDDING_ARCHS or self._mrope or self._non_causal:
            return None
        try:
            return _TokenTable(self.weights_path, self.n_embd)
        except (NotImplementedError, ValueError) as e:
            log.info("per-piece decoding for %s (token table unavailable: %s)", self.model_path.name, e)
            return None

    def _batch_views(self, batch, n_embd: int) -> dict[str, np.ndarray]:
        """numpy views over a llama_batch's arrays, so filling it costs no Python loop per token."""
        views = {
            "pos": np.ctypeslib.as_array(batch.pos, shape=(_N_BATCH,)),
            "n_seq_id": np.ctypeslib.as_array(batch.n_seq_id, shape=(_N_BATCH,)),
            "logits": np.ctypeslib.as_array(batch.logits, shape=(_N_BATCH,)),
        }
        if n_embd:
            views["embd"] = np.ctypeslib.as_array(batch.embd, shape=(_N_BATCH, n_embd))
        else:
            views["token"] = np.ctypeslib.as_array(batch.token, shape=(_N_BATCH,))
        for i in range(_N_BATCH):
            batch.seq_id[i][0] = 0
        views["n_seq_id"][:] = 1
        return views

    def _variants(self, word: str) -> np.ndarray:
        """Every vocabulary id whose piece strips and lowercases to `word` ("1", " 1", "Yes", "ĠYes", ...)."""
        buf = ctypes.create_string_buffer(64)
        ids = []
        for i in range(self._n_vocab):
            n = self._llama.llama_token_to_piece(self._vocab, i, buf, len(buf), 0, False)
            if 0 < n <= len(buf) and buf.raw[:n].decode("utf-8", "ignore").strip().lower() == word:
                ids.append(i)
        if not ids:
            raise RerankerError(f"{self.model_path.name}: the vocabulary has no token for the answer {word!r}")
        return np.array(ids, dtype=np.int64)

    def _answer(self, word: str) -> np.ndarray:
        if word not in self._answers:  # a vocabulary scan: done once per word
            self._answers[word] = self._variants(word)
        return self._answers[word]

    def _make_layout(self, prompt: PairPrompt, query_images: int) -> _Layout:
        """Render the prompt with its images and cut it at the last marker (the candidate's)."""
        text = self._chat_text(prompt, query_images + 1)
        cut = text.rfind(self._marker)
        if text.count(self._marker) != query_images + 1:
            raise RerankerError(f"{self.model_path.name}: its chat template dropped the image markers")
        return _Layout(text[:cut], text[cut:], (self._answer(prompt.positive), self._answer(prompt.negative)))

    def _layout_for(self, query) -> _Layout:
        if isinstance(query, str):
            try:
                return self._make_layout(text_prompt(query, self._marker), query_images=0)
            except ValueError as e:
                raise RerankerError(str(e)) from None
        return self._layout

    def _chat_text(self, prompt: PairPrompt, n_images: int) -> str:
        """The user turn (instruction, images, question) through the GGUF's own chat template.

        Content parts are given the way llama-cpp-python's MTMDChatHandler gives them (images as marker text),
        so the prompt matches the stock handler's; models without a template get a plain User/Assistant form.
        """
        m, i, q = self._marker, prompt.instruction + "\n", prompt.question
        raw = self._llama.llama_model_chat_template(self._model, None)
        if raw:
            from jinja2.sandbox import ImmutableSandboxedEnvironment

            env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
            tmpl = env.from_string(raw.decode("utf-8", "replace"))
            parts = [{"type": "text", "text": t} for t in (i, *[m] * n_images, q)]
            for content in (parts, i + m * n_images + q):
                try:
                    out = tmpl.render(messages=[{"role": "user", "content": content}], add_generation_prompt=True,
                                      bos_token="", eos_token="")
                except Exception:  # noqa: BLE001 - any template failure: try the next content form
                    continue
                if out.count(m) == n_images:
                    return out
        return f"User: {i}{m * n_images}{q}\nAssistant:"

    def _make_model_id(self) -> str:
        h = hashlib.sha256()
        for part in (_fingerprint(self.model_path), _fingerprint(self.mmproj_path), str(self.image_tokens)):
            h.update(part.encode())
            h.update(b"\0")
        return f"mllm-{h.hexdigest()[:20]}"

    # ---- tokenization and encoding --------------------------------------------------------------------------

    def _bitmap(self, image: Image.Image | None, size: tuple[int, int] | None = None):
        """An mtmd bitmap from raw RGB bytes, or a size-only placeholder (layout without pixels)."""
        if image is None:
            w, h = size
            bm = self._mtmd.mtmd_bitmap_init(w, h, None)
        else:
            rgb = image if image.mode == "RGB" else image.convert("RGB")
            w, h = rgb.size
            data = rgb.tobytes()
            bm = self._mtmd.mtmd_bitmap_init(w, h, (ctypes.c_ubyte * len(data)).from_buffer_copy(data))
        if not bm:
            raise DecodeError(f"libmtmd could not take a {w}x{h} image")
        return bm

    def _tokenize(self, text: str, bitmaps: list, add_special: bool):
        """mtmd_tokenize `text` (one marker per bitmap); returns an owned mtmd_input_chunks pointer."""
        mt = self._mtmd
        chunks = mt.mtmd_input_chunks_init()
        inp = mt.mtmd_input_text()
        raw = text.encode("utf-8")
        inp.text, inp.text_len, inp.add_special, inp.parse_special = raw, len(raw), add_special, True
        arr = (mt.mtmd_bitmap_p_ctypes * len(bitmaps))(*bitmaps)
        try:
            rc = mt.mtmd_tokenize(self._mctx, chunks, ctypes.byref(inp), arr, len(bitmaps))
        finally:
            for bm in bitmaps:
                mt.mtmd_bitmap_free(bm)
        if rc != 0:
            mt.mtmd_input_chunks_free(chunks)
            if rc == 2:
                raise DecodeError("libmtmd could not preprocess the image (unsupported size?)")
            raise RerankerError(f"mtmd_tokenize failed with code {rc}")
        return chunks

    def _chunk_list(self, chunks) -> list:
        mt = self._mtmd
        return [mt.mtmd_input_chunks_get(chunks, i) for i in range(mt.mtmd_input_chunks_size(chunks))]

    def _is_image(self, chunk) -> bool:
        return self._mtmd.mtmd_input_chunk_get_type(chunk) == self._mtmd.MTMD_INPUT_CHUNK_TYPE_IMAGE

    def _text_tokens(self, chunk) -> np.ndarray:
        n = ctypes.c_size_t()
        ptr = self._mtmd.mtmd_input_chunk_get_tokens_text(chunk, ctypes.byref(n))
        return np.ctypeslib.as_array(ptr, shape=(n.value,)).astype(np.int32) if n.value else np.zeros(0, np.int32)

    def _grid(self, chunk, n: int) -> tuple[int, int]:
        it = self._mtmd.mtmd_input_chunk_get_tokens_image(chunk)
        nx, ny = self._mtmd.mtmd_image_tokens_get_nx(it), self._mtmd.mtmd_image_tokens_get_ny(it)
        if nx * ny == n and ny > 1:
            return int(ny), int(nx)
        side = math.isqrt(n)
        return (side, side) if side * side == n else (1, n)

    def encode(self, image: Image.Image) -> VisualTokens:
        """Run the vision encoder + projector once; the result can be stored and scored many times."""
        self._require_open()
        chunks = self._tokenize(self._marker, [self._bitmap(image)], add_special=False)
        try:
            out, grids = [], []
            for c in self._chunk_list(chunks):
                if not self._is_image(c):
                    continue
                if self._mtmd.mtmd_encode_chunk(self._mctx, c) != 0:
                    raise RerankerError("the vision encoder failed on an image chunk")
                n = self._mtmd.mtmd_input_chunk_get_n_tokens(c)
                ptr = self._mtmd.mtmd_get_output_embd(self._mctx)
                out.append(np.ctypeslib.as_array(ptr, shape=(n, self.n_embd)).copy())
                grids.append(self._grid(c, n))
        finally:
            self._mtmd.mtmd_input_chunks_free(chunks)
        rgb_size = image.size
        return VisualTokens(chunks=out, size=(int(rgb_size[0]), int(rgb_size[1])), grids=grids)

    def _pieces(self, chunks, images: list[VisualTokens]) -> list[_Piece]:
        """Pair the layout's chunks with stored embeddings, image by image; refuses tokens of another layout."""
        feed = [(vt, c) for vt in images for c in vt.chunks]
        pieces, k = [], 0
        for c in self._chunk_list(chunks):
            if not self._is_image(c):
                pieces.append(_Piece(tokens=self._text_tokens(c)))
                continue
            if k >= len(feed):
                raise RerankerError("stored visual tokens have fewer chunks than this model's layout")
            vt, embd = feed[k]
            k += 1
            want = self._mtmd.mtmd_input_chunk_get_n_tokens(c)
            if embd.shape[1] != self.n_embd or (vt.pool == 1 and len(embd) != want):
                raise RerankerError(
                    f"stored visual tokens ({embd.shape[0]}x{embd.shape[1]}) do not fit this model's image chunk "
                    f"({want}x{self.n_embd}); they were made by another model or image-token setting")
            if vt.pool != 1 and self._table is None:
                raise RerankerError("pooled visual tokens need the single-batch path, which this model lacks")
            pieces.append(_Piece(embd=np.ascontiguousarray(embd, dtype=np.float32), chunk=c))
        if k != len(feed):
            raise RerankerError("stored visual tokens have more chunks than this model's layout")
        return pieces

    # ---- decoding ---------------------------------------------------------------------------------------------

    def _decode_pieces(self, pieces: list[_Piece], n_past: int) -> int:
        """Decode pieces at n_past with logits for the last position only; returns the new n_past."""
        total = sum(len(p) for p in pieces)
        if n_past + total > self.n_ctx:
            raise RerankerError(
                f"the prompt needs {n_past + total} tokens but the context holds {self.n_ctx}; lower the image "
                "token cap or raise n_ctx")
        if self._table is not None:
            return self._decode_as_embeddings(pieces, n_past)
        for i, p in enumerate(pieces):
            last = i == len(pieces) - 1
            n_past = self._decode_tokens(p.tokens, n_past, last) if p.tokens is not None \
                else self._decode_image_helper(p, n_past)
        return n_past

    def _decode_as_embeddings(self, pieces: list[_Piece], n_past: int) -> int:
        """One embedding batch for text and image together (text rows looked up in token_embd)."""
        rows = [self._table.rows(p.tokens) if p.tokens is not None else p.embd for p in pieces if len(p)]
        embd = np.concatenate(rows) if len(rows) > 1 else rows[0]
        return self._decode_batched(self._emb_batch, self._emb_views, "embd", embd, n_past, logits_last=True)

    def _decode_tokens(self, tokens: np.ndarray, n_past: int, logits_last: bool) -> int:
        return self._decode_batched(self._tok_batch, self._tok_views, "token", tokens, n_past, logits_last)

    def _decode_batched(self, batch, views: dict, field: str, rows: np.ndarray, n_past: int, logits_last: bool) -> int:
        """Decode `rows` (token ids or embeddings) in llama batches of at most _N_BATCH from position n_past."""
        for start in range(0, len(rows), _N_BATCH):
            part = rows[start:start + _N_BATCH]
            n = len(part)
            views[field][:n] = part
            views["pos"][:n] = np.arange(n_past, n_past + n)
            views["logits"][:n] = 0
            views["logits"][n - 1] = 1 if logits_last and start + n == len(rows) else 0
            batch.n_tokens = n
            self._llama_decode(batch)
            n_past += n
        return n_past

    def _decode_image_helper(self, piece: _Piece, n_past: int) -> int:
        """libmtmd's helper decodes stored embeddings for one chunk (M-RoPE positions, non-causal masks)."""
        new_past = self._llama.llama_pos(0)
        ptr = piece.embd.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
        rc = self._mtmd.mtmd_helper_decode_image_chunk(
            self._mctx, self._ctx, piece.chunk, ptr, n_past, 0, _N_BATCH, ctypes.byref(new_past),
            self._mtmd.mtmd_helper_post_decode_callback(lambda _b, _u: 0), None)
        if rc != 0:
            raise RerankerError(f"decoding an image chunk failed (code {rc})")
        return new_past.value

    def _llama_decode(self, batch) -> None:
        rc = self._llama.llama_decode(self._ctx, batch)
        if rc != 0:
            raise RerankerError(f"llama_decode failed with code {rc}")

    def _logits(self) -> np.ndarray:
        ptr = self._llama.llama_get_logits_ith(self._ctx, -1)
        return np.ctypeslib.as_array(ptr, shape=(self._n_vocab,)).copy()

    def _reset(self, n_keep: int = 0) -> None:
        mem = self._llama.llama_get_memory(self._ctx)
        if n_keep == 0:
            self._llama.llama_memory_clear(mem, True)
        elif not self._llama.llama_memory_seq_rm(mem, 0, n_keep, -1):
            raise RerankerError("this model's memory cannot be truncated back to the query prefix")

    # ---- scoring ----------------------------------------------------------------------------------------------

    def p_same(self, logits: np.ndarray, answers: tuple[np.ndarray, np.ndarray] | None = None) -> float:
        """Softmax over the two answer words only (default: the image prompt's); variants merged with logsumexp."""
        x = np.asarray(logits, dtype=np.float64)
        pos, neg = (float(np.logaddexp.reduce(x[ids])) for ids in (answers or self._layout.answers))
        return 1.0 / (1.0 + math.exp(neg - pos)) if neg - pos < 700 else 0.0

    def _as_tokens(self, image: Image.Image | VisualTokens) -> VisualTokens:
        return image if isinstance(image, VisualTokens) else self.encode(image)

    def _query_tokens(self, query) -> list[VisualTokens]:
        return [] if isinstance(query, str) else [self._as_tokens(query)]

    def _eval_prefix(self, query: list[VisualTokens], layout: _Layout | None = None) -> int:
        """Evaluate the prompt up to the candidate from an empty cache; returns its length."""
        layout = layout or self._layout
        chunks = self._tokenize(layout.prefix, [self._bitmap(None, q.size) for q in query], add_special=True)
        try:
            self._reset()
            return self._decode_pieces(self._pieces(chunks, query), 0)
        finally:
            self._mtmd.mtmd_input_chunks_free(chunks)

    def _eval_candidate(self, cand: VisualTokens, n_prefix: int, layout: _Layout | None = None) -> np.ndarray:
        layout = layout or self._layout
        chunks = self._tokenize(layout.tail, [self._bitmap(None, cand.size)], add_special=False)
        try:
            self._reset(n_prefix)
            self._decode_pieces(self._pieces(chunks, [cand]), n_prefix)
        finally:
            self._mtmd.mtmd_input_chunks_free(chunks)
        return self._logits()

    def score(self, query: Image.Image | VisualTokens | str,
              candidates: Iterable[VisualTokens | Callable[[], Image.Image]],
              cancel: Callable[[], bool] | None = None,
              on_encoded: Callable[[int, VisualTokens], None] | None = None) -> Iterator[tuple[int, float]]:
        """Yield (candidate index, P(same)) as each candidate is judged; stop between candidates on cancel().

        The query is a photo (the pair prompt) or a text description (P that the photo shows it). Candidates are
        stored VisualTokens or loaders returning an RGB image; loaded ones are encoded here and handed to
        on_encoded(index, tokens) so the caller can store them. A loader that fails to decode (DecodeError/OSError)
        yields NaN for that candidate and the run goes on.
        """
        self._require_open()
        owner = self._owner = object()
        layout = self._layout_for(query)
        n_prefix = self._eval_prefix(self._query_tokens(query), layout)
        for i, cand in enumerate(candidates):
            if cancel is not None and cancel():
                return
            if self._owner is not owner:
                raise EdgeretError("another scoring run started on this re-ranker; finish one before the next")
            vt = cand if isinstance(cand, VisualTokens) else self._load_and_encode(i, cand, on_encoded)
            if vt is None:
                yield i, math.nan
            else:
                yield i, self.p_same(self._eval_candidate(vt, n_prefix, layout), layout.answers)

    def _load_and_encode(self, i: int, loader: Callable[[], Image.Image],
                         on_encoded: Callable[[int, VisualTokens], None] | None) -> VisualTokens | None:
        try:
            vt = self.encode(loader())
        except (DecodeError, OSError) as e:
            log.warning("re-rank candidate %d skipped: %s", i, e)
            return None
        if on_encoded is not None:
            on_encoded(i, vt)
        return vt

    def candidate_logits(self, query: Image.Image | VisualTokens | str,
                         candidate: Image.Image | VisualTokens) -> np.ndarray:
        """Full next-token logits of one pair through the fast path (prefix + stored-token candidate)."""
        self._require_open()
        self._owner = object()
        layout = self._layout_for(query)
        n_prefix = self._eval_prefix(self._query_tokens(query), layout)
        return self._eval_candidate(self._as_tokens(candidate), n_prefix, layout)

    def naive_logits(self, query: Image.Image | str, candidate: Image.Image) -> np.ndarray:
        """Reference: the whole prompt tokenized with its images and evaluated from an empty cache by libmtmd."""
        self._require_open()
        self._owner = object()
        layout = self._layout_for(query)
        images = [candidate] if isinstance(query, str) else [query, candidate]
        chunks = self._tokenize(layout.prefix + layout.tail, [self._bitmap(im) for im in images], add_special=True)
        try:
            self._reset()
            new_past = self._llama.llama_pos(0)
            rc = self._mtmd.mtmd_helper_eval_chunks(self._mctx, self._ctx, chunks, 0, 0, _N_BATCH, True,
                                                    ctypes.byref(new_past))
            if rc != 0:
                raise RerankerError(f"mtmd_helper_eval_chunks failed with code {rc}")
        finally:
            self._mtmd.mtmd_input_chunks_free(chunks)
        return self._logits()

    def token_counts(self, query: VisualTokens, candidate: VisualTokens) -> dict[str, int]:
        """Prompt sizes: prefix, candidate image tokens and the candidate's text tokens."""
        counts = {}
        for name, text, vt, special in (("prefix", self._layout.prefix, query, True),
                                        ("candidate", self._layout.tail, candidate, False)):
            chunks = self._tokenize(text, [self._bitmap(None, vt.size)], add_special=special)
            try:
                pieces = self._pieces(chunks, [vt])
            finally:
                self._mtmd.mtmd_input_chunks_free(chunks)
            counts[name] = sum(len(p) for p in pieces)
            counts[f"{name}_image"] = sum(len(p) for p in pieces if p.embd is not None)
        counts["candidate_text"] = counts["candidate"] - counts["candidate_image"]
        return counts

    @property
    def single_batch(self) -> bool:
        """True when each candidate is decoded in one llama_decode call (embedding batch)."""
        return self._table is not None

    # ---- lifetime ---------------------------------------------------------------------------------------------

    def _require_open(self) -> None:
        if self._ctx is None:
            raise EdgeretError("the re-ranker was closed")

    def close(self) -> None:
        """Free the mtmd context, llama context and model (in that order); safe to call twice."""
        lc, mt = self._llama, self._mtmd
        for batch_attr in ("_tok_batch", "_emb_batch"):
            batch = getattr(self, batch_attr, None)
            if batch is not None:
                lc.llama_batch_free(batch)
                setattr(self, batch_attr, None)
        if self._mctx:
            mt.mtmd_free(self._mctx)
        if self._ctx:
            lc.llama_free(self._ctx)
        if self._model:
            lc.llama_model_free(self._model)
        self._mctx = self._ctx = self._model = None

    def __enter__(self) -> MllmReranker:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):  # last resort; explicit close() is the contract
        with contextlib.suppress(Exception):  # interpreter shutdown may have torn down ctypes already
            self.close()
