"""Re-ranker fixtures: one loaded MllmReranker per projector family, shared by the modules of this folder."""

from __future__ import annotations

import pytest

from edgeret.library import Library
from edgeret.rerankers import open_mllm
from tests.conftest import PROJECTORS


@pytest.fixture(scope="module", params=PROJECTORS)
def reranker(request, tiny_models):
    """A loaded MllmReranker per projector family, closed when the module is done.

    One thread: tiny models gain nothing from two, and a busy CI core would stall a spinning thread pool.
    """
    from edgeret.rerank.mllm import MllmReranker

    model, mmproj = tiny_models[request.param]
    r = MllmReranker(model, mmproj, threads=1)
    yield r
    r.close()


@pytest.fixture
def mllm(indexed, tiny_vlm):
    """(library, MLLM re-ranker) over `indexed`, with the generated idefics3 pair."""
    model, mmproj = tiny_vlm
    with Library(indexed) as lib:
        rr = open_mllm(lib, vlm=model, mmproj=mmproj, threads=1)
        yield lib, rr
        rr.close()
