"""The reference a cold re-rank is judged against: a straightforward libmtmd loop, written as its docs suggest.

Per candidate photo: decode it with Pillow, `mtmd_tokenize` the candidate's part of the prompt (its media marker +
the question) with the photo as the bitmap, `mtmd_encode_chunk` each image chunk, then score: truncate the KV cache
back to the query prefix, decode the image chunks' embeddings (`mtmd_helper_decode_image_chunk`) and the text
(`mtmd_helper_eval_chunk_single`), read the two answer logits. Everything at libmtmd's defaults except what a CPU
user must set: no GPU, the thread count, the image-token cap, and no AMX extra buffers (Q8_0 crashes there).
It runs the model files as they are and shares no code with edgeret's re-ranker, only the prompt text.
"""

from __future__ import annotations

import ctypes
import math
import time
from pathlib import Path

import numpy as np
from PIL import Image


class ReferenceLoop:
    """One loaded model pair; `prefix` once per query, then `encode` + `score` per candidate."""

    def __init__(self, model: Path, mmproj: Path, *, threads: int, image_tokens: int | None, n_ctx: int = 4096):
        import llama_cpp
        from llama_cpp import mtmd_cpp

        self.lc, self.mt = llama_cpp, mtmd_cpp
        llama_cpp.llama_backend_init()
        mp = llama_cpp.llama_model_default_params()
        mp.n_gpu_layers = 0
        mp.use_extra_bufts = False
        self.model = llama_cpp.llama_model_load_from_file(str(model).encode(), mp)
        cp = llama_cpp.llama_context_default_params()
        cp.n_ctx, cp.n_batch, cp.n_ubatch = n_ctx, 512, 512
        cp.n_threads = cp.n_threads_batch = threads
        self.ctx = llama_cpp.llama_init_from_model(self.model, cp)
        p = mtmd_cpp.mtmd_context_params_default()
        p.use_gpu, p.n_threads, p.print_timings = False, threads, False
        if image_tokens is not None:
            p.image_max_tokens = image_tokens
        self.mctx = mtmd_cpp.mtmd_init_from_file(str(mmproj).encode(), self.model, p)
        if not (self.model and self.ctx and self.mctx):
            raise RuntimeError("the reference loop could not load the model pair")
        self.n_embd = llama_cpp.llama_model_n_embd(self.model)
        self.n_vocab = llama_cpp.llama_vocab_n_tokens(llama_cpp.llama_model_get_vocab(self.model))
        self.n_prefix = 0

    def _tokenize(self, text: str, images: list[Image.Image | None], add_special: bool):
        mt = self.mt
        bitmaps = []
        for im in images:
            data = im.tobytes()
            bitmaps.append(mt.mtmd_bitmap_init(im.size[0], im.size[1],
                                               (ctypes.c_ubyte * len(data)).from_buffer_copy(data)))
        chunks = mt.mtmd_input_chunks_init()
        inp = mt.mtmd_input_text()
        raw = text.encode()
        inp.text, inp.text_len, inp.add_special, inp.parse_special = raw, len(raw), add_special, True
        rc = mt.mtmd_tokenize(self.mctx, chunks, ctypes.byref(inp), (mt.mtmd_bitmap_p_ctypes * len(bitmaps))(*bitmaps),
                              len(bitmaps))
        for bm in bitmaps:
            mt.mtmd_bitmap_free(bm)
        if rc != 0:
            raise RuntimeError(f"mtmd_tokenize: {rc}")
        return chunks

    def prefix(self, query: Image.Image, text: str) -> None:
        """Evaluate the prompt up to the candidate (query image included) from an empty cache."""
        chunks = self._tokenize(text, [query], add_special=True)
        self.lc.llama_memory_clear(self.lc.llama_get_memory(self.ctx), True)
        n_past = self.lc.llama_pos(0)  # the helpers add to it
        rc = self.mt.mtmd_helper_eval_chunks(self.mctx, self.ctx, chunks, 0, 0, 512, False, ctypes.byref(n_past))
        self.mt.mtmd_input_chunks_free(chunks)
        if rc != 0:
            raise RuntimeError(f"mtmd_helper_eval_chunks: {rc}")
        self.n_prefix = n_past.value

    def encode(self, path: Path | str, tail: str) -> tuple[object, list[np.ndarray | None]]:
        """Decode the photo, tokenize the candidate's prompt part with it, encode every image chunk.

        Returns the owned chunks and, per chunk, its embeddings (None for text chunks)."""
        with Image.open(path) as im:
            image = im.convert("RGB")
        chunks = self._tokenize(tail, [image], add_special=False)
        mt, embds = self.mt, []
        for i in range(mt.mtmd_input_chunks_size(chunks)):
            c = mt.mtmd_input_chunks_get(chunks, i)
            if mt.mtmd_input_chunk_get_type(c) != mt.MTMD_INPUT_CHUNK_TYPE_IMAGE:
                embds.append(None)
                continue
            if mt.mtmd_encode_chunk(self.mctx, c) != 0:
                raise RuntimeError("mtmd_encode_chunk failed")
            n = mt.mtmd_input_chunk_get_n_tokens(c)
            embds.append(np.ctypeslib.as_array(mt.mtmd_get_output_embd(self.mctx), shape=(n, self.n_embd)).copy())
        return chunks, embds

    def score(self, chunks, embds: list[np.ndarray | None], answers: tuple[np.ndarray, np.ndarray]) -> float:
        """P(positive answer) of the candidate after the prefix; frees `chunks`."""
        lc, mt = self.lc, self.mt
        lc.llama_memory_seq_rm(lc.llama_get_memory(self.ctx), 0, self.n_prefix, -1)
        n_past, new = self.n_prefix, lc.llama_pos(0)
        cb = mt.mtmd_helper_post_decode_callback(lambda _b, _u: 0)
        n = mt.mtmd_input_chunks_size(chunks)
        for i in range(n):
            c = mt.mtmd_input_chunks_get(chunks, i)
            new.value = n_past  # the text helper adds to it
            if embds[i] is None:
                rc = mt.mtmd_helper_eval_chunk_single(self.mctx, self.ctx, c, n_past, 0, 512, i == n - 1,
                                                      ctypes.byref(new))
            else:
                ptr = embds[i].ctypes.data_as(ctypes.POINTER(ctypes.c_float))
                rc = mt.mtmd_helper_decode_image_chunk(self.mctx, self.ctx, c, ptr, n_past, 0, 512,
                                                       ctypes.byref(new), cb, None)
            if rc != 0:
                raise RuntimeError(f"decoding chunk {i}: {rc}")
            n_past = new.value
        mt.mtmd_input_chunks_free(chunks)
        logits = np.ctypeslib.as_array(lc.llama_get_logits_ith(self.ctx, -1), shape=(self.n_vocab,))
        x = logits.astype(np.float64)
        pos, neg = (float(np.logaddexp.reduce(x[ids])) for ids in answers)
        return 1.0 / (1.0 + math.exp(neg - pos))

    def candidate(self, path: Path | str, tail: str, answers) -> dict:
        """One cold candidate, timed: encode (decode + tokenize + vision) and score."""
        t0 = time.perf_counter()
        chunks, embds = self.encode(path, tail)
        t1 = time.perf_counter()
        p = self.score(chunks, embds, answers)
        t2 = time.perf_counter()
        return {"encode_s": t1 - t0, "score_s": t2 - t1, "total_s": t2 - t0, "p": p}

    def close(self) -> None:
        if self.mctx:
            self.mt.mtmd_free(self.mctx)
        if self.ctx:
            self.lc.llama_free(self.ctx)
        if self.model:
            self.lc.llama_model_free(self.model)
        self.mctx = self.ctx = self.model = None
