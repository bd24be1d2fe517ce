"""The speed report: every stage of edgeret timed next to its reference and to what the hardware allows.

    python scripts/bench.py [--threads 2] [--quick] [--vectors 10000,100000,1000000] [--out report.json]

Sections (one JSON report on stdout, progress on stderr):
  hardware   numpy float32 matmul GFLOP/s at --threads: the attainable limit every figure is compared with;
  encoder    shape-faithful random CLIP ViT-B/32 image tower (scripts/shape_models.py), fp32 and int8: ms per image
             at batch 1 and 16, FLOPs per image and achieved GFLOP/s as a fraction of the limit; indexing images/s
             of edgeret vs the bare decode + onnxruntime loop (scripts/bench_index.py) on camera-sized JPEGs;
  search     exact numpy vs USearch HNSW on 512-d unit vectors (scripts/bench_search.py): latency, recall@10, size
             on disk and in memory;
  rerank     the MLLM re-ranker with SmolVLM-256M-shaped models (scripts/bench_rerank.py, run as a child process):
             stock handler vs fast path vs stored visual tokens, per candidate, with FLOPs; and the sv re-ranker;
  memory     peak RSS of this process (and of the re-rank child).
--quick scales everything down (largest search size 200k instead of 1M, fewer photos and repeats) and says so; so
does --budget (default 570 s): a search size whose HNSW build, projected from the previous size, would end past it
is scaled down, and the report's notes say to what.
"""

from __future__ import annotations

import os
import sys


def _threads_from_argv(default: int = 2) -> int:
    """--threads must be known before numpy is imported: BLAS reads its thread count once, at load time."""
    for i, a in enumerate(sys.argv):
        if a == "--threads" and i + 1 < len(sys.argv):
            return int(sys.argv[i + 1])
        if a.startswith("--threads="):
            return int(a.split("=", 1)[1])
    return default


_THREADS = _threads_from_argv()
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = str(_THREADS)

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import bench_index  # noqa: E402
import bench_search  # noqa: E402
import shape_models  # noqa: E402

from edgeret.encoders import ImageEncoder  # noqa: E402
from edgeret.testing.shared import DEVSET  # noqa: E402

SHARED_DEVSET = DEVSET / "images"  # ../shared beside the checkout, or EDGERET_SHARED


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def peak_rss_mb(who: int = resource.RUSAGE_SELF) -> float:
    return round(resource.getrusage(who).ru_maxrss / 1024, 1)  # Linux reports KiB


# hardware ---------------------------------------------------------------------------------------------------------
def save(report: dict, out: Path | None) -> None:
    """Write what is measured so far: a run cut short still leaves its finished sections."""
    if out is not None:
        out.write_text(json.dumps(report, indent=1) + "\n")


def machine() -> dict:
    cpu, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
        mem = next(ln for ln in Path("/proc/meminfo").read_text().splitlines() if ln.startswith("MemTotal"))
        mem_gb = round(int(mem.split()[1]) / 2**20, 1)
    except (OSError, StopIteration):
        mem_gb = None
    import onnxruntime
    import usearch

    return {
        "cpu": cpu, "logical_cpus": os.cpu_count(), "memory_gb": mem_gb,
        "simd": sorted(f for f in flags if f in {"avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "amx_tile",
                                                  "amx_int8", "amx_bf16", "avx512_bf16"}),
        "os": platform.platform(), "python": platform.python_version(), "numpy": np.__version__,
        "onnxruntime": onnxruntime.__version__, "usearch": usearch.__version__,
    }


def matmul_gflops(n: int = 2048, seconds: float = 3.0) -> float:
    """Best-of float32 GEMM throughput (2 n^3 FLOPs per product) with the BLAS numpy ships, at --threads."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    a @ b  # warm-up: thread pool start, page faults
    best, t_end = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < t_end:
        t0 = time.perf_counter()
        a @ b
        best = max(best, 2 * n**3 / (time.perf_counter() - t0) / 1e9)
    return round(best, 1)


# encoder ----------------------------------------------------------------------------------------------------------
def encoder_folder(int8: bool) -> Path:
    folder = bench_index.CACHE / ("clip-vit-b32-random-int8" if int8 else "clip-vit-b32-random")
    if not (folder / "model.onnx").exists():
        shape_models.write_clip_b32(folder, int8=int8)
    return folder


def ms_per_image(encoder: ImageEncoder, batch: int, runs: int) -> float:
    x = [np.random.default_rng(i).standard_normal((3, 224, 224)).astype(np.float32) for i in range(batch)]
    encoder.encode(x)  # warm-up
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        encoder.encode(x)
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times) / batch


def bench_encoders(threads: int, peak: float, photos: list[Path], photo_dir: Path, quick: bool) -> dict:
    flops = shape_models.vit_flops()
    out = {"model": "CLIP ViT-B/32 image tower (random weights, real shapes), 224 px",
           "gflops_per_image": round(flops / 1e9, 2), "index_photos": len(photos)}
    for name, int8 in (("fp32", False), ("int8", True)):
        log(f"encoder {name}")
        enc = ImageEncoder(encoder_folder(int8), threads=threads)
        row = {}
        for batch in (1, 16):
            ms = ms_per_image(enc, batch, runs=3 if quick else 8)
            gflops = flops / (ms / 1000) / 1e9
            row[f"batch{batch}"] = {"ms_per_image": round(ms, 2), "gflops": round(gflops, 1),
                                    "fraction_of_fp32_matmul_peak": round(gflops / peak, 3)}
        bare, ours = [], []
        for _ in range(1 if quick else 2):  # alternate, keep the best of each: the machine may be shared
            bare.append(bench_index.bare_loop(photos, enc, 16))
            ours.append(bench_index.edgeret_index(photo_dir, enc, threads, 16))
        row["indexing"] = {"bare_loop_images_per_s": round(max(bare), 2), "edgeret_images_per_s": round(max(ours), 2),
                           "edgeret_over_bare": round(max(ours) / max(bare), 3)}
        out[name] = row
    return out


# search -----------------------------------------------------------------------------------------------------------
def bench_search_sizes(sizes: list[int], threads: int, queries: int, peak: float, deadline: float,
                       notes: list[str]) -> dict:
    """Each size in turn; a size projected to end after `deadline` is scaled down (and the note says so)."""
    rows: list[dict] = []
    for n in sizes:
        if rows:
            n = _fit(n, rows[-1], deadline, notes)
            if n is None:
                break
        log(f"search n={n}")
        t0 = time.perf_counter()
        r = bench_search.bench_size(n, 512, queries, threads, with_catalog=n <= 100_000)
        r["section_s"] = round(time.perf_counter() - t0, 1)
        # exact search streams the whole matrix once per query: 2*n*512 FLOPs
        exact_gflops = 2 * n * 512 / (r["exact_batch_ms_per_query"] / 1000) / 1e9
        r["exact_batch_fraction_of_fp32_matmul_peak"] = round(exact_gflops / peak, 3)
        rows.append(r)
    return {"dim": 512, "usearch_dtype": "f16", "queries": queries, "results": rows}


def _fit(n: int, prev: dict, deadline: float, notes: list[str]) -> int | None:
    """The largest size (a multiple of 100k) whose HNSW build, projected from the previous size, ends in time."""
    # HNSW insertion costs grow a little faster than n (deeper graph): 1.2x per 10x is what USearch showed here.
    per_vector = prev["hnsw_build_s"] / prev["n"] * 1.2
    left = deadline - time.perf_counter()
    if n * per_vector * 1.3 <= left:  # 1.3: queries, exact search, save/restore on top of the build
        return n
    fit = int(left / (per_vector * 1.3) // 100_000 * 100_000)
    if fit <= prev["n"]:
        notes.append(f"search sizes from {n:,} up skipped: projected past the time budget")
        return None
    notes.append(f"search size {n:,} scaled down to {fit:,} to stay within the time budget")
    return fit


# rerank -----------------------------------------------------------------------------------------------------------
# Runs a script and then prints its peak RSS. getrusage(RUSAGE_CHILDREN) cannot be used: on Linux a child's maxrss
# starts from the parent's RSS at fork, while VmHWM belongs to the address space that exec created.
_CHILD = """
import re, runpy, sys
script, sys.argv = sys.argv[1], sys.argv[1:]
try:
    runpy.run_path(script, run_name="__main__")
finally:
    hwm = re.search(r"VmHWM:\\s+(\\d+)", open("/proc/self/status").read())
    print("VmHWM-kB", hwm.group(1) if hwm else 0, file=sys.stderr)
"""


def smolvlm_flops(candidate_tokens: int) -> dict:
    """Matmul FLOPs of SmolVLM-256M per candidate: text decode of its tokens, and one 512 px vision tile."""
    from edgeret.testing import tiny_gguf

    t, v = tiny_gguf.SHAPES["smolvlm-256m"]
    kv = t.n_embd // t.n_head * t.n_head_kv
    per_token = 2 * t.n_layer * (t.n_embd * (2 * t.n_embd + 2 * kv) + 3 * t.n_embd * t.n_ff)
    text = candidate_tokens * per_token + 2 * t.n_embd * t.n_vocab  # logits for the answer position only
    vision = shape_models.vit_flops(image_size=v.image_size, patch=v.patch_size, width=v.n_embd, layers=v.n_layer,
                                    mlp=v.n_ff, embed_dim=0)
    tokens = (v.image_size // v.patch_size // v.scale_factor) ** 2
    vision += 2 * tokens * v.n_embd * v.scale_factor**2 * t.n_embd  # pixel-shuffle connector
    return {"text_gflops": round(text / 1e9, 3), "vision_gflops": round(vision / 1e9, 2)}


def bench_mllm(threads: int, k: int, peak: float) -> dict:
    script = HERE / "bench_rerank.py"
    if not script.exists():
        return {"status": "pending: scripts/bench_rerank.py is not in this checkout"}
    log(f"rerank (mllm) k={k}: child process {script.name}")
    env = dict(os.environ, PYTHONPATH=str(HERE.parent))
    # two stock pairs: its cost per pair does not depend on the pair, and each one re-encodes both images
    args = [str(script), "--k", str(k), "--threads", str(threads), "--stock-pairs", "2"]
    try:
        proc = subprocess.run([sys.executable, "-c", _CHILD, *args], capture_output=True, text=True, env=env,
                              timeout=900)
    except subprocess.TimeoutExpired:
        return {"status": "failed: bench_rerank.py ran past 900 s"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {"status": f"failed (exit {proc.returncode})", "stderr_tail": proc.stderr[-800:]}
    r = json.loads(lines[-1])
    hwm = [ln.split()[-1] for ln in proc.stderr.splitlines() if ln.startswith("VmHWM-kB ")]
    out = {"status": "measured", "model": "SmolVLM-256M-shaped (random weights, real shapes)", "report": r,
           "peak_rss_mb_child": round(int(hwm[-1]) / 1024, 1) if hwm else None}
    tokens = r.get("tokens", {})
    if "candidate" in tokens:
        f = smolvlm_flops(tokens["candidate"])
        out["flops_per_candidate"] = f
        c_ms, b_ms = r["c_fast_stored_ms_per_candidate"], r["b_fast_encode_ms_per_candidate"]
        c_gf = f["text_gflops"] / (c_ms / 1000)
        b_gf = (f["text_gflops"] + f["vision_gflops"]) / (b_ms / 1000)
        out["fraction_of_fp32_matmul_peak"] = {"c_stored": round(c_gf / peak, 3), "b_encode": round(b_gf / peak, 3)}
    return out


def sv_images(n: int) -> tuple[list[Path], str]:
    if SHARED_DEVSET.is_dir():
        return sorted(SHARED_DEVSET.glob("*.jpg"))[:n], "devset photos (768 px)"
    photos = bench_index.make_photos(bench_index.CACHE / "photos-1024x768-sv", n, (1024, 768))
    return photos, "generated 1024x768 photos"


def bench_sv(threads: int, peak: float, n: int) -> dict:
    from edgeret.decode import decode
    from edgeret.errors import EdgeretError
    from edgeret.rerank.sv import SvReranker

    try:
        sv = SvReranker(threads=threads)
    except EdgeretError as e:  # OpenCV is an optional extra
        return {"status": f"unavailable: {e}"}
    log("rerank (sv)")

    paths, what = sv_images(n)
    t0 = time.perf_counter()
    feats = [sv.features(decode(p, min_side=sv.max_side // 2)) for p in paths]
    feat_ms = 1000 * (time.perf_counter() - t0) / len(paths)
    t0 = time.perf_counter()
    pairs = [(a, b) for a in range(len(feats)) for b in range(len(feats)) if a != b][: 4 * n]
    for a, b in pairs:
        sv.inliers(feats[a], feats[b])
    pair_ms = 1000 * (time.perf_counter() - t0) / len(pairs)
    kps = float(np.mean([len(f.xy) for f in feats]))
    match_gflops = 2 * kps * kps * feats[0].desc.shape[1] / 1e9
    return {
        "status": "measured", "images": what, "method": sv.method, "max_side": sv.max_side,
        "keypoints_per_image": round(kps), "decode_and_features_ms_per_image": round(feat_ms, 1),
        "match_and_ransac_ms_per_pair": round(pair_ms, 2),
        "cold_ms_per_candidate": round(feat_ms + pair_ms, 1), "cached_ms_per_candidate": round(pair_ms, 2),
        "match_gflops_per_pair": round(match_gflops, 3),
        "match_fraction_of_fp32_matmul_peak": round(match_gflops / (pair_ms / 1000) / peak, 3),
    }


# main -------------------------------------------------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2, help="threads for BLAS, onnxruntime, USearch, OpenCV")
    ap.add_argument("--quick", action="store_true", help="scale down: search up to 200k vectors, fewer photos")
    ap.add_argument("--vectors", help="search sizes, comma-separated (default 10000,100000,1000000)")
    ap.add_argument("--photos", type=int, help="camera-sized JPEGs for the indexing comparison (default 48)")
    ap.add_argument("--rerank-k", type=int, help="candidates in the MLLM re-rank benchmark (default 8, --quick 4)")
    ap.add_argument("--skip", default="", help="sections to skip, comma-separated: encoder,search,mllm,sv")
    ap.add_argument("--budget", type=float, default=570,
                    help="seconds for the whole run: the largest search size is scaled down to fit (default 570)")
    ap.add_argument("--out", type=Path, help="also write the report to this file")
    args = ap.parse_args()
    t_start = time.perf_counter()
    skip = set(filter(None, args.skip.split(",")))
    sizes = [int(s) for s in (args.vectors or ("10000,100000,200000" if args.quick else "10000,100000,1000000"))
             .split(",")]
    n_photos = args.photos or (16 if args.quick else 48)
    report: dict = {"threads": args.threads, "machine": machine(), "load_average_before": os.getloadavg()}
    notes: list[str] = []
    if max(sizes) < 1_000_000:
        notes.append(f"search scaled down by flag: largest size {max(sizes):,} vectors, not 1,000,000")
    if args.quick:
        notes.append(f"--quick: {n_photos} photos for indexing, fewer timing repeats")
    log("matmul peak")
    peak = matmul_gflops()
    report["hardware"] = {"numpy_fp32_matmul_gflops": peak, "matmul_size": 2048}
    if "encoder" not in skip:
        photo_dir = bench_index.CACHE / f"photos-3000x2000-{n_photos}"
        log(f"{n_photos} camera-sized photos in {photo_dir}")
        photos = bench_index.make_photos(photo_dir, n_photos, (3000, 2000))
        report["encoder"] = bench_encoders(args.threads, peak, photos, photo_dir, args.quick)
        report["peak_rss_mb_after_encoder"] = peak_rss_mb()
        save(report, args.out)
    # re-ranking before search: the search section then knows exactly how much of the time budget is left
    rerank_k = args.rerank_k or (4 if args.quick else 8)
    report["rerank"] = {
        "mllm": {"status": "skipped"} if "mllm" in skip else bench_mllm(args.threads, rerank_k, peak),
        "sv": {"status": "skipped"} if "sv" in skip else bench_sv(args.threads, peak, 12 if args.quick else 24),
    }
    save(report, args.out)
    if "search" not in skip:
        deadline = t_start + args.budget
        report["search"] = bench_search_sizes(sizes, args.threads, 100 if args.quick else 200, peak, deadline, notes)
        report["peak_rss_mb_after_search"] = peak_rss_mb()
    report["peak_rss_mb"] = peak_rss_mb()
    report["load_average_after"] = os.getloadavg()
    busy = max(report["load_average_before"][0], report["load_average_after"][0]) > 1.5 * (os.cpu_count() or 1)
    if busy:
        notes.append("measured under load: the load average exceeded 1.5x the CPU count; re-run on a quiet machine")
    report["notes"] = notes
    report["seconds"] = round(time.perf_counter() - t_start, 1)
    save(report, args.out)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
