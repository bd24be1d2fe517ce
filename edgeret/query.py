"""One query's ranking: first-stage hits, then live re-ranking (front ends reach it through edgeret.session).

`run_query` yields the whole result list again after each change, best first, so a caller can print only the last
list (CLI) or redraw every time (GUI).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence, Set
from dataclasses import dataclass, replace
from typing import Protocol

from PIL import Image

from .library import Hit
from .rerank.fusion import rank
from .settings import LAMBDA

# Candidates reach a re-ranker as stored visual tokens or as loaders returning an RGB image.
Candidate = object


class PairReranker(Protocol):
    """What a re-ranker offers: P(same object) for each (query, candidate) pair, as soon as each is known."""

    name: str

    def candidates(self, hits: Sequence[Hit]) -> list[Candidate]: ...

    def score(
        self,
        query: Image.Image | str,
        candidates: Sequence[Candidate],
        cancel: Callable[[], bool] | None = None,
        on_encoded: Callable[[int, object], None] | None = None,
    ) -> Iterator[tuple[int, float]]: ...  # or (index, P, provisional): a later verdict replaces a provisional one

    def close(self) -> None: ...


@dataclass(frozen=True)
class Result:
    """One result row as shown to users: `p_same` is None until the re-ranker has judged the candidate.

    `provisional`: p_same is a cheap preview verdict (sv) that the re-ranker's own verdict will replace.
    """

    key: int
    path: str
    first_stage: float
    p_same: float | None = None
    final: float = 0.0
    provisional: bool = False

    def as_dict(self, reranker: str | None = None) -> dict:
        d = {"path": self.path, "score": self.final, "first_stage": self.first_stage}
        if reranker:
            d["reranker"] = reranker
            d["mllm" if reranker == "mllm" else reranker] = None if self.p_same is None else _num(self.p_same)
            d["final"] = self.final
        return d


def _num(x: float) -> float | None:
    return None if math.isnan(x) else x


def first_stage(hits: Sequence[Hit]) -> list[Result]:
    return [Result(h.key, h.path, h.score, None, h.score) for h in hits]


def run_query(
    hits: Sequence[Hit],
    query: Image.Image | str,
    reranker: PairReranker | None = None,
    lam: float = LAMBDA,
    cancel: Callable[[], bool] | None = None,
) -> Iterator[list[Result]]:
    """Yield the first-stage results, then the re-fused ranking after each candidate the re-ranker judges.

    `query` is the query photo, or the text of a text query (re-rankers that need a photo refuse it).
    """
    results = first_stage(hits)
    yield results
    if reranker is None or not hits:
        return
    p: dict[int, float] = {}
    provisional: set[int] = set()
    rest: list[object]
    for i, prob, *rest in reranker.score(query, reranker.candidates(hits), cancel=cancel):
        p[i] = prob
        if rest and rest[0]:
            provisional.add(i)
        else:
            provisional.discard(i)
        yield _ranked(hits, p, lam, provisional)


def _ranked(hits: Sequence[Hit], p: dict[int, float], lam: float, provisional: Set[int] = frozenset()) -> list[Result]:
    order = rank([h.score for h in hits], p, lam)
    return [replace(first_stage([hits[i]])[0], p_same=p.get(i), final=final, provisional=i in provisional)
            for i, final in order]
