"""libmtmd plumbing: one GGUF text model + mmproj loaded through llama-cpp-python's ctypes bindings.

`MtmdSession` owns the llama model, its context and the mtmd context, and offers what a scorer needs: bitmaps and
mtmd tokenization, the vision encoder (`encode`: an image's visual tokens), pairing a prompt's chunks with stored
visual tokens, decoding them at a position, and the next-token logits. It knows nothing of prompts or answers
(see mllm.py).

For plain-RoPE causal models the candidate's text tokens are looked up in the model's own token-embedding table
so that text and image embeddings go to llama.cpp in a single embedding batch (one llama_decode call); other
models decode piece by piece through libmtmd's helper, which handles M-RoPE positions and non-causal masks.
All calls must come from one thread (a llama context is not thread-safe).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from edgeret.errors import DecodeError, EdgeretError, ModelError
from edgeret.modelfiles import GgufHeader
from edgeret.rerank.gguf_file import TokenTable
from edgeret.rerank.weights import weights_for

log = logging.getLogger(__name__)

# Text models whose token input is a plain row lookup in token_embd (no scaling, no extra inputs); only these
# get the single-batch path, where the candidate's text tokens are fed as embeddings alongside its image.
_PLAIN_EMBEDDING_ARCHS = {"llama", "qwen2", "qwen3"}
_DEFAULT_N_CTX = 4096
_N_BATCH = 512


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



def import_backend():
    try:
        import llama_cpp
        from llama_cpp import mtmd_cpp
    except ImportError as e:  # pragma: no cover - dependency declared in pyproject
        raise ModelError(f"llama-cpp-python with libmtmd is required for re-ranking: {e}") from e
    return llama_cpp, mtmd_cpp


_LOG_CALLBACK = None  # kept alive for the life of the process: C holds the pointer


def route_native_logs() -> None:
    """Send llama.cpp and mtmd logs to Python logging at debug level instead of stderr (mtmd ignores verbose)."""
    global _LOG_CALLBACK
    if _LOG_CALLBACK is not None:
        return
    llama_cpp, mtmd_cpp = import_backend()
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



def default_image_tokens(mmproj: GgufHeader, projector: str) -> int | None:
    """Cheapest cap that keeps one full tile: one tile's token count for tiling projectors, else mtmd's own."""
    if projector != "idefics3":
        return None
    v = mmproj.values
    side = int(v.get("clip.vision.image_size", 512)) // int(v.get("clip.vision.patch_size", 16))
    return (side // int(v.get("clip.vision.projector.scale_factor", 1))) ** 2


def square_side(mmproj: GgufHeader, projector: str, image_tokens: int | None) -> int | None:
    """The tile side photos are squashed to before libmtmd sees them, or None to hand them over as they are.

    idefics3 (SmolVLM) capped at one tile gives two chunks per image: an overview (the photo squashed to the tile)
    and one tile (the photo letterboxed into it), i.e. the vision tower runs twice over the whole photo. Given a
    square image, libmtmd's two resizes are the same one (Pillow's bicubic filter, no padding needed), so both
    chunks hold identical pixels and `MtmdSession.encode` runs the tower once. The overview is what SmolVLM was
    trained on for a whole photo; what changes is the letterboxed copy, which becomes a second squashed one.
    """
    one_tile = default_image_tokens(mmproj, projector)
    if one_tile is None or image_tokens is None or image_tokens > one_tile:
        return None
    return int(mmproj.values.get("clip.vision.image_size", 512))


@dataclass
class Piece:
    """A run of the prompt: text token ids, or an image chunk's embeddings (with its mtmd chunk for the helper)."""

    tokens: np.ndarray | None = None
    embd: np.ndarray | None = None
    chunk: object = None

    def __len__(self) -> int:
        return len(self.tokens) if self.tokens is not None else len(self.embd)


class MtmdSession:
    """A loaded text model + mmproj pair: tokenization, the vision encoder and decoding; see the module doc."""

    def __init__(self, model_path: Path, mmproj_path: Path, *, architecture: str, threads: int,
                 image_tokens: int | None, n_ctx: int | None, flash_attn: bool, weights_policy: str,
                 tensors: dict, fingerprint: str, square: int | None = None):
        """`tensors` and `fingerprint`: the text model's tensor table (modelfiles.read_gguf) and gguf_file.fingerprint,
        which the caller has already read; `square`: see square_side (None: images go to libmtmd as they are)."""
        self.square = square
        self.llama, self.mtmd = import_backend()
        self.model = self.ctx = self.mctx = None
        self._tok_batch = self._emb_batch = None
        self.model_path, self.mmproj_path = model_path, mmproj_path
        self.architecture, self.threads, self.image_tokens = architecture, threads, image_tokens
        self.flash_attn = flash_attn
        route_native_logs()
        try:
            self._load(n_ctx, weights_policy, tensors, fingerprint)
            self.n_vocab = self.llama.llama_vocab_n_tokens(self.vocab)
        except BaseException:
            self.close()
            raise

    # ---- loading -----------------------------------------------------------------------------------------------

    def _load(self, n_ctx: int | None, policy: str, tensors: dict, fingerprint: str) -> None:
        lc = self.llama
        # The file llama.cpp runs (maybe an f32 copy, see weights.py); model_id stays that of the given file.
        self.weights_path = weights_for(self.model_path, tensors, policy, fingerprint)
        lc.llama_backend_init()
        mp = lc.llama_model_default_params()
        mp.n_gpu_layers = 0
        # Q8_0 weights on AMX CPUs go to llama.cpp's extra (AMX) buffer type, whose multi-token decode dies with
        # SIGSEGV or SIGILL (upstream #20824); the plain CPU buffer is safe.
        mp.use_extra_bufts = False
        self.model = lc.llama_model_load_from_file(str(self.weights_path).encode(), mp)
        if not self.model:
            raise RerankerError(f"llama.cpp could not load the re-ranker model {self.model_path}")
        if lc.llama_model_is_recurrent(self.model) or lc.llama_model_is_hybrid(self.model):
            raise RerankerError(
                f"{self.model_path}: recurrent/hybrid language models cannot rewind their state to the query prefix; "
                "pick a transformer re-ranker (SmolVLM, Qwen2-VL, Gemma 3, LLaVA)")
        self.vocab = lc.llama_model_get_vocab(self.model)
        self.n_embd = lc.llama_model_n_embd_inp(self.model)
        self._new_context(n_ctx)
        self._init_mtmd()
        self._tok_batch = lc.llama_batch_init(_N_BATCH, 0, 1)
        # the given file's tensor table serves the token table too, unless llama.cpp runs an f32 copy
        self.table = self._maybe_token_table(tensors if self.weights_path == self.model_path else None)
        if self.table is not None:
            self._emb_batch = lc.llama_batch_init(_N_BATCH, self.n_embd, 1)
            self._emb_views = self._batch_views(self._emb_batch, self.n_embd)
        self._tok_views = self._batch_views(self._tok_batch, 0)

    def _new_context(self, n_ctx: int | None) -> None:
        lc = self.llama
        train_ctx = lc.llama_model_n_ctx_train(self.model)
        cp = lc.llama_context_default_params()
        cp.n_ctx = n_ctx or min(_DEFAULT_N_CTX, train_ctx if train_ctx > 0 else _DEFAULT_N_CTX)
        cp.n_batch = cp.n_ubatch = _N_BATCH
        cp.n_seq_max = 1
        cp.swa_full = True  # sliding-window caches (Gemma 3) can only be truncated back to the prefix when full
        cp.n_threads = cp.n_threads_batch = self.threads
        cp.flash_attn_type = lc.LLAMA_FLASH_ATTN_TYPE_ENABLED if self.flash_attn else lc.LLAMA_FLASH_ATTN_TYPE_DISABLED
        cp.no_perf = True
        self.ctx = lc.llama_init_from_model(self.model, cp)
        if not self.ctx:
            raise RerankerError(f"llama.cpp could not create a context of {cp.n_ctx} tokens for {self.model_path}")
        self.n_ctx = lc.llama_n_ctx(self.ctx)

    def _init_mtmd(self) -> None:
        mt = self.mtmd
        p = mt.mtmd_context_params_default()
        p.use_gpu = False
        p.print_timings = False
        p.n_threads = self.threads
        p.warmup = False
        # The vision tower keeps libmtmd's default (auto: flash attention on the CPU), whatever the text model does:
        # its K/V are rounded to f16 either way only inside this one encode, every later use of the tokens (fast
        # path, full evaluation, store) shares it, and it is 10-20% faster than the dense attention
        # (scripts/bench_rerank.py --vs-loop, docs/performance.md). `flash_attn` is the text model's switch.
        p.flash_attn_type = self.llama.LLAMA_FLASH_ATTN_TYPE_AUTO
        if self.image_tokens is not None:
            p.image_max_tokens = int(self.image_tokens)
        self.mctx = mt.mtmd_init_from_file(str(self.mmproj_path).encode(), self.model, p)
        if not self.mctx:
            raise RerankerError(
                f"libmtmd refused the pair {self.model_path.name} + {self.mmproj_path.name}: the projector's output "
                f"size must equal the text model's embedding size ({self.n_embd}); are they from the same model?")
        if not mt.mtmd_support_vision(self.mctx):
            raise RerankerError(f"{self.mmproj_path} has no vision encoder")
        self.marker = mt.mtmd_default_marker().decode()
        self.mrope = bool(mt.mtmd_decode_use_mrope(self.mctx))
        self.non_causal = bool(mt.mtmd_decode_use_non_causal(self.mctx, None))

    def _maybe_token_table(self, tensors: dict | None) -> TokenTable | None:
        """Enable the single-batch path when the model's inputs are plain embedding-row lookups."""
        if self.architecture not in _PLAIN_EMBEDDING_ARCHS or self.mrope or self.non_causal:
            return None
        try:
            return TokenTable(self.weights_path, self.n_embd, tensors)
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

    # ---- tokenization and encoding --------------------------------------------------------------------------

    def bitmap(self, image: Image.Image | None, size: tuple[int, int] | None = None):
        """An mtmd bitmap from raw RGB bytes, or a size-only placeholder (layout without pixels)."""
        if image is None:
            w, h = size
            bm = self.mtmd.mtmd_bitmap_init(w, h, None)
        else:
            rgb = image if image.mode == "RGB" else image.convert("RGB")
            w, h = rgb.size
            data = rgb.tobytes()
            bm = self.mtmd.mtmd_bitmap_init(w, h, (ctypes.c_ubyte * len(data)).from_buffer_copy(data))
        if not bm:
            raise DecodeError(f"libmtmd could not take a {w}x{h} image")
        return bm

    def tokenize(self, text: str, bitmaps: list, add_special: bool):
        """mtmd_tokenize `text` (one marker per bitmap); returns an owned mtmd_input_chunks pointer."""
        mt = self.mtmd
        chunks = mt.mtmd_input_chunks_init()
        inp = mt.mtmd_input_text()
        raw = text.encode("utf-8")
        inp.text, inp.text_len, inp.add_special, inp.parse_special = raw, len(raw), add_special, True
        arr = (mt.mtmd_bitmap_p_ctypes * len(bitmaps))(*bitmaps)
        try:
            rc = mt.mtmd_tokenize(self.mctx, chunks, ctypes.byref(inp), arr, len(bitmaps))
        finally:
            for bm in bitmaps:
                mt.mtmd_bitmap_free(bm)
        if rc != 0:
            mt.mtmd_input_chunks_free(chunks)
            if rc == 2:
                raise DecodeError("libmtmd could not preprocess the image (unsupported size?)")
            raise RerankerError(f"mtmd_tokenize failed with code {rc}")
        return chunks

    @contextlib.contextmanager
    def tokenized(self, text: str, bitmaps: list, add_special: bool):
        """tokenize() as a context: the chunks are freed on leaving it."""
        chunks = self.tokenize(text, bitmaps, add_special)
        try:
            yield chunks
        finally:
            self.mtmd.mtmd_input_chunks_free(chunks)

    def chunk_list(self, chunks) -> list:
        mt = self.mtmd
        return [mt.mtmd_input_chunks_get(chunks, i) for i in range(mt.mtmd_input_chunks_size(chunks))]

    def is_image(self, chunk) -> bool:
        return self.mtmd.mtmd_input_chunk_get_type(chunk) == self.mtmd.MTMD_INPUT_CHUNK_TYPE_IMAGE

    def text_tokens(self, chunk) -> np.ndarray:
        n = ctypes.c_size_t()
        ptr = self.mtmd.mtmd_input_chunk_get_tokens_text(chunk, ctypes.byref(n))
        return np.ctypeslib.as_array(ptr, shape=(n.value,)).astype(np.int32) if n.value else np.zeros(0, np.int32)

    def _grid(self, chunk, n: int) -> tuple[int, int]:
        it = self.mtmd.mtmd_input_chunk_get_tokens_image(chunk)
        nx, ny = self.mtmd.mtmd_image_tokens_get_nx(it), self.mtmd.mtmd_image_tokens_get_ny(it)
        if nx * ny == n and ny > 1:
            return int(ny), int(nx)
        side = math.isqrt(n)
        return (side, side) if side * side == n else (1, n)

    def prepared(self, image: Image.Image) -> Image.Image:
        """The RGB image libmtmd is given for `image`: squashed to the tile when `square` is set (square_side)."""
        rgb = image if image.mode == "RGB" else image.convert("RGB")
        if self.square is None or rgb.size == (self.square, self.square):
            return rgb
        return rgb.resize((self.square, self.square), Image.Resampling.BICUBIC)

    def encode(self, image: Image.Image, *, every_chunk: bool = False) -> VisualTokens:
        """Run the vision encoder + projector once; the result can be stored and scored many times.

        With `square` set, the image's chunks are the same pixels twice (square_side): the tower runs on the first
        and its output is copied, unless `every_chunk` (the tests compare both ways)."""
        self.require_open()
        image = self.prepared(image)
        out, grids = [], []
        with self.tokenized(self.marker, [self.bitmap(image)], add_special=False) as chunks:
            images = [c for c in self.chunk_list(chunks) if self.is_image(c)]
            twins = self.square is not None and not every_chunk and len(images) == 2
            for i, c in enumerate(images):
                n = self.mtmd.mtmd_input_chunk_get_n_tokens(c)
                if twins and i == 1 and len(out[0]) == n:
                    out.append(out[0].copy())
                else:
                    if self.mtmd.mtmd_encode_chunk(self.mctx, c) != 0:
                        raise RerankerError("the vision encoder failed on an image chunk")
                    ptr = self.mtmd.mtmd_get_output_embd(self.mctx)
                    out.append(np.ctypeslib.as_array(ptr, shape=(n, self.n_embd)).copy())
                grids.append(self._grid(c, n))
        return VisualTokens(chunks=out, size=(int(image.size[0]), int(image.size[1])), grids=grids)

    def pieces(self, chunks, images: list[VisualTokens]) -> list[Piece]:
        """Pair the layout's chunks with stored embeddings, image by image; refuses tokens of another layout."""
        feed = [(vt, c) for vt in images for c in vt.chunks]
        pieces, k = [], 0
        for c in self.chunk_list(chunks):
            if not self.is_image(c):
                pieces.append(Piece(tokens=self.text_tokens(c)))
                continue
            if k >= len(feed):
                raise RerankerError("stored visual tokens have fewer chunks than this model's layout")
            vt, embd = feed[k]
            k += 1
            want = self.mtmd.mtmd_input_chunk_get_n_tokens(c)
            if embd.shape[1] != self.n_embd or (vt.pool == 1 and len(embd) != want):
                raise RerankerError(
                    f"stored visual tokens ({embd.shape[0]}x{embd.shape[1]}) do not fit this model's image chunk "
                    f"({want}x{self.n_embd}); they were made by another model or image-token setting")
            if vt.pool != 1 and self.table is None:
                raise RerankerError("pooled visual tokens need the single-batch path, which this model lacks")
            pieces.append(Piece(embd=np.ascontiguousarray(embd, dtype=np.float32), chunk=c))
        if k != len(feed):
            raise RerankerError("stored visual tokens have more chunks than this model's layout")
        return pieces

    # ---- decoding ---------------------------------------------------------------------------------------------

    def decode_pieces(self, pieces: list[Piece], n_past: int) -> int:
        """Decode pieces at n_past with logits for the last position only; returns the new n_past."""
        total = sum(len(p) for p in pieces)
        if n_past + total > self.n_ctx:
            raise RerankerError(
                f"the prompt needs {n_past + total} tokens but the context holds {self.n_ctx}; lower the image "
                "token cap or raise n_ctx")
        if self.table is not None:
            return self._decode_as_embeddings(pieces, n_past)
        for i, p in enumerate(pieces):
            last = i == len(pieces) - 1
            n_past = self._decode_tokens(p.tokens, n_past, last) if p.tokens is not None \
                else self._decode_image_helper(p, n_past)
        return n_past

    def _decode_as_embeddings(self, pieces: list[Piece], n_past: int) -> int:
        """One embedding batch for text and image together (text rows looked up in token_embd)."""
        rows = [self.table.rows(p.tokens) if p.tokens is not None else p.embd for p in pieces if len(p)]
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

    def _decode_image_helper(self, piece: Piece, n_past: int) -> int:
        """libmtmd's helper decodes stored embeddings for one chunk (M-RoPE positions, non-causal masks)."""
        new_past = self.llama.llama_pos(0)
        ptr = piece.embd.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
        rc = self.mtmd.mtmd_helper_decode_image_chunk(
            self.mctx, self.ctx, piece.chunk, ptr, n_past, 0, _N_BATCH, ctypes.byref(new_past),
            self.mtmd.mtmd_helper_post_decode_callback(lambda _b, _u: 0), None)
        if rc != 0:
            raise RerankerError(f"decoding an image chunk failed (code {rc})")
        return new_past.value

    def _llama_decode(self, batch) -> None:
        rc = self.llama.llama_decode(self.ctx, batch)
        if rc != 0:
            raise RerankerError(f"llama_decode failed with code {rc}")

    def logits(self) -> np.ndarray:
        ptr = self.llama.llama_get_logits_ith(self.ctx, -1)
        return np.ctypeslib.as_array(ptr, shape=(self.n_vocab,)).copy()

    def reset(self, n_keep: int = 0) -> None:
        mem = self.llama.llama_get_memory(self.ctx)
        if n_keep == 0:
            self.llama.llama_memory_clear(mem, True)
        elif not self.llama.llama_memory_seq_rm(mem, 0, n_keep, -1):
            raise RerankerError("this model's memory cannot be truncated back to the query prefix")

    def eval_chunks(self, chunks) -> None:
        """libmtmd's own evaluation of a whole tokenized prompt (images encoded by it) from an empty cache."""
        self.reset()
        new_past = self.llama.llama_pos(0)
        rc = self.mtmd.mtmd_helper_eval_chunks(self.mctx, self.ctx, chunks, 0, 0, _N_BATCH, True,
                                               ctypes.byref(new_past))
        if rc != 0:
            raise RerankerError(f"mtmd_helper_eval_chunks failed with code {rc}")

    @property
    def single_batch(self) -> bool:
        """True when each candidate is decoded in one llama_decode call (embedding batch)."""
        return self.table is not None

    # ---- lifetime ---------------------------------------------------------------------------------------------

    def require_open(self) -> None:
        if self.ctx is None:
            raise EdgeretError("the re-ranker was closed")

    def close(self) -> None:
        """Free the mtmd context, llama context and model (in that order); safe to call twice."""
        lc, mt = self.llama, self.mtmd
        for batch_attr in ("_tok_batch", "_emb_batch"):
            batch = getattr(self, batch_attr, None)
            if batch is not None:
                lc.llama_batch_free(batch)
                setattr(self, batch_attr, None)
        if self.mctx:
            mt.mtmd_free(self.mctx)
        if self.ctx:
            lc.llama_free(self.ctx)
        if self.model:
            lc.llama_model_free(self.model)
        self.mctx = self.ctx = self.model = None

    def __del__(self):  # last resort; explicit close() is the contract
        with contextlib.suppress(Exception):  # interpreter shutdown may have torn down ctypes already
            self.close()
