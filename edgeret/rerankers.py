"""Open a re-ranker by name for a library: the MLLM (with the library's visual-token store) or `sv`.

The MLLM adapter serves candidates from the token store when their visual tokens were computed before, and stores
the tokens of every candidate it had to encode on the fly, so each library photo goes through the vision encoder
at most once per model.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from .decode import PhotoLoader
from .errors import UsageError
from .library import Hit, Library

# The MLLM resizes to its own tiles (512 px for SmolVLM): decoding more pixels than that is wasted work.
MLLM_DECODE_SIDE = 512


class MllmPairReranker:
    """The libmtmd pair scorer bound to a library's visual-token store."""

    name = "mllm"

    def __init__(self, mllm, store):
        self.mllm, self.store = mllm, store

    def candidates(self, hits: Sequence[Hit]) -> list:
        return [self.store.get(h.key) or PhotoLoader(h.key, h.path, MLLM_DECODE_SIDE) for h in hits]

    def score(self, query, candidates, cancel=None, on_encoded=None) -> Iterator[tuple[int, float]]:
        def keep(i: int, tokens) -> None:
            if isinstance(candidates[i], PhotoLoader):
                self.store.put(candidates[i].key, tokens)
            if on_encoded is not None:
                on_encoded(i, tokens)

        yield from self.mllm.score(query, candidates, cancel=cancel, on_encoded=keep)

    def encode_missing(self, library: Library, progress=None, cancel: Callable[[], bool] | None = None) -> int:
        """Fill the token store for every indexed photo that lacks tokens; returns how many were encoded."""
        from .decode import decode
        from .errors import DecodeError

        todo = [(k, p) for k, p in library.photos() if k not in self.store]
        for n, (key, path) in enumerate(todo, 1):
            if cancel and cancel():
                return n - 1
            with contextlib.suppress(DecodeError):  # changed or broken since indexing: the indexer will report it
                self.store.put(key, self.mllm.encode(decode(path, min_side=MLLM_DECODE_SIDE)))
            if progress:
                progress(n, len(todo), path)
        return len(todo)

    def close(self) -> None:
        self.store.close()
        self.mllm.close()


def default_reranker() -> str:
    """The registry's default re-ranker (smolvlm-256m in the shipped registry)."""
    from .models import default_model

    return default_model("reranker").name


def installed_reranker() -> tuple[str | None, str | None]:
    """What re-ranks when the user has not chosen: ("mllm", model) when a registry re-ranker is installed (the
    default one first), else ("sv", None) when OpenCV is there, else (None, None)."""
    from .errors import EdgeretError
    from .models import list_models

    try:
        installed = [m for m in list_models() if m["role"] == "reranker" and m["installed"]]
    except EdgeretError:  # an unreadable registry: nothing to offer from it
        installed = []
    if installed:
        return "mllm", sorted(installed, key=lambda m: not m["default"])[0]["name"]
    try:
        import cv2  # noqa: F401
    except ImportError:
        return None, None
    return "sv", None


def mllm_files(
    model: str | None = None,
    vlm: str | Path | None = None,
    mmproj: str | Path | None = None,
    image_tokens: int | None = None,
    prompt: str | None = None,
) -> dict:
    """MllmReranker's arguments from explicit --vlm/--mmproj paths or a registry name (default smolvlm-256m)."""
    if mmproj and not vlm:
        raise UsageError("--mmproj needs --vlm: the text model that goes with the projector")
    settings: dict = {}
    if vlm and not mmproj:  # a registry name or an installed re-ranker folder
        model, vlm = str(vlm), None
    if not vlm:
        from .models import reranker_files, resolve

        vlm, mmproj, settings = reranker_files(resolve(model or default_reranker(), "reranker"))
    if image_tokens is None:
        image_tokens = settings.get("image_max_tokens")
    return {"model_path": vlm, "mmproj_path": mmproj, "image_tokens": image_tokens,
            "prompt": prompt or settings.get("prompt", "object01")}


def open_mllm(
    library: Library,
    *,
    model: str | None = None,
    vlm: str | Path | None = None,
    mmproj: str | Path | None = None,
    threads: int | None = None,
    image_tokens: int | None = None,
    prompt: str | None = None,
    codec: str = "f16",
) -> MllmPairReranker:
    """The MLLM re-ranker bound to the library's token store (arguments as for mllm_files)."""
    from .rerank.mllm import MllmReranker
    from .rerank.tokens import TokenStore

    mllm = MllmReranker(threads=threads, **mllm_files(model, vlm, mmproj, image_tokens, prompt))
    try:
        store = TokenStore(library.path / f"tokens-{mllm.model_id}.sqlite", mllm.model_id, codec=codec)
    except BaseException:
        mllm.close()
        raise
    return MllmPairReranker(mllm, store)


def open_reranker(name: str, library: Library, **kw):
    """A PairReranker by name: "mllm", "sv", or "mllm+sv" (the mean of both probabilities)."""
    if name == "mllm":
        return open_mllm(library, **kw)
    from .rerank.sv import SvReranker

    if name == "sv":
        return SvReranker(threads=kw.get("threads"))
    if name == "mllm+sv":
        return MeanReranker([open_mllm(library, **kw), SvReranker(threads=kw.get("threads"))])
    raise UsageError(f"unknown re-ranker {name!r}: choose mllm, sv or mllm+sv")


class MeanReranker:
    """Averages several re-rankers' probabilities per candidate (yields once all have judged it)."""

    def __init__(self, parts: list):
        self.parts = parts
        self.name = "+".join(p.name for p in parts)

    def candidates(self, hits: Sequence[Hit]) -> list:
        return [p.candidates(hits) for p in self.parts]

    def score(self, query, candidates, cancel=None, on_encoded=None) -> Iterator[tuple[int, float]]:
        streams = [p.score(query, c, cancel=cancel) for p, c in zip(self.parts, candidates, strict=True)]
        for judged in zip(*streams, strict=False):
            known = [p for _, p in judged if not math.isnan(p)]  # a part that could not judge abstains
            yield judged[0][0], (sum(known) / len(known)) if known else math.nan

    def close(self) -> None:
        for p in self.parts:
            getattr(p, "close", lambda: None)()
