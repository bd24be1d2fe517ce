"""The one query facade between the front ends (CLI, eval, GUI) and the library.

A Session opens a library once and keeps its image encoder, text encoder and re-ranker loaded between queries
(each reloaded only when its settings change). A Query names what to search for; `search` streams the first-stage
ranking and then the re-fused ranking after every candidate the re-ranker judges, until done or cancelled.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from PIL import Image

from .box import Box, boxed_query
from .decode import decode
from .encoders import ImageEncoder
from .errors import LibraryError, UsageError
from .library import Hit, Library
from .query import PairReranker, Result, run_query
from .settings import EXACT_BELOW, LAMBDA, RERANKER, K, Settings

Cancel = Callable[[], bool]


@dataclass(frozen=True)
class Query:
    """What to search for: exactly one of a decoded `image`, a photo `path`, a library photo `key`, or a `text`.

    `box` restricts a photo query to a region: a box.Box, a parsed `--box` (BoxSpec), an `x0,y0,x1,y1` string or
    four pixel numbers (see edgeret.box); the first stage encodes the region, re-rankers get a RegionQuery.
    """

    image: Image.Image | None = None
    path: Path | str | None = None
    key: int | None = None
    text: str | None = None
    box: object = None

    def __post_init__(self) -> None:
        given = [f.name for f in fields(self) if f.name != "box" and getattr(self, f.name) is not None]
        if len(given) != 1:
            raise UsageError(f"a query is one of an image, a path, a library key or a text (got {given or 'none'})")
        if self.box is not None and self.text is not None:
            raise UsageError("a box restricts a query photo: a text query has none")

    @property
    def is_text(self) -> bool:
        return self.text is not None


@dataclass(frozen=True)
class RerankSpec:
    """Which re-ranker judges the top k: `name` mllm, sv or mllm+sv; the MLLM's model and options."""

    name: str = RERANKER
    model: str | None = None  # registry name; None: the registry's default re-ranker
    vlm: str | None = None  # text-model GGUF (with mmproj), or a registry name / installed folder
    mmproj: str | None = None
    image_tokens: int | None = None
    prompt: str | None = None
    codec: str = "f16"
    preview: bool = False  # quick sv verdicts while the MLLM is cold (rerankers.PreviewReranker): for people

    @property
    def uses_mllm(self) -> bool:
        return self.name in ("mllm", "mllm+sv")

    def model_label(self) -> str:
        """The model name to show or offer for download when this re-ranker is missing."""
        if self.model or self.vlm:
            return str(self.model or self.vlm)
        from .rerankers import default_reranker

        return default_reranker()


@dataclass(frozen=True)
class Prepared:
    """A query made ready: the whole photo, what the first stage encodes (its box's region), what re-rankers get
    (the photo, a RegionQuery, or the text) and the box in pixels. Photo fields are None for a text query."""

    image: Image.Image | None
    region: Image.Image | None
    rerank: object
    box: Box | None


class Session:
    """One library with its encoders and re-ranker, opened on first use and kept until `close()`."""

    def __init__(self, library: Path | str, *, threads: int = 2, exact_below: int = EXACT_BELOW,
                 encoder: str | None = None, text_encoder: str | None = None):
        self.library_path = Path(library).expanduser()
        self.threads, self.exact_below = threads, exact_below
        self.encoder_spec, self.text_encoder_spec = encoder, text_encoder
        self._library: Library | None = None
        self._loaded: dict[str, tuple[object, Any]] = {}  # what -> (settings key, loaded object)

    @classmethod
    def from_settings(cls, s: Settings, text_encoder: str | None = None) -> Session:
        return cls(s.library, threads=s.threads, exact_below=s.exact_below, encoder=s.encoder,
                   text_encoder=text_encoder)

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Free the re-ranker (a llama context and a token store) and close the library."""
        self._drop("reranker")
        self._loaded.clear()
        if self._library is not None:
            self._library.close()
            self._library = None

    # what a query needs, loaded once ----------------------------------------------------------------------
    @property
    def library(self) -> Library:
        """The library, opened read-only on first use (LibraryError if there is none yet)."""
        if self._library is None:
            self._library = Library(self.library_path, exact_below=self.exact_below)
        return self._library

    def configure(self, *, threads: int, encoder: str | None = None, text_encoder: str | None = None) -> None:
        """New settings for the next queries (a front end whose user changes them); what they change reloads."""
        self.threads, self.encoder_spec, self.text_encoder_spec = threads, encoder, text_encoder

    def encoder(self) -> ImageEncoder:
        """The image encoder: the session's, else the library's own (checked against the library's vectors)."""
        spec, threads = self.encoder_spec or self.library.encoder_spec, self.threads
        return self._cached("encoder", (spec, threads), lambda: self.library.load_encoder(spec, threads))

    def text_encoder(self):
        """The text tower: the session's, else the registry's one pairing the library's encoder."""
        from .text import load_text_encoder

        spec, threads = self.text_encoder_spec, self.threads
        return self._cached("text", (spec, threads), lambda: load_text_encoder(self.library, spec, threads))

    def reranker(self, spec: RerankSpec | None) -> PairReranker | None:
        """The re-ranker `spec` asks for (None: none); a different spec closes the previous one first."""
        if spec is None:
            return None
        from .rerankers import open_reranker

        threads = self.threads
        if not self.has_reranker(spec):
            self._drop("reranker")
        options = {} if spec.name == "sv" else {
            "model": spec.model, "vlm": spec.vlm, "mmproj": spec.mmproj, "image_tokens": spec.image_tokens,
            "prompt": spec.prompt, "codec": spec.codec,
        }
        return self._cached("reranker", (spec, threads), lambda: open_reranker(
            spec.name, self.library, threads=threads, preview=spec.preview, **options))

    def has_reranker(self, spec: RerankSpec) -> bool:
        """Whether `reranker(spec)` is served without loading (so a front end can say "loading…" first)."""
        return self._loaded.get("reranker", (None,))[0] == (spec, self.threads)

    def has_text_encoder(self) -> bool:
        return self._loaded.get("text", (None,))[0] == (self.text_encoder_spec, self.threads)

    def _cached(self, what: str, key, load):
        if what not in self._loaded or self._loaded[what][0] != key:
            self._loaded.pop(what, None)
            self._loaded[what] = (key, load())
        return self._loaded[what][1]

    def _drop(self, what: str) -> None:
        _, loaded = self._loaded.pop(what, (None, None))
        if loaded is not None:
            loaded.close()

    # one query ----------------------------------------------------------------------------------------------
    def prepare(self, q: Query, *, full: bool = False) -> Prepared:
        """Decode the query's photo (upright) and apply its box. `full`: every pixel, as a re-ranker or a display
        wants; else only as many as the encoder needs (a box always decodes in full: its region is small)."""
        if q.is_text:
            return Prepared(None, None, q.text, None)
        image = q.image
        if image is None:
            path = q.path if q.path is not None else self.library.path_for_key(q.key or 0)
            if path is None:
                raise LibraryError(f"the library holds no photo {q.key}")
            full = full or q.box is not None
            image = decode(path, min_side=None if full else self.library.decode_side(self.encoder()))
        region, rerank_query, box = boxed_query(image, q.box)
        return Prepared(image, region, rerank_query, box)

    def first_stage(self, q: Query, k: int = K, prepared: Prepared | None = None, *,
                    exclude_self: bool = False) -> list[Hit]:
        """The top k by cosine. `prepared`: the query if already prepared. `exclude_self`: a query that is a
        library photo is left out of its own results (a key query without a box uses its stored vector)."""
        if q.is_text:
            from .text import search_text

            return search_text(self.library, self.text_encoder(), q.text or "", k)
        if q.key is not None and q.box is None and exclude_self and (v := self.library.vectors_of(q.key)) is not None:
            return self.library.search_sets([v], k, exclude_keys=[q.key])[0]  # own + region vectors, as stored
        key = q.key if q.key is not None else (self.library.key_for_path(q.path) if q.path is not None else None)
        prepared = prepared or self.prepare(q)
        assert prepared.region is not None  # a photo query: prepare() decoded it
        encoder = self.encoder()  # search_images checks it: the library may have been re-encoded since it loaded
        exclude = [key] if exclude_self and key is not None else []
        return self.library.search_images([prepared.region], encoder, k, exclude_keys=exclude)[0]

    def search(self, q: Query, k: int = K, rerank: RerankSpec | None = None, lam: float = LAMBDA,
               cancel: Cancel | None = None, *, exclude_self: bool = False,
               prepared: Prepared | None = None) -> Iterator[list[Result]]:
        """Stream the ranking: the first stage, then the re-fused list after each judged candidate (see run_query).

        The last list yielded is the answer; `cancel` stops the re-ranking after the candidate in progress.
        """
        if not 0.0 <= lam <= 1.0:
            raise UsageError("--lambda must be between 0 and 1")
        if q.is_text and rerank is not None and rerank.name != "mllm":
            raise UsageError("text queries are re-ranked by the MLLM only: spatial verification needs a query photo")
        reranker = self.reranker(rerank)
        prepared = prepared or self.prepare(q, full=reranker is not None)  # the re-ranker looks at more pixels
        hits = self.first_stage(q, k, prepared, exclude_self=exclude_self)
        yield from self.rerank(hits, prepared.rerank, reranker, lam, cancel)

    @staticmethod
    def rerank(hits: list[Hit], query, reranker: PairReranker | None, lam: float = LAMBDA,
               cancel: Cancel | None = None) -> Iterator[list[Result]]:
        """First-stage `hits` as results, then re-fused after each judgement of `reranker` (None: first stage).
        `query` is what re-rankers get: a photo, a RegionQuery (photo + box) or a text."""
        yield from run_query(hits, query, reranker, lam, cancel)
