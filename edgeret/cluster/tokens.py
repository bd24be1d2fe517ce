"""Visual tokens by content hash in Parquet files: a folder per re-ranker model on a shared filesystem or object store.

Why not Milvus: a photo's tokens are 128 × 576 values for SmolVLM-256M (147 KB in f16) and 1–2 MB for the larger
models, far past what a Milvus row is for (vectors up to 32,768 dimensions, strings up to 64 KB, scanned and cached
by the query nodes); they are read by key, never searched. Parquet keeps them as plain files every worker can read
with pyarrow (local paths, NFS, s3://, gs://, hdfs://), written by the workers themselves, in small row groups so
one candidate's lookup reads about one row group.

Each writer batch becomes one file, written under a temporary name and renamed, so a killed job leaves whole files
only; the records are edgeret.rerank.tokens.pack() records, the same codecs as the local token store.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict

from ..rerank.mllm import VisualTokens
from ..rerank.tokens import CODECS, PACKED_FIELDS, pack, unpack

ROW_GROUP = 8  # rows per row group: what one candidate lookup reads
OPEN_FILES = 64


def _schema():
    import pyarrow as pa

    return pa.schema([("content_hash", pa.string()), ("codec", pa.string()), ("width", pa.int32()),
                      ("height", pa.int32()), ("pool", pa.int32()), ("layout", pa.string()), ("data", pa.binary())])


class ParquetTokens:
    """The token files of one re-ranker model under `root` (a local path or a pyarrow filesystem URI)."""

    def __init__(self, root: str, model_id: str, codec: str = "f16"):
        from pyarrow import fs

        if codec not in CODECS:
            raise ValueError(f"unknown visual-token codec {codec!r}; choose from {', '.join(CODECS)}")
        self.fs, base = fs.FileSystem.from_uri(root) if "://" in root else (fs.LocalFileSystem(), root)
        self.dir, self.model_id, self.codec = f"{base.rstrip('/')}/{model_id}", model_id, codec
        self.fs.create_dir(self.dir, recursive=True)
        self._where: dict[str, tuple[str, int, int]] = {}  # hash -> (file, row group, row in group)
        self._indexed: set[str] = set()
        self._open: OrderedDict = OrderedDict()
        self.refresh()

    def refresh(self) -> None:
        """Index files written since the last look (by other workers too)."""
        from pyarrow import fs

        infos = self.fs.get_file_info(fs.FileSelector(self.dir, allow_not_found=True))
        for info in sorted(infos, key=lambda i: i.path):
            name = info.path.rsplit("/", 1)[-1]
            if info.type == fs.FileType.File and name.startswith("part-") and info.path not in self._indexed:
                self._index(info.path)

    def _index(self, path: str) -> None:
        pf = self._file(path)
        for g in range(pf.num_row_groups):
            for r, digest in enumerate(pf.read_row_group(g, columns=["content_hash"]).column(0).to_pylist()):
                self._where.setdefault(digest, (path, g, r))
        self._indexed.add(path)

    def _file(self, path: str):
        import pyarrow.parquet as pq

        if path not in self._open:
            self._open[path] = pq.ParquetFile(self.fs.open_input_file(path))
            if len(self._open) > OPEN_FILES:
                self._open.popitem(last=False)
        self._open.move_to_end(path)
        return self._open[path]

    def hashes(self) -> set[str]:
        return set(self._where)

    def __len__(self) -> int:
        return len(self._where)

    def get_location(self, digest: str) -> tuple[str, int, int] | None:
        """(file, row group, row) holding the tokens of content hash `digest`, or None."""
        return self._where.get(digest)

    def get(self, digest: str) -> VisualTokens | None:
        """The stored tokens of the photo with content hash `digest`, or None."""
        loc = self._where.get(digest)
        if loc is None:
            return None
        path, group, r = loc
        table = self._file(path).read_row_group(group, columns=list(PACKED_FIELDS))
        return unpack({name: table.column(name)[r].as_py() for name in PACKED_FIELDS})

    def write(self, tokens: dict[str, VisualTokens]) -> str | None:
        """Write one file of (content hash -> tokens) in this store's codec; returns its path."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not tokens:
            return None
        records = [{"content_hash": h, **pack(vt, self.codec)} for h, vt in tokens.items()]
        name = uuid.uuid4().hex
        tmp, final = f"{self.dir}/.tmp-{name}.parquet", f"{self.dir}/part-{name}.parquet"
        with self.fs.open_output_stream(tmp) as out:
            pq.write_table(pa.Table.from_pylist(records, schema=_schema()), out, row_group_size=ROW_GROUP)
        self.fs.move(tmp, final)
        self._index(final)
        return final

    def nbytes(self) -> int:
        """Bytes on disk of every token file."""
        from pyarrow import fs

        return sum(i.size for i in self.fs.get_file_info(fs.FileSelector(self.dir)) if i.type == fs.FileType.File)
