"""Cold re-ranking figures for scripts/bench_rerank.py: the project's cold path against the reference loop.

`vs_loop`: per candidate photo, interleaved (ABBA), edgeret's cold candidate (decode, vision encode, store, score
after the query prefix) and the straightforward libmtmd loop of reference_loop.py, with a timer around each of the
project's steps. Both run the same model files, threads and image-token cap in one process.

`cold`: k candidates on a library without stored tokens (time to the first verdict, to the first and the last MLLM
verdict), the same query warm, then a loop of warm queries alone and beside background token preparation.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from edgeret.decode import PhotoLoader, decode
from edgeret.rerank.mllm import MllmReranker
from edgeret.rerank.tokens import TokenStore
from edgeret.rerankers import MLLM_DECODE_SIDE


class _Feed:
    """An iterable handing the scorer one candidate at a time, so its generator can be driven step by step."""

    def __init__(self):
        self.item = None

    def __iter__(self):
        while self.item is not None:
            item, self.item = self.item, None
            yield item


class ProjectCold:
    """edgeret's cold path for one query: MllmReranker.score fed candidates one by one, each step timed."""

    def __init__(self, r: MllmReranker, store: TokenStore, query_tokens):
        self.r, self.store, self.feed = r, store, _Feed()
        self.steps: dict[str, float] = {}
        s = r.session
        real_encode, real_tokenize = s.encode, s.tokenize

        def timed(name: str, fn: Callable) -> Callable:
            def run(*a, **kw):
                t = time.perf_counter()
                try:
                    return fn(*a, **kw)
                finally:
                    self.steps[name] = self.steps.get(name, 0.0) + time.perf_counter() - t
            return run

        self._timed = timed
        s.encode = timed("encode", real_encode)  # tokenize (preprocessing) + vision tower + copy
        s.tokenize = timed("tokenize", real_tokenize)  # also the placeholder layout of the scoring step
        self.gen = r.score(query_tokens, self.feed, query_tokens=query_tokens,
                           on_encoded=lambda _i, vt: timed("store", store.put)(self._key, vt))
        self._key = -1
        self.first(query_tokens)

    def first(self, tokens) -> None:
        """The first step also evaluates the query prefix: a stored candidate takes it, timed apart."""
        self.feed.item = tokens
        t = time.perf_counter()
        next(self.gen)
        self.prefix_s = time.perf_counter() - t

    def candidate(self, key: int, path: Path) -> dict:
        self.steps, self._key = {}, key
        loader = PhotoLoader(key, str(path), MLLM_DECODE_SIDE)
        self.feed.item = self._timed("decode", loader)
        t = time.perf_counter()
        _, p = next(self.gen)
        total = time.perf_counter() - t
        steps = dict(self.steps)
        steps["total_s"] = total
        steps["p"] = p
        steps["score"] = total - steps.get("decode", 0) - steps.get("encode", 0) - steps.get("store", 0)
        return steps


def vs_loop(model: Path, mmproj: Path, photos: list[Path], *, threads: int, image_tokens: int | None,
            weights: str, tmp: Path) -> dict:
    """Per cold candidate and per photo encode: edgeret against the reference loop (photos[0] is the query)."""
    from reference_loop import ReferenceLoop

    from edgeret.rerank.mtmd import route_native_logs

    route_native_logs()
    query_path, cands = photos[0], photos[1:]
    loop = ReferenceLoop(model, mmproj, threads=threads, image_tokens=image_tokens)
    with MllmReranker(model, mmproj, threads=threads, image_tokens=image_tokens, weights=weights) as r, \
            TokenStore(tmp / "vs-loop.sqlite", r.model_id) as store:
        layout = r._layout
        query = decode(query_path, min_side=MLLM_DECODE_SIDE)
        t = time.perf_counter()
        loop.prefix(Image.open(query_path).convert("RGB"), layout.prefix)
        loop_prefix_s = time.perf_counter() - t
        t = time.perf_counter()
        qt = r.query_tokens(query)
        query_encode_s = time.perf_counter() - t
        proj = ProjectCold(r, store, qt)
        rows = []
        for i, path in enumerate(cands):
            order = ("loop", "project") if i % 2 == 0 else ("project", "loop")
            row = {"photo": path.name}
            for who in order:
                if who == "loop":
                    row["loop"] = loop.candidate(path, layout.tail, layout.answers)
                else:
                    row["project"] = proj.candidate(1000 + i, path)
            rows.append(row)
            print(f"  {path.name}: loop {row['loop']['total_s']:.2f} s (encode {row['loop']['encode_s']:.2f}), "
                  f"edgeret {row['project']['total_s']:.2f} s "
                  f"({', '.join(f'{k} {v:.2f}' for k, v in row['project'].items() if k not in ('total_s', 'p'))})",
                  flush=True)
        sizes = {"decoded": list(query.size), "handed_to_mtmd": list(qt.size), "chunks": [len(c) for c in qt.chunks]}
    loop.close()

    def med(who: str, key: str) -> float:
        return statistics.median(row[who].get(key, 0.0) for row in rows)

    proj_encode = [row["project"].get("decode", 0) + row["project"]["encode"] + row["project"].get("store", 0)
                   for row in rows]
    ratios = [row["project"]["total_s"] / row["loop"]["total_s"] for row in rows]
    enc_ratios = [pe / row["loop"]["encode_s"] for pe, row in zip(proj_encode, rows, strict=True)]
    dp = max(abs(row["project"]["p"] - row["loop"]["p"]) for row in rows)
    return {
        "candidates": len(rows), "threads": threads, "image_tokens": image_tokens, "weights_file": r.weights_path.name,
        "loop_ms_per_candidate": round(1000 * med("loop", "total_s"), 1),
        "project_ms_per_candidate": round(1000 * med("project", "total_s"), 1),
        "ratio_candidate": round(statistics.median(ratios), 3),
        "loop_encode_ms_per_photo": round(1000 * med("loop", "encode_s"), 1),
        "project_encode_ms_per_photo": round(1000 * statistics.median(proj_encode), 1),
        "ratio_encode": round(statistics.median(enc_ratios), 3),
        "loop_score_ms": round(1000 * med("loop", "score_s"), 1),
        "project_steps_ms": {k: round(1000 * med("project", k), 1) for k in ("decode", "encode", "tokenize",
                                                                              "store", "score")},
        "prefix_ms": {"loop": round(1000 * loop_prefix_s, 1), "project_with_a_stored_candidate":
                      round(1000 * proj.prefix_s, 1), "project_query_encode": round(1000 * query_encode_s, 1)},
        "max_dp_project_vs_loop": round(dp, 6), "image": sizes,
        "per_candidate": [{"photo": row["photo"], "loop_s": round(row["loop"]["total_s"], 3),
                           "project_s": round(row["project"]["total_s"], 3)} for row in rows],
    }


def photo_files(n: int, tmp: Path, devset: Path | None) -> list[Path]:
    """n JPEG photos: the devset's first ones when present, else synthetic 1024x768 photos written to tmp."""
    if devset is not None and devset.is_dir():
        found = sorted(devset.glob("*.jpg"))
        if len(found) >= n:
            return found[:n]
    from bench_rerank import photo

    out = []
    for i in range(n):
        p = tmp / f"photo{i:03d}.jpg"
        photo(i).save(p, quality=90)
        out.append(p)
    return out



# --------------------------------------------------------------------------------------------------- --cold
def _library(photos: list[Path], root: Path, encoder: str) -> Path:
    """A library of copies of `photos` (the photo folder is read-only to edgeret; copies keep the devset apart)."""
    import shutil

    from edgeret.library import Library

    folder = root / "photos"
    folder.mkdir(parents=True)
    for p in photos:
        shutil.copy(p, folder / p.name)
    with Library(root / "lib", writable=True) as lib:
        lib.index([folder], encoder_spec=encoder, threads=2)
    return root / "lib"


def _timed_query(hits, query, rr) -> dict:
    """One re-ranked query through run_query: seconds to the first verdict, the first and the last MLLM verdict."""
    from edgeret.query import run_query

    t0 = time.perf_counter()
    first = first_mllm = None
    marks = []
    steps = run_query(hits, query, rr)
    next(steps)  # the first stage
    for results in steps:
        now = time.perf_counter() - t0
        first = now if first is None else first
        judged = [r for r in results if r.p_same is not None and not r.provisional]
        if judged and first_mllm is None:
            first_mllm = now
        if len(marks) < len(judged):
            marks.append(now)
    gaps = np.diff(marks) if len(marks) > 1 else np.array([])
    return {"first_verdict_s": round(first, 3), "first_mllm_verdict_s": round(first_mllm, 3),
            "all_mllm_verdicts_s": round(marks[-1], 3), "mllm_verdicts": len(marks),
            "median_s_per_mllm_verdict_after_the_first": round(float(np.median(gaps)), 3) if len(gaps) else None}


def cold(model: Path, mmproj: Path, photos: list[Path], *, k: int, threads: int, tmp: Path, encoder: str,
         loop_queries: int) -> dict:
    """k = `k` on a library without stored tokens, then warm, then the query loop beside background preparation."""
    from edgeret.decode import decode
    from edgeret.library import Library
    from edgeret.prepare_bg import BackgroundPreparation
    from edgeret.rerankers import open_reranker

    lib_dir = _library(photos, tmp / "a", encoder)
    out: dict = {"k": k, "threads": threads, "photos": len(photos)}
    with Library(lib_dir) as lib:
        query_key, query_path = lib.photos()[0]
        hits = lib.search_vectors(lib.vector_of(query_key)[None], k=k)[0]
        rr = open_reranker("mllm", lib, preview=True, vlm=model, mmproj=mmproj, threads=threads)
        try:
            encodes: list[float] = []
            mllm = rr.main.mllm
            real = mllm.encode

            def timed_encode(image):
                t = time.perf_counter()
                try:
                    return real(image)
                finally:
                    encodes.append(time.perf_counter() - t)

            mllm.encode = timed_encode
            load = os.getloadavg()[0]
            out["cold"] = _timed_query(hits, decode(query_path), rr)
            out["cold"]["vision_encodes"] = len(encodes)
            out["cold"]["encode_ms_per_photo"] = round(1000 * statistics.median(encodes), 1)
            out["cold"]["load_average"] = [round(load, 2), round(os.getloadavg()[0], 2)]
            print(f"  cold: {out['cold']}", flush=True)
            out["warm"] = _timed_query(hits, decode(query_path), rr)
            out["warm"]["vision_encodes"] = len(encodes) - out["cold"]["vision_encodes"]
            print(f"  warm: {out['warm']}", flush=True)

            def query_loop() -> list[float]:
                times = []
                for _ in range(loop_queries):
                    t = time.perf_counter()
                    for _ in rr.score(decode(query_path), rr.candidates(hits)):
                        pass
                    times.append(time.perf_counter() - t)
                return times

            # the background process prepares a second copy of the library (no tokens), so it has work throughout
            bg_lib = _library(photos, tmp / "b", encoder)
            phases = {}
            for name, priority in (("alone", None), ("beside_prepare_bg_default_priority", ""),
                                   ("beside_prepare_bg_priority_normal", "normal"), ("alone_again", None)):
                bg = None
                if priority is not None:
                    env_before = os.environ.get("EDGERET_PREPARE_PRIORITY")
                    os.environ.pop("EDGERET_PREPARE_PRIORITY", None)
                    if priority:
                        os.environ["EDGERET_PREPARE_PRIORITY"] = priority
                    started = []
                    bg = BackgroundPreparation(bg_lib, vlm=str(model), mmproj=str(mmproj), threads=threads,
                                               on_status=started.append).start()
                    if env_before is None:
                        os.environ.pop("EDGERET_PREPARE_PRIORITY", None)
                    else:
                        os.environ["EDGERET_PREPARE_PRIORITY"] = env_before
                    while not started and bg.running:  # its model is loaded and it has begun
                        time.sleep(0.2)
                times = query_loop()
                ready = bg.status.ready if bg is not None and bg.status else None
                if bg is not None:
                    bg.stop(timeout=120)
                phases[name] = {"s_per_query": [round(x, 2) for x in times], "median_s": round(
                    statistics.median(times), 2), "bg_photos_ready_after": ready}
                print(f"  query loop {name}: {phases[name]}", flush=True)
            alone = statistics.median(phases["alone"]["s_per_query"] + phases["alone_again"]["s_per_query"])
            for name in ("beside_prepare_bg_default_priority", "beside_prepare_bg_priority_normal"):
                phases[name]["slowdown"] = round(phases[name]["median_s"] / alone, 2)
            out["query_loop"] = phases
        finally:
            rr.close()
    return out


# ------------------------------------------------------------------------------------------------- --levers
def vision_levers(model: Path, mmprojs: dict[str, Path], photo: Path, *, threads: int, image_tokens: int,
                  rounds: int) -> dict:
    """One image chunk through the vision tower per (mmproj weights, attention) configuration, interleaved (the order
    reversed every other round); seconds, ratios to the first configuration's round and the token difference."""
    import ctypes

    import llama_cpp
    from llama_cpp import mtmd_cpp as mt

    from edgeret.rerank.mtmd import route_native_logs

    route_native_logs()
    llama_cpp.llama_backend_init()
    mp = llama_cpp.llama_model_default_params()
    mp.use_extra_bufts, mp.n_gpu_layers = False, 0
    lm = llama_cpp.llama_model_load_from_file(str(model).encode(), mp)
    n_embd = llama_cpp.llama_model_n_embd(lm)
    fa = {"dense": llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED, "flash": llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED}
    contexts = {}
    for weights, path in mmprojs.items():
        for attention in ("dense", "flash"):
            p = mt.mtmd_context_params_default()
            p.use_gpu, p.n_threads, p.print_timings, p.image_max_tokens = False, threads, False, image_tokens
            p.flash_attn_type = fa[attention]
            contexts[f"{weights} {attention}"] = mt.mtmd_init_from_file(str(path).encode(), lm, p)
    with Image.open(photo) as im:
        image = im.convert("RGB")
    data = image.tobytes()

    def first_chunk_encode(ctx) -> tuple[float, np.ndarray]:
        bm = mt.mtmd_bitmap_init(image.size[0], image.size[1], (ctypes.c_ubyte * len(data)).from_buffer_copy(data))
        chunks = mt.mtmd_input_chunks_init()
        inp = mt.mtmd_input_text()
        marker = mt.mtmd_default_marker()
        inp.text, inp.text_len, inp.add_special, inp.parse_special = marker, len(marker), False, True
        assert mt.mtmd_tokenize(ctx, chunks, ctypes.byref(inp), (mt.mtmd_bitmap_p_ctypes * 1)(bm), 1) == 0
        mt.mtmd_bitmap_free(bm)
        chunk = next(c for c in (mt.mtmd_input_chunks_get(chunks, i) for i in range(mt.mtmd_input_chunks_size(chunks)))
                     if mt.mtmd_input_chunk_get_type(c) == mt.MTMD_INPUT_CHUNK_TYPE_IMAGE)
        n = mt.mtmd_input_chunk_get_n_tokens(chunk)
        t = time.perf_counter()
        assert mt.mtmd_encode_chunk(ctx, chunk) == 0
        seconds = time.perf_counter() - t
        out = np.ctypeslib.as_array(mt.mtmd_get_output_embd(ctx), shape=(n, n_embd)).copy()
        mt.mtmd_input_chunks_free(chunks)
        return seconds, out

    names = list(contexts)
    times: dict[str, list[float]] = {k: [] for k in names}
    tokens: dict[str, np.ndarray] = {}
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            s, tokens[name] = first_chunk_encode(contexts[name])
            times[name].append(s)
            print(f"  round {r}: {name} {s:.2f} s", flush=True)
    for ctx in contexts.values():
        mt.mtmd_free(ctx)
    llama_cpp.llama_model_free(lm)
    base, ref = names[0], tokens[names[0]]
    return {name: {"median_s": round(statistics.median(t), 2),
                   "ratio_per_round": [round(x / b, 2) for x, b in zip(t, times[base], strict=True)],
                   "max_rel_token_diff": float(np.abs(tokens[name] - ref).max() / np.abs(ref).max())}
            for name, t in times.items()}
