"""What runs on the Ray workers: edgeret's own decoder, encoder and MLLM scorer, loaded once per actor.

EncodeWorker and TokenWorker are Ray Data `map_batches` classes (an actor pool); Scorer is a plain Ray actor. Each
checks that the model it loaded on its node is the one the driver planned with (same fingerprint).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..decode import decode
from ..encoders import ImageEncoder
from ..errors import DecodeError, ModelError
from ..indexer import Job, decode_jobs
from ..rerankers import MLLM_DECODE_SIDE
from .listing import local_copy

log = logging.getLogger(__name__)

PROVIDERS = {"cpu": ("CPUExecutionProvider",), "cuda": ("CUDAExecutionProvider", "CPUExecutionProvider")}


def _check_id(what: str, loaded: str, planned: str) -> None:
    """Refuse a worker whose model files differ from the driver's (a node with another copy of the model)."""
    if loaded != planned:
        raise ModelError(f"this worker's {what} is {loaded}, the driver planned with {planned}: "
                         "every node needs the same model files")


class EncodeWorker:
    """Hash, decode and preprocess a batch of photos on threads, then encode it: the local indexer's steps.

    Returns per photo: status "ok" (with its vector), "known" (its content hash is already in the collection, so
    nothing was decoded) or "failed" (with the reason the local indexer would record).
    """

    def __init__(self, folder: str, spec: str, encoder_id: str, threads: int, device: str, known: frozenset):
        self.encoder = ImageEncoder(folder, threads=threads, name=Path(spec).name, spec=spec,
                                    providers=PROVIDERS[device])
        _check_id("encoder", self.encoder.id, encoder_id)
        self.known, self.threads = known, threads

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        paths = [str(p) for p in batch["path"]]
        with contextlib.ExitStack() as stack:
            local = [stack.enter_context(local_copy(p)) for p in paths]
            jobs = [Job(lp, int(s), int(m), False) for lp, s, m in zip(local, batch["size"], batch["mtime_ns"],
                                                                       strict=True)]
            results = list(decode_jobs(jobs, self.encoder.preprocess, self.known, self.threads))
        todo = [(i, r.tensor) for i, r in enumerate(results) if r.tensor is not None]
        vectors = np.zeros((len(results), self.encoder.dim), np.float32)
        if todo:
            vectors[[i for i, _ in todo]] = self.encoder.encode([t for _, t in todo])
        return {
            "path": np.array(paths, dtype=object),
            "size": batch["size"], "mtime_ns": batch["mtime_ns"],
            "hash": np.array([r.hash or "" for r in results], dtype=object),
            "width": np.array([r.width for r in results], np.int32),
            "height": np.array([r.height for r in results], np.int32),
            "status": np.array([_status(r) for r in results], dtype=object),
            "reason": np.array([r.reason or "" for r in results], dtype=object),
            "vector": vectors,
        }


def _status(result) -> str:
    if result.reason is not None:
        return "failed"
    return "ok" if result.tensor is not None else "known"


class TokenWorker:
    """Encode a batch of photos' visual tokens with the MLLM's projector and write them as one Parquet file.

    Photos whose tokens the store already holds (for this model, found by content hash) are skipped, so a re-run
    or a resumed job encodes only what is missing.
    """

    def __init__(self, files: dict, threads: int, root: str, codec: str):
        from ..rerank.mllm import MllmReranker
        from .tokens import ParquetTokens

        self.mllm = MllmReranker(threads=threads, **files)
        self.store = ParquetTokens(root, self.mllm.model_id, codec)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.store.refresh()
        tokens, status, reasons = {}, [], []
        for path, digest in zip(batch["path"], batch["hash"], strict=True):
            state, reason = "stored", ""
            if self.store.get_location(str(digest)) is None:
                try:
                    with local_copy(str(path)) as local:  # the steps of the local encode-tokens
                        tokens[str(digest)] = self.mllm.encode(decode(local, min_side=MLLM_DECODE_SIDE))
                    state = "ok"
                except (DecodeError, OSError) as e:
                    state, reason = "failed", str(e)
            status.append(state)
            reasons.append(reason)
        self.store.write(tokens)
        return {"path": batch["path"], "hash": batch["hash"], "status": np.array(status, dtype=object),
                "reason": np.array(reasons, dtype=object),
                "model_id": np.array([self.mllm.model_id] * len(status), dtype=object)}


class Scorer:
    """A re-rank actor: one MLLM, the token files, and the query prefix evaluated once per query it is given."""

    def __init__(self, files: dict, threads: int, root: str):
        from ..rerank.mllm import MllmReranker
        from .tokens import ParquetTokens

        self.mllm = MllmReranker(threads=threads, **files)
        self.tokens = ParquetTokens(root, self.mllm.model_id)

    def model_id(self) -> str:
        return self.mllm.model_id

    def encode(self, image):
        """The query's visual tokens (computed once, then shared with every scorer)."""
        return self.mllm.encode(image)

    def score(self, query, share: list[tuple[int, str, str]]) -> Iterator[tuple[int, float]]:
        """(candidate index, P(same)) for each (index, content hash, path) of `share`, as each is judged.

        Candidates without stored tokens are decoded from their path here, as the local re-ranker does.
        """
        self.tokens.refresh()
        cands = [self.tokens.get(h) or _loader(p) for _, h, p in share]
        for j, p in self.mllm.score(query, cands):
            yield share[j][0], p

    def close(self) -> None:
        self.mllm.close()


def _loader(path: str):
    """Decode a candidate that has no stored tokens, as the local re-ranker's PhotoLoader does (URLs too)."""
    def load():
        with local_copy(path) as local:
            return decode(local, min_side=MLLM_DECODE_SIDE)

    return load
