"""Re-ranking cost per candidate on this machine, three ways, same query and candidates:

(a) stock llama-cpp-python: MTMDChatHandler, one create_chat_completion per pair (re-encodes both images each time);
(b) edgeret's fast path, candidates encoded on the fly (query prefix reused, single-batch candidate decode);
(c) edgeret's fast path with stored visual tokens (only the language model runs per candidate).

The models are random-weight but shape-faithful to SmolVLM-256M-Instruct (scripts/tiny_gguf.py), so the costs are
the real model's. Both sides use the same image-token cap; (a) gets it by wrapping mtmd_context_params_default
(the handler exposes no cap) and use_extra_bufts=False (Q8_0 + AMX crash, see the notes). The stock path is timed
on --stock-pairs pairs (its cost per pair does not depend on the pair). Prints a table and a final JSON line.

    python scripts/bench_rerank.py [--k 20] [--image-tokens 64] [--threads 2] [--stock-pairs 3]
    python scripts/bench_rerank.py --vs-loop 6 [--photos DIR]   # cold candidate: edgeret vs the libmtmd loop
    python scripts/bench_rerank.py --cold [--k 20] [--loop-queries 2]   # a library without stored tokens
    python scripts/bench_rerank.py --levers [--rounds 3]   # the vision tower per mmproj weight type and attention
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from edgeret.rerank.mllm import MllmReranker  # noqa: E402
from edgeret.rerank.prompts import PairPrompt  # noqa: E402
from edgeret.rerank.tokens import TokenStore  # noqa: E402
from edgeret.testing import tiny_gguf  # noqa: E402


def photo(seed: int, w: int = 1024, h: int = 768) -> Image.Image:
    """A deterministic photo-sized RGB image (smooth blobs + noise)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.zeros((h, w, 3), np.float32)
    for _ in range(5):
        cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(40, w / 2)
        img += rng.uniform(0, 255, 3) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))[..., None]
    img += rng.normal(0, 10, img.shape)
    return Image.fromarray(img.clip(0, 255).astype(np.uint8), "RGB")


def data_uri(image: Image.Image) -> str:
    buf = io.BytesIO()
    image.save(buf, "PNG")  # lossless: the stock path sees exactly the pixels edgeret gets
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def stock_path(model: Path, mmproj: Path, query: Image.Image, cands: list[Image.Image], prompt: PairPrompt,
               threads: int, image_tokens: int | None) -> tuple[list[float], list[np.ndarray]]:
    """(a): per pair, one stock chat completion; returns seconds per pair and the next-token logits."""
    import llama_cpp
    import llama_cpp.llama as llama_mod
    from llama_cpp import mtmd_cpp
    from llama_cpp.llama_chat_format import MTMDChatHandler

    default_model_params = llama_mod.llama_cpp.llama_model_default_params
    default_mtmd_params = mtmd_cpp.mtmd_context_params_default

    def model_params():
        p = default_model_params()
        p.use_extra_bufts = False  # without it Q8_0 crashes on AMX CPUs
        return p

    def mtmd_params():
        p = default_mtmd_params()
        if image_tokens is not None:
            p.image_max_tokens = image_tokens
        p.warmup = False
        return p

    real_init = mtmd_cpp.mtmd_init_from_file

    def mtmd_init(path, model, params):
        # the handler turns the vision tower's flash attention off with the text model's; edgeret's vision tower
        # keeps libmtmd's default (mtmd.py), so the comparison does too
        params.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_AUTO
        return real_init(path, model, params)

    llama_mod.llama_cpp.llama_model_default_params = model_params
    mtmd_cpp.mtmd_context_params_default = mtmd_params
    mtmd_cpp.mtmd_init_from_file = mtmd_init
    try:
        llm = llama_cpp.Llama(str(model), chat_handler=MTMDChatHandler(str(mmproj), verbose=False, use_gpu=False),
                              n_ctx=4096, n_batch=512, n_ubatch=512, n_threads=threads, n_threads_batch=threads,
                              n_gpu_layers=0, verbose=False)
    finally:
        llama_mod.llama_cpp.llama_model_default_params = default_model_params
    q_uri = data_uri(query)
    uris = [data_uri(c) for c in cands]
    n_vocab = llm.n_vocab()
    times, logits = [], []
    try:
        for uri in uris:
            messages = [{"role": "user", "content": [
                {"type": "text", "text": prompt.instruction + "\n"},
                {"type": "image_url", "image_url": {"url": q_uri}},
                {"type": "image_url", "image_url": {"url": uri}},
                {"type": "text", "text": prompt.question}]}]
            t = time.perf_counter()
            llm.create_chat_completion(messages=messages, max_tokens=1, temperature=0.0)
            times.append(time.perf_counter() - t)
            ptr = llama_cpp.llama_get_logits_ith(llm.ctx, -1)
            logits.append(np.ctypeslib.as_array(ptr, shape=(n_vocab,)).copy())
    finally:
        mtmd_cpp.mtmd_context_params_default = default_mtmd_params
        mtmd_cpp.mtmd_init_from_file = real_init
        llm.close()
    return times, logits


def _timed_scores(r: MllmReranker, q, items) -> dict:
    """Score items after the prefix; per-candidate seconds are the gaps between consecutive yields."""
    t0 = time.perf_counter()
    marks, ps = [], []
    for _, p in r.score(q, items):
        marks.append(time.perf_counter())
        ps.append(p)
    # the first gap also carries the prefix, so it is left out
    steps = np.diff(marks) if len(marks) > 1 else np.array([marks[0] - t0])
    return {"per_candidate_s": [float(x) for x in steps], "total_s": marks[-1] - t0, "p": ps}


def fast_path(r: MllmReranker, query: Image.Image, cands: list[Image.Image], stored, pooled,
              as_is: MllmReranker | None = None, rounds: int = 2) -> dict:
    """(b), (c), (c split) and (c pool2): per-candidate costs after the query's encode and prefix.

    (c split) is the straightforward loop the notes measured: the same stored tokens decoded one piece per
    llama_decode (libmtmd's helper for each image chunk, then the text) instead of one batch. (c as-is) is (c) run
    from the quantized file itself, when `r` runs from an f32 copy (edgeret/rerank/weights.py). The stored-token
    variants run interleaved, `rounds` times, so a noisy neighbour slows them alike.
    """
    out = {}
    t = time.perf_counter()
    q = r.encode(query)
    out["query_encode_s"] = time.perf_counter() - t
    t = time.perf_counter()
    r._eval_prefix([q])  # timed alone once, so the per-candidate figures below are marginal costs
    out["prefix_s"] = time.perf_counter() - t
    out["b"] = _timed_scores(r, q, [lambda c=c: c for c in cands])
    runs = [("c", r, stored), ("c_split", r, stored), ("c_pool2", r, pooled)]
    if as_is is not None:
        runs.append(("c_as_is", as_is, stored))
    for _ in range(rounds):
        for name, model, items in runs:
            table = model.session.table
            if name == "c_split":
                model.session.table = None  # forces the per-piece decode
            try:
                got = _timed_scores(model, q, items)
            finally:
                model.session.table = table
            prev = out.setdefault(name, {"per_candidate_s": [], "total_s": got["total_s"], "p": got["p"]})
            prev["per_candidate_s"] += got["per_candidate_s"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument("--image-tokens", type=int, default=64, help="mtmd image_max_tokens (64 = one SmolVLM tile)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--stock-pairs", type=int, default=3)
    ap.add_argument("--text-type", default="q8_0", choices=sorted(tiny_gguf.QTYPES))
    ap.add_argument("--mmproj-type", default="q8_0", choices=sorted(tiny_gguf.QTYPES))
    ap.add_argument("--codec", default="f16", help="token-store codec for (c)")
    ap.add_argument("--weights", default="auto", choices=["auto", "as-is", "f32"],
                    help="re-ranker text weights policy (edgeret/rerank/weights.py)")
    ap.add_argument("--models", help="directory to generate the models in and reuse them from (default: temp)")
    ap.add_argument("--vs-loop", type=int, metavar="N",
                    help="only compare N cold candidates: edgeret against the reference libmtmd loop")
    ap.add_argument("--photos", type=Path, help="JPEG folder for --vs-loop (default: the devset, else synthetic)")
    ap.add_argument("--cold", action="store_true",
                    help="only the cold-library figures: k candidates without stored tokens, warm, background load")
    ap.add_argument("--loop-queries", type=int, default=2, help="--cold: warm queries per query-loop phase")
    ap.add_argument("--levers", action="store_true", help="only the vision tower: mmproj weights x attention")
    ap.add_argument("--rounds", type=int, default=3, help="--levers: interleaved rounds")
    a = ap.parse_args()
    if a.levers:
        return run_levers(a)
    if a.vs_loop:
        return run_vs_loop(a)
    if a.cold:
        return run_cold(a)

    with tempfile.TemporaryDirectory(prefix="edgeret-bench-") as tmp:
        mdir = Path(a.models or tmp)
        os.environ.setdefault("EDGERET_MODELS", str(mdir / "edgeret-models"))  # where an f32 copy goes
        t = time.perf_counter()
        model, mmproj = tiny_gguf.make_pair(mdir, "idefics3", shape="smolvlm-256m", text_type=a.text_type,
                                            mmproj_type=a.mmproj_type, reuse=True)
        print(f"models: {model.name} ({model.stat().st_size / 1e6:.0f} MB), {mmproj.name} "
              f"({mmproj.stat().st_size / 1e6:.0f} MB), generated in {time.perf_counter() - t:.1f} s")
        query = photo(1000)
        cands = [photo(i) for i in range(a.k)]
        print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} logical CPUs")

        with MllmReranker(model, mmproj, threads=a.threads, image_tokens=a.image_tokens, weights=a.weights) as r, \
                MllmReranker(model, mmproj, threads=a.threads, image_tokens=a.image_tokens, weights="as-is") as q8:
            t = time.perf_counter()
            tokens = [r.encode(c) for c in cands]
            index_s = (time.perf_counter() - t) / a.k
            with TokenStore(Path(tmp) / "tokens.sqlite", r.model_id, codec=a.codec) as store:
                for i, vt in enumerate(tokens):
                    store.put(i, vt)
                stored = [store.get(i) for i in range(a.k)]
                store_bytes = store.nbytes() / a.k
            with TokenStore(Path(tmp) / "pooled.sqlite", r.model_id, codec="pool2") as store:
                for i, vt in enumerate(tokens):
                    store.put(i, vt)
                pooled = [store.get(i) for i in range(a.k)]
                pooled_bytes = store.nbytes() / a.k
            fp = fast_path(r, query, cands, stored, pooled, as_is=q8 if r.weights_path != model else None)
            weights_file = r.weights_path
            p_exact = [r.p_same(r.candidate_logits(query, vt)) for vt in tokens[:5]]
            p_pooled = [r.p_same(r.candidate_logits(query, vt)) for vt in pooled[:5]]
            counts = r.token_counts(r.encode(query), stored[0])
            prompt = r.prompt
            fast_logits = q8.candidate_logits(query, cands[0])  # the same file as the stock path runs
            p_fast_first = r.p_same(fast_logits)
            single = r.single_batch

        stock_s, stock_logits = stock_path(model, mmproj, query, cands[: a.stock_pairs], prompt, a.threads,
                                           a.image_tokens)
        with MllmReranker(model, mmproj, threads=a.threads, image_tokens=a.image_tokens) as r:
            p_stock_first = r.p_same(stock_logits[0])
        print(f"load average after: {os.getloadavg()[0]:.2f}")

    a_ms = 1000 * statistics.median(stock_s)
    b_ms = 1000 * statistics.median(fp["b"]["per_candidate_s"])
    c_ms = 1000 * statistics.median(fp["c"]["per_candidate_s"])
    d_ms = 1000 * statistics.median(fp["c_pool2"]["per_candidate_s"])
    s_ms = 1000 * statistics.median(fp["c_split"]["per_candidate_s"])
    q_ms = 1000 * statistics.median(fp["c_as_is"]["per_candidate_s"]) if "c_as_is" in fp else c_ms
    dp_codec = max(abs(x - y) for x, y in zip(fp["c"]["p"], fp["b"]["p"], strict=True))
    dp_pool = max(abs(x - y) for x, y in zip(p_pooled, p_exact, strict=True))
    c_total = fp["query_encode_s"] + fp["c"]["total_s"]
    result = {
        "k": a.k, "threads": a.threads, "image_tokens": a.image_tokens, "text_type": a.text_type,
        "mmproj_type": a.mmproj_type, "codec": a.codec, "single_batch_decode": single,
        "weights": a.weights, "weights_file": weights_file.name, "c_as_is_ms_per_candidate": round(q_ms, 1),
        "a_stock_ms_per_pair": round(a_ms, 1), "b_fast_encode_ms_per_candidate": round(b_ms, 1),
        "c_fast_stored_ms_per_candidate": round(c_ms, 1), "c_pool2_ms_per_candidate": round(d_ms, 1),
        "c_split_ms_per_candidate": round(s_ms, 1), "ratio_split_over_c": round(s_ms / c_ms, 2),
        "max_dp_codec_vs_exact": dp_codec, "max_dp_pool2_vs_exact": dp_pool,
        "pool2_bytes_per_image": int(pooled_bytes),
        "ratio_a_over_c": round(a_ms / c_ms, 1), "ratio_b_over_c": round(b_ms / c_ms, 1),
        "ratio_a_over_b": round(a_ms / b_ms, 2),
        "query_encode_ms": round(1000 * fp["query_encode_s"], 1), "prefix_ms": round(1000 * fp["prefix_s"], 1),
        "index_encode_ms_per_image": round(1000 * index_s, 1), "store_bytes_per_image": int(store_bytes),
        "end_to_end_k_s": {"a": round(a_ms * a.k / 1000, 2), "c_incl_query_encode": round(c_total, 2)},
        "tokens": counts, "stock_pairs_timed": len(stock_s),
        "p_first_pair": {"stock": round(p_stock_first, 6), "fast_f32": round(p_fast_first, 6)},
    }
    print(f"\ntokens: prefix {counts['prefix']} ({counts['prefix_image']} image), candidate {counts['candidate']} "
          f"({counts['candidate_image']} image + {counts['candidate_text']} text)")
    print(f"(a) stock MTMDChatHandler   {a_ms:9.1f} ms per pair   (median of {len(stock_s)})")
    print(f"(b) fast, encode on the fly {b_ms:9.1f} ms per candidate")
    print(f"(c) fast, stored tokens     {c_ms:9.1f} ms per candidate  ({a.codec}, {int(store_bytes)} B/image)")
    print(f"(c split) one decode per piece {s_ms:6.1f} ms per candidate  (the notes' straightforward loop)")
    if "c_as_is" in fp:
        print(f"(c as-is) from {model.name} {q_ms:6.1f} ms per candidate  ((c) ran from {weights_file.name})")
    print(f"(c') fast, pool2 tokens     {d_ms:9.1f} ms per candidate  ({int(pooled_bytes)} B/image)")
    print(f"max |dP| vs exact tokens: {a.codec} {dp_codec:.2e}, pool2 {dp_pool:.3f} (first 5 candidates)")
    print(f"ratios: a/c {a_ms / c_ms:.1f}x   b/c {b_ms / c_ms:.1f}x   a/b {a_ms / b_ms:.2f}x")
    print(f"once per query: encode {1000 * fp['query_encode_s']:.0f} ms, prefix {1000 * fp['prefix_s']:.0f} ms; "
          f"k={a.k} end to end: (a) {a_ms * a.k / 1000:.1f} s vs (c) {c_total:.1f} s")
    print(f"P(first pair): stock {p_stock_first:.6f} vs fast {p_fast_first:.6f}")
    print(json.dumps(result))


def _shape_pair(a: argparse.Namespace, tmp: str) -> tuple[Path, Path]:
    """The shape-faithful SmolVLM-256M pair in --models (made once, reused), f32 copies beside it."""
    mdir = Path(a.models or tmp)
    os.environ.setdefault("EDGERET_MODELS", str(mdir / "edgeret-models"))
    return tiny_gguf.make_pair(mdir, "idefics3", shape="smolvlm-256m", text_type=a.text_type,
                               mmproj_type=a.mmproj_type, reuse=True)


def run_vs_loop(a: argparse.Namespace) -> None:
    from bench_cold import photo_files, vs_loop

    from edgeret.testing.shared import DEVSET

    with tempfile.TemporaryDirectory(prefix="edgeret-bench-") as tmp:
        model, mmproj = _shape_pair(a, tmp)
        photos = photo_files(a.vs_loop + 1, Path(tmp), a.photos or DEVSET / "images")
        load = os.getloadavg()
        print(f"{a.vs_loop} cold candidates, {a.threads} threads, cap {a.image_tokens}; load average {load[0]:.2f}")
        out = vs_loop(model, mmproj, photos, threads=a.threads, image_tokens=a.image_tokens, weights=a.weights,
                      tmp=Path(tmp))
        out["load_average"] = [round(load[0], 2), round(os.getloadavg()[0], 2)]
    o = out
    print(f"per cold candidate: loop {o['loop_ms_per_candidate']:.0f} ms, edgeret {o['project_ms_per_candidate']:.0f}"
          f" ms (median ratio {o['ratio_candidate']:.2f}); per photo encode: loop {o['loop_encode_ms_per_photo']:.0f}"
          f" ms, edgeret {o['project_encode_ms_per_photo']:.0f} ms (ratio {o['ratio_encode']:.2f})")
    print(json.dumps(out))


def run_cold(a: argparse.Namespace) -> None:
    from bench_cold import cold, photo_files

    from edgeret.testing import tiny_onnx
    from edgeret.testing.shared import DEVSET, MNV2

    with tempfile.TemporaryDirectory(prefix="edgeret-bench-") as tmp:
        model, mmproj = _shape_pair(a, tmp)
        photos = photo_files(2 * a.k + 10, Path(tmp), a.photos or DEVSET / "images")
        encoder = str(MNV2) if (MNV2 / "model.onnx").is_file() else str(tiny_onnx.write(Path(tmp) / "enc", "embedding"))
        load = os.getloadavg()
        print(f"cold library: k={a.k}, {len(photos)} photos, {a.threads} threads; load average {load[0]:.2f}")
        out = cold(model, mmproj, photos, k=a.k, threads=a.threads, tmp=Path(tmp), encoder=encoder,
                   loop_queries=a.loop_queries)
        out["load_average"] = [round(load[0], 2), round(os.getloadavg()[0], 2)]
    print(json.dumps(out))


def run_levers(a: argparse.Namespace) -> None:
    from bench_cold import photo_files, vision_levers

    from edgeret.testing.shared import DEVSET

    with tempfile.TemporaryDirectory(prefix="edgeret-bench-") as tmp:
        mdir = Path(a.models or tmp)
        mmprojs = {}
        for weights in ("q8_0", "f32", "f16"):
            model, mmprojs[weights] = tiny_gguf.make_pair(mdir, "idefics3", shape="smolvlm-256m", text_type="q8_0",
                                                          mmproj_type=weights, reuse=True)
        photo_path = photo_files(1, Path(tmp), a.photos or DEVSET / "images")[0]
        load = os.getloadavg()[0]
        out = vision_levers(model, mmprojs, photo_path, threads=a.threads, image_tokens=a.image_tokens,
                            rounds=a.rounds)
    for name, row in out.items():
        print(f"{name:12s} {row['median_s']:7.2f} s  ratios {row['ratio_per_round']}  "
              f"token diff {row['max_rel_token_diff']:.1e}")
    print(json.dumps({"load_average": [round(load, 2), round(os.getloadavg()[0], 2)], "levers": out}))


if __name__ == "__main__":
    main()
