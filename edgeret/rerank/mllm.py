"""The libmtmd pair scorer: a GGUF multimodal LLM judges "same object?" for (query, candidate) image pairs.

Prompt = [template head + query image + text up to the candidate] + [candidate image + question + answer cue].
The first part (the prefix) is decoded once per query; for each candidate the KV cache is truncated back to the
prefix and only the candidate's part is decoded. Candidate images are given as visual tokens (the mmproj output,
computed once and stored, see tokens.py) or as loaders that are encoded on the fly. The model plumbing (loading,
mtmd tokenization, the vision encoder, decoding) lives in mtmd.py.

P(same) = softmax over the two answer words only; every vocabulary variant of a word ("1", " 1", "Yes",
"▁yes", ...) is merged with logsumexp. All calls must come from one thread (a llama context is not thread-safe).
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import logging
import math
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from edgeret.box import RegionQuery, query_image
from edgeret.errors import DecodeError, EdgeretError
from edgeret.gguf_rules import check_pair
from edgeret.modelfiles import GgufHeader
from edgeret.rerank.gguf_file import check_file, fingerprint
from edgeret.rerank.mtmd import (
    MtmdSession,
    RerankerError,
    VisualTokens,
    default_image_tokens,
    physical_cores,
    square_side,
)
from edgeret.rerank.prompts import PairPrompt, boxed_prompt, get_prompt, text_prompt
from edgeret.rerank.weights import policy_from_env
from edgeret.settings import vlm_tiles

__all__ = ["MllmReranker", "RerankerError", "VisualTokens", "physical_cores"]

log = logging.getLogger(__name__)

VISION_RECIPE = "v2"  # v2: vision flash attention at libmtmd's default, square tiles (mtmd.square_side)
# mtmd projector families exercised by the tests; others may work and are allowed with a warning.
_TESTED_PROJECTORS = {"mlp", "idefics3", "qwen2vl_merger", "qwen2.5vl_merger", "gemma3"}


@dataclass(frozen=True)
class _Layout:
    """A prompt cut at the candidate's marker: `prefix` is evaluated once per query, `tail` once per candidate."""

    prefix: str
    tail: str
    answers: tuple[np.ndarray, np.ndarray]  # vocabulary ids of the positive and the negative answer


class MllmReranker:
    """Scores (query, candidate) image pairs with a GGUF multimodal LLM through libmtmd; see the module doc."""

    def __init__(self, model_path: str | os.PathLike, mmproj_path: str | os.PathLike, *, threads: int | None = None,
                 image_tokens: int | None = None, prompt: str = "object01", n_ctx: int | None = None,
                 flash_attn: bool = False, weights: str | None = None, tiles: str | None = None):
        self.session: MtmdSession | None = None
        self.model_path, self.mmproj_path = Path(model_path), Path(mmproj_path)
        self.prompt = get_prompt(prompt)
        self.threads = threads or physical_cores()
        # Off by default: llama.cpp's CPU flash-attention kernel rounds queries to f16 only in batches shorter than its
        # tile, so a candidate decoded in one batch differs (up to 5e-3 in logits) from a piecewise evaluation;
        # without it the fast path is bit-exact.
        self.flash_attn = flash_attn
        self.weights_policy = weights or policy_from_env()
        # each header is read once (modelfiles.read_gguf); every check below and the session share it
        text = check_file(self.model_path, "re-ranker model")
        mm = check_file(self.mmproj_path, "re-ranker mmproj")
        self.architecture, self.projector = self._check_pair(text, mm)
        check_pair(text, mm)  # what llama.cpp would crash on
        self.image_tokens = image_tokens if image_tokens is not None else default_image_tokens(mm, self.projector)
        model_fingerprint = fingerprint(self.model_path)
        self.tiles = tiles or vlm_tiles()
        self.square = square_side(mm, self.projector, self.image_tokens) if self.tiles == "square" else None
        self.session = MtmdSession(self.model_path, self.mmproj_path, architecture=self.architecture,
                                   threads=self.threads, image_tokens=self.image_tokens, n_ctx=n_ctx,
                                   flash_attn=flash_attn, weights_policy=self.weights_policy,
                                   tensors=text.tensors, fingerprint=model_fingerprint, square=self.square)
        try:
            self._answers: dict[str, np.ndarray] = {}
            self._layout = self._make_layout(self.prompt, query_images=1)
            self._boxed_layout: _Layout | None = None  # made on the first boxed query
        except BaseException:
            self.close()
            raise
        self.weights_path, self.n_embd, self.n_ctx = self.session.weights_path, self.session.n_embd, self.session.n_ctx
        self.model_id = self._make_model_id(model_fingerprint)
        self._owner: object | None = None  # the score() generator currently using the KV cache

    # ---- the model pair and its prompt ---------------------------------------------------------------------------

    def _check_pair(self, text: GgufHeader, mm: GgufHeader) -> tuple[str, str]:
        arch, proj = text.values["general.architecture"], mm.values.get("clip.projector_type")
        if arch == "clip":
            raise RerankerError(f"{self.model_path} is a projector (mmproj) file; pass it as the mmproj")
        if mm.values["general.architecture"] != "clip" or not isinstance(proj, str) or not proj:
            raise RerankerError(f"{self.mmproj_path} is not a multimodal projector (mmproj) file")
        if proj not in _TESTED_PROJECTORS:
            log.warning("projector family %r is not covered by edgeret's tests", proj)
        return arch, proj

    def _variants(self, word: str) -> np.ndarray:
        """Every vocabulary id whose piece strips and lowercases to `word` ("1", " 1", "Yes", "ĠYes", ...)."""
        buf = ctypes.create_string_buffer(64)
        ids = []
        for i in range(self.session.n_vocab):
            n = self.session.llama.llama_token_to_piece(self.session.vocab, i, buf, len(buf), 0, False)
            if 0 < n <= len(buf) and buf.raw[:n].decode("utf-8", "ignore").strip().lower() == word:
                ids.append(i)
        if not ids:
            raise RerankerError(f"{self.model_path.name}: the vocabulary has no token for the answer {word!r}")
        return np.array(ids, dtype=np.int64)

    def _answer(self, word: str) -> np.ndarray:
        if word not in self._answers:  # a vocabulary scan: done once per word
            self._answers[word] = self._variants(word)
        return self._answers[word]

    def _make_layout(self, prompt: PairPrompt, query_images: int) -> _Layout:
        """Render the prompt with its images and cut it at the last marker (the candidate's)."""
        text = self._chat_text(prompt, query_images + 1)
        cut = text.rfind(self.session.marker)
        if text.count(self.session.marker) != query_images + 1:
            raise RerankerError(f"{self.model_path.name}: its chat template dropped the image markers")
        return _Layout(text[:cut], text[cut:], (self._answer(prompt.positive), self._answer(prompt.negative)))

    def _layout_for(self, query) -> _Layout:
        if isinstance(query, str):
            try:
                return self._make_layout(text_prompt(query, self.session.marker), query_images=0)
            except ValueError as e:
                raise RerankerError(str(e)) from None
        if isinstance(query, RegionQuery):  # the instruction says the query is a box around the object meant
            if self._boxed_layout is None:
                self._boxed_layout = self._make_layout(boxed_prompt(self.prompt), query_images=1)
            return self._boxed_layout
        return self._layout

    def _chat_text(self, prompt: PairPrompt, n_images: int) -> str:
        """The user turn (instruction, images, question) through the GGUF's own chat template.

        Content parts are given the way llama-cpp-python's MTMDChatHandler gives them (images as marker text),
        so the prompt matches the stock handler's; models without a template get a plain User/Assistant form.
        """
        m, i, q = self.session.marker, prompt.instruction + "\n", prompt.question
        raw = self.session.llama.llama_model_chat_template(self.session.model, None)
        if raw:
            from jinja2.sandbox import ImmutableSandboxedEnvironment

            env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
            tmpl = env.from_string(raw.decode("utf-8", "replace"))
            parts = [{"type": "text", "text": t} for t in (i, *[m] * n_images, q)]
            for content in (parts, i + m * n_images + q):
                try:
                    out = tmpl.render(messages=[{"role": "user", "content": content}], add_generation_prompt=True,
                                      bos_token="", eos_token="")
                except Exception:  # noqa: BLE001 - any template failure: try the next content form
                    continue
                if out.count(m) == n_images:
                    return out
        return f"User: {i}{m * n_images}{q}\nAssistant:"

    def _make_model_id(self, model_fingerprint: str) -> str:
        h = hashlib.sha256()
        # VISION_RECIPE: how tokens are made (tile squashing, the tower's attention kernel); tokens stored by another
        # recipe are another model's, kept in another store file
        recipe = VISION_RECIPE if self.square else f"{VISION_RECIPE}-as-is"
        for part in (model_fingerprint, fingerprint(self.mmproj_path), str(self.image_tokens), recipe):
            h.update(part.encode())
            h.update(b"\0")
        return f"mllm-{h.hexdigest()[:20]}"

    # ---- scoring ----------------------------------------------------------------------------------------------

    def p_same(self, logits: np.ndarray, answers: tuple[np.ndarray, np.ndarray] | None = None) -> float:
        """Softmax over the two answer words only (default: the image prompt's); variants merged with logsumexp."""
        x = np.asarray(logits, dtype=np.float64)
        pos, neg = (float(np.logaddexp.reduce(x[ids])) for ids in (answers or self._layout.answers))
        return 1.0 / (1.0 + math.exp(neg - pos)) if neg - pos < 700 else 0.0

    def _as_tokens(self, image: Image.Image | VisualTokens) -> VisualTokens:
        return image if isinstance(image, VisualTokens) else self.encode(image)

    def _query_tokens(self, query) -> list[VisualTokens]:
        return [] if isinstance(query, str) else [self.query_tokens(query)]

    def query_tokens(self, query: Image.Image | VisualTokens | RegionQuery) -> VisualTokens:
        """The visual tokens the prompt holds for a photo query: a RegionQuery's region with its margin."""
        return self._as_tokens(query_image(query))

    def _eval_prefix(self, query: list[VisualTokens], layout: _Layout | None = None) -> int:
        """Evaluate the prompt up to the candidate from an empty cache; returns its length."""
        s, layout = self.session, layout or self._layout
        with s.tokenized(layout.prefix, [s.bitmap(None, q.size) for q in query], add_special=True) as chunks:
            s.reset()
            return s.decode_pieces(s.pieces(chunks, query), 0)

    def _eval_candidate(self, cand: VisualTokens, n_prefix: int, layout: _Layout | None = None) -> np.ndarray:
        s, layout = self.session, layout or self._layout
        with s.tokenized(layout.tail, [s.bitmap(None, cand.size)], add_special=False) as chunks:
            s.reset(n_prefix)
            s.decode_pieces(s.pieces(chunks, [cand]), n_prefix)
        return s.logits()

    def score(self, query: Image.Image | VisualTokens | str,
              candidates: Iterable[VisualTokens | Callable[[], Image.Image]],
              cancel: Callable[[], bool] | None = None,
              on_encoded: Callable[[int, VisualTokens], None] | None = None,
              query_tokens: VisualTokens | None = None) -> Iterator[tuple[int, float]]:
        """Yield (candidate index, P(same)) as each candidate is judged; stop between candidates on cancel().

        The query is a photo (the pair prompt), a RegionQuery (its boxed region with a margin, and an instruction
        saying the box is around the object meant) or a text description (P that the photo shows it). Candidates are
        stored VisualTokens or loaders returning an RGB image; loaded ones are encoded here and handed to
        on_encoded(index, tokens) so the caller can store them. A loader that fails to decode (DecodeError/OSError)
        yields NaN for that candidate and the run goes on. `query_tokens`, when given, are the query image's visual
        tokens computed before (a cache): the query is then not encoded again.
        """
        self._require_open()
        owner = self._owner = object()
        layout = self._layout_for(query)
        qt = self._query_tokens(query) if query_tokens is None or isinstance(query, str) else [query_tokens]
        n_prefix = self._eval_prefix(qt, layout)
        for i, cand in enumerate(candidates):
            if cancel is not None and cancel():
                return
            if self._owner is not owner:
                raise EdgeretError("another scoring run started on this re-ranker; finish one before the next")
            vt = cand if isinstance(cand, VisualTokens) else self._load_and_encode(i, cand, on_encoded)
            if vt is None:
                yield i, math.nan
            else:
                yield i, self.p_same(self._eval_candidate(vt, n_prefix, layout), layout.answers)

    def _load_and_encode(self, i: int, loader: Callable[[], Image.Image],
                         on_encoded: Callable[[int, VisualTokens], None] | None) -> VisualTokens | None:
        try:
            vt = self.encode(loader())
        except (DecodeError, OSError) as e:
            log.warning("re-rank candidate %d skipped: %s", i, e)
            return None
        if on_encoded is not None:
            on_encoded(i, vt)
        return vt

    def candidate_logits(self, query: Image.Image | VisualTokens | str,
                         candidate: Image.Image | VisualTokens) -> np.ndarray:
        """Full next-token logits of one pair through the fast path (prefix + stored-token candidate)."""
        self._require_open()
        self._owner = object()
        layout = self._layout_for(query)
        n_prefix = self._eval_prefix(self._query_tokens(query), layout)
        return self._eval_candidate(self._as_tokens(candidate), n_prefix, layout)

    def naive_logits(self, query: Image.Image | str, candidate: Image.Image) -> np.ndarray:
        """Reference: the whole prompt tokenized with its images (as encode() hands them over) and evaluated from an
        empty cache by libmtmd, which runs the vision tower on every chunk itself."""
        self._require_open()
        self._owner = object()
        s, layout = self.session, self._layout_for(query)
        images = [candidate] if isinstance(query, str) else [query_image(query), candidate]
        with s.tokenized(layout.prefix + layout.tail, [s.bitmap(s.prepared(im)) for im in images],
                         add_special=True) as chunks:
            s.eval_chunks(chunks)
        return s.logits()

    def token_counts(self, query: VisualTokens, candidate: VisualTokens) -> dict[str, int]:
        """Prompt sizes: prefix, candidate image tokens and the candidate's text tokens."""
        s, counts = self.session, {}
        for name, text, vt, special in (("prefix", self._layout.prefix, query, True),
                                        ("candidate", self._layout.tail, candidate, False)):
            with s.tokenized(text, [s.bitmap(None, vt.size)], add_special=special) as chunks:
                pieces = s.pieces(chunks, [vt])
            counts[name] = sum(len(p) for p in pieces)
            counts[f"{name}_image"] = sum(len(p) for p in pieces if p.embd is not None)
        counts["candidate_text"] = counts["candidate"] - counts["candidate_image"]
        return counts

    @property
    def single_batch(self) -> bool:
        """True when each candidate is decoded in one llama_decode call (embedding batch)."""
        return self.session.single_batch

    # ---- lifetime ---------------------------------------------------------------------------------------------

    def encode(self, image: Image.Image) -> VisualTokens:
        """Run the vision encoder + projector once; the result can be stored and scored many times."""
        self._require_open()
        return self.session.encode(image)

    def _require_open(self) -> None:
        if self.session is None:
            raise EdgeretError("the re-ranker was closed")

    def close(self) -> None:
        """Free the model pair; safe to call twice."""
        if self.session is not None:
            self.session.close()
            self.session = None

    def __enter__(self) -> MllmReranker:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):  # last resort; explicit close() is the contract
        with contextlib.suppress(Exception):  # interpreter shutdown may have torn down ctypes already
            self.close()
