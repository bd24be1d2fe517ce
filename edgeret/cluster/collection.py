"""The Milvus collection of one library: a row per photo path with its content hash, metadata, encoder and vector.

The path is the primary key, so writing a photo again replaces its row: a resumed or repeated job cannot duplicate
a photo. Vectors are stored as the local catalog stores them (unit vectors rounded to float16) and compared by inner
product as the local index compares them, so both give the same scores.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import EncoderMismatch, LibraryError

MAX_PATH = 4096
HNSW = {"M": 16, "efConstruction": 200}
METRIC = "IP"  # the encoders' vectors are unit length: inner product is their cosine
EF_SEARCH = 128  # like the local HNSW's expansion_search
META = ["path", "content_hash", "size", "mtime_ns", "width", "height", "encoder"]
ITER_BATCH = 1000


@dataclass(frozen=True)
class Known:
    """What the collection (or the job state) knows of a path, in the shape indexer.plan_listing reads."""

    size: int
    mtime_ns: int
    hash: str | None
    status: str = "ok"


@contextlib.contextmanager
def milvus_errors(what: str):
    """Turn Milvus client failures into LibraryError with the server's message."""
    from pymilvus.exceptions import MilvusException

    try:
        yield
    except MilvusException as e:
        raise LibraryError(f"Milvus could not {what}: {e.message}") from None


def quote(values: Sequence[str]) -> str:
    """A Milvus list literal of strings (JSON string escapes are Milvus's too)."""
    return json.dumps(list(values), ensure_ascii=False)


class PhotoCollection:
    """One collection; open it with `PhotoCollection.open`, which checks the encoder and loads it for search."""

    def __init__(self, client, name: str, encoder_id: str, dim: int):
        self.client, self.name, self.encoder_id, self.dim = client, name, encoder_id, dim

    @classmethod
    def open(cls, client, name: str, encoder_id: str | None = None, dim: int | None = None,
             create: bool = False) -> PhotoCollection:
        """The collection `name`; created for (encoder_id, dim) when `create`, refused if another encoder wrote it."""
        with milvus_errors(f"open the collection {name!r}"):
            if not client.has_collection(name):
                if not create:
                    raise LibraryError(f"Milvus has no collection {name!r}: run `edgeret cluster index` first")
                _create(client, name, dim)
            client.load_collection(name)
            stored_dim = _dim(client.describe_collection(name))
            rows = client.query(name, filter="", output_fields=["encoder"], limit=1)
        stored = rows[0]["encoder"] if rows else None
        if encoder_id and stored and stored != encoder_id:
            raise EncoderMismatch(
                f"the collection {name!r} holds vectors of encoder {stored.split(':')[0]!r}, not "
                f"{encoder_id.split(':')[0]!r}; index into another --collection or use the collection's encoder")
        if dim is not None and stored_dim != dim:
            raise EncoderMismatch(f"the collection {name!r} holds {stored_dim}-d vectors; this encoder makes {dim}-d")
        return cls(client, name, encoder_id or stored or "", stored_dim)

    # reading ------------------------------------------------------------------------------------------------------
    def rows(self, fields: Sequence[str] = META, batch: int = ITER_BATCH) -> Iterator[list[dict]]:
        """Every row's `fields`, a batch at a time."""
        with milvus_errors(f"read the collection {self.name!r}"):
            it = self.client.query_iterator(self.name, batch_size=batch, filter="", output_fields=list(fields))
            try:
                while page := it.next():
                    yield page
            finally:
                it.close()

    def known(self) -> dict[str, Known]:
        """path -> Known for every photo in the collection (what the indexer's plan compares the listing with)."""
        out = {}
        for page in self.rows(["path", "size", "mtime_ns", "content_hash", "encoder"]):
            for r in page:
                status = "ok" if r["encoder"] == self.encoder_id else "pending"  # another encoder's row: redo it
                out[r["path"]] = Known(int(r["size"]), int(r["mtime_ns"]), r["content_hash"], status)
        return out

    def by_hash(self, hashes: Sequence[str]) -> dict[str, dict]:
        """content hash -> one row (vector, width, height) holding that content, for the hashes present."""
        if not hashes:
            return {}
        with milvus_errors("look up content hashes"):
            rows = self.client.query(self.name, filter=f"content_hash in {quote(sorted(set(hashes)))}",
                                     output_fields=["content_hash", "width", "height", "vector"])
        return {r["content_hash"]: r for r in rows}

    def get(self, paths: Sequence[str], fields: Sequence[str] = META) -> list[dict]:
        with milvus_errors("read photos"):
            return self.client.get(self.name, ids=list(paths), output_fields=list(fields)) if paths else []

    def count(self) -> int:
        with milvus_errors("count photos"):
            return int(self.client.query(self.name, filter="", output_fields=["count(*)"])[0]["count(*)"])

    def search(self, queries: np.ndarray, k: int, fields: Sequence[str] = ("content_hash",)) -> list[list[dict]]:
        """Top-k rows by cosine for each query vector, best first: dicts with path, score and `fields`."""
        queries = np.atleast_2d(np.asarray(queries, np.float32))
        with milvus_errors("search"):
            found = self.client.search(self.name, data=[q.tolist() for q in queries], limit=k,
                                       output_fields=list(fields),
                                       search_params={"metric_type": METRIC, "params": {"ef": max(EF_SEARCH, k)}})
        return [[{**h["entity"], "path": h["path"], "score": float(h["distance"])} for h in hits] for hits in found]

    # writing ------------------------------------------------------------------------------------------------------
    def upsert(self, rows: list[dict]) -> None:
        """Write whole rows (META + vector); an existing path is replaced."""
        if rows:
            with milvus_errors(f"write to the collection {self.name!r}"):
                self.client.upsert(self.name, rows)

    def delete(self, paths: Sequence[str]) -> int:
        paths = list(paths)
        for start in range(0, len(paths), ITER_BATCH):
            with milvus_errors(f"delete from the collection {self.name!r}"):
                self.client.delete(self.name, ids=paths[start:start + ITER_BATCH])
        return len(paths)

    def flush(self) -> None:
        with milvus_errors("flush"):
            self.client.flush(self.name)


def row(path: str, size: int, mtime_ns: int, digest: str, width: int, height: int, encoder_id: str,
        vector: np.ndarray) -> dict:
    """One collection row; the vector is rounded to float16 as the local catalog stores it."""
    v = np.asarray(vector, np.float32).astype(np.float16).astype(np.float32)
    return {"path": path, "content_hash": digest, "size": int(size), "mtime_ns": int(mtime_ns), "width": int(width),
            "height": int(height), "encoder": encoder_id, "vector": v.tolist()}


def _create(client, name: str, dim: int | None) -> None:
    from pymilvus import DataType, MilvusClient

    if not dim:
        raise LibraryError(f"cannot create the collection {name!r} without the encoder's dimension")
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("path", DataType.VARCHAR, is_primary=True, max_length=MAX_PATH)
    schema.add_field("content_hash", DataType.VARCHAR, max_length=64)
    schema.add_field("size", DataType.INT64)
    schema.add_field("mtime_ns", DataType.INT64)
    schema.add_field("width", DataType.INT32)
    schema.add_field("height", DataType.INT32)
    schema.add_field("encoder", DataType.VARCHAR, max_length=256)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
    index = client.prepare_index_params()
    index.add_index(field_name="vector", index_type="HNSW", metric_type=METRIC, params=HNSW)
    client.create_collection(name, schema=schema, index_params=index)


def _dim(description: dict) -> int:
    for f in description["fields"]:
        if f["name"] == "vector":
            return int(f["params"]["dim"])
    raise LibraryError(f"the collection {description.get('collection_name')!r} has no 'vector' field")
