"""`edgeret cluster encode-tokens`: every photo's visual tokens, computed once per content on an actor pool.

Each TokenWorker holds the MLLM (its mmproj does the work), skips contents whose tokens are stored already, and
writes its batch as one Parquet file (tokens.py) that every scorer can read.
"""

from __future__ import annotations

from collections.abc import Callable

from ..indexer import Progress
from .collection import PhotoCollection
from .index import ClusterOptions
from .runtime import milvus_client, ray_session, run_on_pool
from .search import default_tokens
from .workers import TokenWorker


def encode_tokens(opts: ClusterOptions, files: dict, tokens: str | None = None, codec: str = "f16",
                  batch_size: int = 8, progress: Progress | None = None,
                  cancel: Callable[[], bool] | None = None) -> dict:
    """Store the visual tokens of every distinct photo in the collection; returns counts and failures."""
    coll = PhotoCollection.open(milvus_client(opts.library, opts.milvus), opts.collection)
    by_hash = {r["content_hash"]: r["path"] for page in coll.rows(["path", "content_hash"]) for r in page}
    out = {"visual_tokens_encoded": 0, "already_stored": 0, "failed": 0, "failures": [], "cancelled": False}
    if not by_hash:
        return out | {"visual_tokens_stored": 0}
    root = tokens or default_tokens(opts)
    items = [{"path": p, "hash": h} for h, p in sorted(by_hash.items(), key=lambda t: t[1])]
    model_ids: set[str] = set()

    def take(batch) -> None:
        _count(batch, out)
        model_ids.update(batch["model_id"].tolist())

    with ray_session(opts.ray, opts.cpus):
        out["cancelled"] = run_on_pool(items, TokenWorker,
                                       {"files": files, "threads": opts.threads, "root": root, "codec": codec},
                                       opts, batch_size, take, progress, cancel)
    from .tokens import ParquetTokens

    out["model_id"] = sorted(model_ids)
    out["visual_tokens_stored"] = sum(len(ParquetTokens(root, m)) for m in model_ids)
    return out


def _count(batch, out: dict) -> None:
    for path, status, reason in zip(batch["path"], batch["status"], batch["reason"], strict=True):
        if status == "ok":
            out["visual_tokens_encoded"] += 1
        elif status == "stored":
            out["already_stored"] += 1
        else:
            out["failed"] += 1
            out["failures"].append({"path": str(path), "reason": str(reason)})
