"""Open a re-ranker by name for a library: the MLLM (with the library's visual-token store) or `sv`.

The MLLM adapter serves candidates from the token store when their visual tokens were computed before, and stores
the tokens of every candidate it had to encode on the fly, so each library photo goes through the vision encoder
at most once per model. It judges the candidates with stored tokens first (a fraction of a second each), then the
ones it must encode, and keeps the query's own tokens: a library photo's are its stored ones, any other query's
(a file, a pasted image, a box) are cached by their pixels, so asking again costs no vision encode.

`PreviewReranker` puts cheap `sv` verdicts in front of a slow MLLM run, so a ranking on a library without stored
tokens moves within a second or two; each MLLM verdict then replaces the preview's as it lands.
"""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from pathlib import Path

from .box import RegionQuery
from .decode import PhotoLoader, decode
from .errors import UsageError
from .library import Hit, Library

# The MLLM resizes to its own tiles (512 px for SmolVLM): decoding more pixels than that is wasted work.
MLLM_DECODE_SIDE = 512
QUERY_CACHE = 32  # query photos (or boxes) whose visual tokens are kept between queries: ~150-300 kB each


class MllmPairReranker:
    """The libmtmd pair scorer bound to a library's visual-token store (and, for query lookups, the library)."""

    name = "mllm"

    def __init__(self, mllm, store, library: Library | None = None):
        self.mllm, self.store, self.library = mllm, store, library
        self._queries: OrderedDict[bytes, object] = OrderedDict()

    def candidates(self, hits: Sequence[Hit]) -> list:
        return [self.store.get(h.key) or PhotoLoader(h.key, h.path, MLLM_DECODE_SIDE) for h in hits]

    def score(self, query, candidates, cancel=None, on_encoded=None) -> Iterator[tuple[int, float]]:
        """As MllmReranker.score, candidates with stored tokens first; indices are those of `candidates`."""
        tokens = None if isinstance(query, str) else self.query_tokens(query)
        # tokens stored since candidates() ran (the query's own, a background preparer's) spare an encode
        candidates = [self.store.get(c.key) or c if isinstance(c, PhotoLoader) else c for c in candidates]
        order = sorted(range(len(candidates)), key=lambda i: isinstance(candidates[i], PhotoLoader))
        ordered = [candidates[i] for i in order]

        def keep(j: int, tokens) -> None:
            if isinstance(ordered[j], PhotoLoader):
                self.store.put(ordered[j].key, tokens)
            if on_encoded is not None:
                on_encoded(order[j], tokens)

        for j, p in self.mllm.score(query, ordered, cancel=cancel, on_encoded=keep, query_tokens=tokens):
            yield order[j], p

    def ready(self, query, candidates) -> bool:
        """True when judging costs no vision encode: the query's tokens are known and every candidate's stored."""
        known = isinstance(query, str) or self._known_query(query)
        return known and not any(isinstance(c, PhotoLoader) and c.key not in self.store for c in candidates)

    def query_tokens(self, query):
        """The query's visual tokens: stored ones for a library photo (encoded and stored if missing), else
        from the cache of recent queries, else encoded now."""
        key, path = self._library_photo(query)
        if key is not None:
            tokens = self.store.get(key)
            return self.encode_photo(key, path) if tokens is None else tokens
        digest = _pixels_digest(query)
        if digest in self._queries:
            self._queries.move_to_end(digest)
            return self._queries[digest]
        tokens = self.mllm.query_tokens(query)
        self._queries[digest] = tokens
        if len(self._queries) > QUERY_CACHE:
            self._queries.popitem(last=False)
        return tokens

    def encode_photo(self, key: int, path: str):
        """Encode a library photo and store its tokens (decoded as a candidate would be, so a photo's tokens are
        the same whether it is a query, a candidate or prepared ahead); returns them. Raises DecodeError."""
        tokens = self.mllm.encode(decode(path, min_side=MLLM_DECODE_SIDE))
        self.store.put(key, tokens)
        return tokens

    def _known_query(self, query) -> bool:
        key, _ = self._library_photo(query)
        return key in self.store if key is not None else _pixels_digest(query) in self._queries

    def _library_photo(self, query) -> tuple[int | None, str | None]:
        """(key, path) when the query is a whole library photo as decode() read it, else (None, None)."""
        path = getattr(query, "info", {}).get("source_path")
        if path is None or self.library is None:
            return None, None
        return self.library.key_for_path(path), path

    def close(self) -> None:
        self.store.close()
        self.mllm.close()


def _pixels_digest(query) -> bytes:
    """A query's identity for the token cache: its pixels, and the box when it is a RegionQuery."""
    image = query.image if isinstance(query, RegionQuery) else query
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{image.mode} {image.size} {query.box if isinstance(query, RegionQuery) else None}".encode())
    h.update(image.tobytes())
    return h.digest()


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
    **options,
) -> MllmPairReranker:
    """The MLLM re-ranker bound to the library's token store (arguments as for mllm_files; `options` go to
    MllmReranker, e.g. weights="as-is" and a small n_ctx for a process that only encodes)."""
    from .rerank.mllm import MllmReranker
    from .rerank.tokens import TokenStore

    mllm = MllmReranker(threads=threads, **mllm_files(model, vlm, mmproj, image_tokens, prompt), **options)
    try:
        store = TokenStore(library.path / f"tokens-{mllm.model_id}.sqlite", mllm.model_id, codec=codec)
    except BaseException:
        mllm.close()
        raise
    return MllmPairReranker(mllm, store, library)


def open_reranker(name: str, library: Library, *, preview: bool = False, **kw):
    """A PairReranker by name: "mllm", "sv", or "mllm+sv" (the mean of both probabilities).

    preview=True puts cheap sv verdicts in front of an MLLM run that needs the vision encoder (PreviewReranker);
    it is for people watching the ranking move, not for evaluation.
    """
    if name not in ("mllm", "sv", "mllm+sv"):
        raise UsageError(f"unknown re-ranker {name!r}: choose mllm, sv or mllm+sv")
    from .rerank.sv import SvReranker

    if name == "sv":
        return SvReranker(threads=kw.get("threads"))
    sv = SvReranker(threads=kw.get("threads")) if preview or name == "mllm+sv" else None
    main = open_mllm(library, **kw) if name == "mllm" else MeanReranker([open_mllm(library, **kw), sv])
    return PreviewReranker(main, sv) if preview else main


class PreviewReranker:
    """Cheap verdicts first while a slow re-ranker is cold: `preview` judges every candidate, then `main`'s
    verdicts replace them as they land. Yields (index, P, provisional); without a cold start, just `main`'s."""

    def __init__(self, main, preview):
        self.main, self.preview = main, preview
        self.name = main.name

    def candidates(self, hits: Sequence[Hit]) -> tuple[list, list]:
        return self.main.candidates(hits), self.preview.candidates(hits)

    def score(self, query, candidates, cancel=None, on_encoded=None) -> Iterator[tuple]:
        main, cheap = candidates
        if not isinstance(query, str) and not _ready(self.main, query, main):
            for i, p in self.preview.score(query, cheap, cancel=cancel):
                yield i, p, True
        for i, p in self.main.score(query, main, cancel=cancel, on_encoded=on_encoded):
            yield i, p, False

    def close(self) -> None:
        self.main.close()
        self.preview.close()


def _ready(reranker, query, candidates) -> bool:
    """Whether a re-ranker will judge without a cold start (a re-ranker that cannot tell is assumed cold)."""
    ready = getattr(reranker, "ready", None)
    return bool(ready and ready(query, candidates))


class MeanReranker:
    """Averages several re-rankers' probabilities per candidate (yields each once all parts have judged it).

    Parts may judge in different orders (the MLLM takes stored candidates first); they run one after another,
    the cheap ones (sv) first.
    """

    def __init__(self, parts: list):
        self.parts = parts
        self.name = "+".join(p.name for p in parts)

    def candidates(self, hits: Sequence[Hit]) -> list:
        return [p.candidates(hits) for p in self.parts]

    def ready(self, query, candidates) -> bool:
        return all(not hasattr(p, "ready") or p.ready(query, c) for p, c in zip(self.parts, candidates, strict=True))

    def score(self, query, candidates, cancel=None, on_encoded=None) -> Iterator[tuple[int, float]]:
        parts = sorted(zip(self.parts, candidates, strict=True), key=lambda pc: pc[0].name != "sv")
        judged: dict[int, list[float]] = {}
        for part, cands in parts:
            for i, p in part.score(query, cands, cancel=cancel):
                judged.setdefault(i, []).append(p)
                if len(judged[i]) == len(parts):
                    known = [x for x in judged[i] if not math.isnan(x)]  # a part that could not judge abstains
                    yield i, (sum(known) / len(known)) if known else math.nan

    def close(self) -> None:
        for p in self.parts:
            getattr(p, "close", lambda: None)()
