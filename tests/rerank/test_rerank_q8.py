"""Q8_0 text weights on AMX CPUs: llama.cpp's default extra-buffer path crashes; the re-ranker must not.

Both checks run in a child process, so a crash fails one test instead of killing the whole session.
"""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from edgeret.testing import tiny_gguf

ROOT = Path(__file__).resolve().parents[2]  # the checkout


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


@pytest.fixture(scope="module")
def q8_pair(tmp_path_factory):
    return tiny_gguf.make_pair(tmp_path_factory.mktemp("q8"), "mlp", text_type="q8_0")


def test_q8_0_model_decodes_several_tokens(q8_pair):
    model, mmproj = q8_pair
    proc = _run(f"""
        import numpy as np
        from tests.helpers.rerank import CANDIDATES, QUERY
        from edgeret.rerank.mllm import MllmReranker
        with MllmReranker({str(model)!r}, {str(mmproj)!r}, threads=2, weights="as-is") as r:
            assert r.single_batch and r.weights_path == r.model_path  # Q8_0 itself runs, not an f32 copy
            scores = [p for _, p in r.score(QUERY, [lambda c=c: c for c in CANDIDATES])]
            assert all(0 <= p <= 1 for p in scores), scores
            # the numpy Q8_0 dequantization of token_embd must match llama.cpp's own get_rows
            d = np.abs(r.candidate_logits(QUERY, CANDIDATES[0]) - r.naive_logits(QUERY, CANDIDATES[0])).max()
            assert d <= 1e-4, d
        print("ok", len(scores))
    """)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["ok", "5"]


def _cpu_has_amx() -> bool:
    try:
        return "amx_int8" in Path("/proc/cpuinfo").read_text()
    except OSError:
        return False


@pytest.mark.skipif(not _cpu_has_amx(), reason="the crash needs llama.cpp's AMX path")
def test_default_llama_params_do_crash_here(q8_pair):
    """Control: shows the hazard the re-ranker avoids is real on this CPU (upstream llama.cpp #20824)."""
    proc = _run(f"""
        import llama_cpp
        llama_cpp.llama_backend_init()
        model = llama_cpp.llama_model_load_from_file({str(q8_pair[0])!r}.encode(),
                                                     llama_cpp.llama_model_default_params())
        cp = llama_cpp.llama_context_default_params()
        cp.n_ctx, cp.n_threads, cp.n_threads_batch = 256, 2, 2
        ctx = llama_cpp.llama_init_from_model(model, cp)
        toks = (llama_cpp.llama_token * 8)(*range(10, 90, 10))
        print("rc", llama_cpp.llama_decode(ctx, llama_cpp.llama_batch_get_one(toks, 8)))
    """)
    if proc.returncode == 0:
        pytest.skip("this llama.cpp build no longer crashes with extra buffer types: the workaround may go")
    assert proc.returncode != 0
