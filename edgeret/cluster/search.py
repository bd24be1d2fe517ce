"""`edgeret cluster search`: Milvus for the first stage, a pool of Ray scorer actors for re-ranking.

The query is decoded and encoded here by edgeret's own decoder and encoder; the re-rank pool is a PairReranker, so
edgeret.query.run_query fuses (λ) and streams exactly as the local `search` does, and the results print the same.
Each scorer actor holds one MLLM and reads the stored visual tokens; the query's tokens are computed once and shared,
and each actor evaluates the query prefix once for its share of the candidates.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from .. import regions
from ..decode import decode
from ..errors import DecodeError, EncoderMismatch, ModelError, UsageError
from ..library import Hit, open_encoder
from ..query import Result, run_query
from .collection import PhotoCollection
from .index import ClusterOptions
from .runtime import as_edgeret_error, check_resources, milvus_client, ray_session, worker_errors
from .state import JobState
from .workers import Scorer

# The collection keeps one vector per photo, as a local library with regions 'query' does: the query is split the
# same way (its global vector + the grid's crops) and a photo scores its best cosine over the query's vectors.
QUERY_SPLIT = regions.SETTINGS["query"]


def best_per_photo(per_vector: list[list[dict]], k: int) -> list[dict]:
    """Top k rows by their best score over the query's vectors (each vector's own top k holds every one of them)."""
    best: dict[str, dict] = {}
    for rows in per_vector:
        for row in rows:
            if row["path"] not in best or row["score"] > best[row["path"]]["score"]:
                best[row["path"]] = row
    return sorted(best.values(), key=lambda r: -r["score"])[:k]


class RayPairReranker:
    """A PairReranker over Scorer actors; candidates are (content hash, path) of the first-stage hits."""

    name = "mllm"

    def __init__(self, scorers: list):
        self.scorers = scorers
        self.hashes: dict[str, str] = {}  # path -> content hash of the hits being re-ranked

    def candidates(self, hits: Sequence[Hit]) -> list:
        return [(self.hashes.get(h.path, ""), h.path) for h in hits]

    def score(self, query, candidates, cancel: Callable[[], bool] | None = None,
              on_encoded=None) -> Iterator[tuple[int, float]]:
        """(candidate index, P(same)) as the actors judge them; candidates are dealt round-robin to the actors."""
        import ray

        if isinstance(query, str):
            raise UsageError("cluster search re-ranks photo queries only")
        with worker_errors():
            shared = ray.put(ray.get(self.scorers[0].encode.remote(query)))
        n = len(self.scorers)
        shares = [[(i, h, p) for i, (h, p) in enumerate(candidates) if i % n == a] for a in range(n)]
        pending = [s.score.options(num_returns="streaming").remote(shared, share)
                   for s, share in zip(self.scorers, shares, strict=True) if share]
        while pending:
            if cancel is not None and cancel():
                return
            [ready], _ = ray.wait(pending, num_returns=1)
            try:
                with worker_errors():
                    i, p = ray.get(next(ready))
            except StopIteration:
                pending.remove(ready)
                continue
            yield int(i), float(p)

    def close(self) -> None:
        import ray

        for s in self.scorers:
            with contextlib.suppress(Exception):  # an actor already gone has nothing to free
                ray.get(s.close.remote())
                ray.kill(s)


def start_scorers(files: dict, tokens: str, opts: ClusterOptions) -> RayPairReranker:
    """`opts.workers` scorer actors of `opts.threads` CPUs each, refused unless all loaded the same model."""
    import ray

    check_resources(opts.workers, opts.threads, remote=bool(opts.ray))
    actor = ray.remote(Scorer).options(num_cpus=opts.threads)
    pool = RayPairReranker([actor.remote(files, opts.threads, tokens) for _ in range(opts.workers)])
    try:
        ids = set(ray.get([s.model_id.remote() for s in pool.scorers]))
    except ray.exceptions.RayError as e:
        pool.close()
        raise as_edgeret_error(e) from None
    if len(ids) > 1:
        pool.close()
        raise ModelError(f"the re-rank actors loaded different model files ({', '.join(sorted(ids))}): "
                         "every node needs the same re-ranker files")
    return pool


def search(queries: list[Path], opts: ClusterOptions, k: int = 20, encoder_spec: str | None = None,
           rerank: dict | None = None, lam: float = 0.5, tokens: str | None = None,
           ) -> Iterator[tuple[Path, list[Result] | DecodeError]]:
    """(query, its final results) for each query photo, or (query, DecodeError) for one that cannot be read.

    `rerank` holds the MllmReranker arguments (rerankers.mllm_files) to re-rank the top k; `tokens` is where
    `cluster encode-tokens` stored the visual tokens (default: under the library folder).
    """
    with JobState(opts.library, opts.collection) as state:
        spec = encoder_spec or state.get("encoder_spec")
    coll = PhotoCollection.open(milvus_client(opts.library, opts.milvus), opts.collection)
    encoder = open_encoder(spec, threads=opts.threads)
    if coll.encoder_id and coll.encoder_id != encoder.id:
        raise EncoderMismatch(f"the collection {opts.collection!r} was indexed with encoder "
                              f"{coll.encoder_id.split(':')[0]!r}, not {encoder.name!r}")
    with contextlib.ExitStack() as stack:
        reranker = None
        if rerank is not None:
            stack.enter_context(ray_session(opts.ray, opts.cpus))
            reranker = start_scorers(rerank, tokens or default_tokens(opts), opts)
            stack.callback(reranker.close)
        for q in queries:
            try:  # the re-ranker looks at more pixels than the encoder needs
                image = decode(q, min_side=None if reranker else encoder.preprocess.min_decode_side)
            except DecodeError as e:
                yield q, e
                continue
            found = best_per_photo(coll.search(regions.encode_sets(encoder, [image], QUERY_SPLIT)[0], k), k)
            hits = [Hit(i, f["path"], f["score"]) for i, f in enumerate(found)]
            if reranker is not None:
                reranker.hashes = {f["path"]: f["content_hash"] for f in found}
            *_, results = run_query(hits, image, reranker, lam)
            yield q, results


def default_tokens(opts: ClusterOptions) -> str:
    """The token folder without --tokens: under the library (a real cluster passes a shared path or URL)."""
    return str(opts.library / "tokens")
