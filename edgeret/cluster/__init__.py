"""edgeret beyond one machine: the same pipeline run on Ray (Data for batch work, actors for re-ranking), with Milvus.

Only this package imports ray, pymilvus, milvus-lite and pyarrow (`pip install 'edgeret[cluster]'`), and importing
the package itself imports none of them: the local library, CLI and app never load them.

  runtime.py     Ray (local, or --ray ADDRESS) and Milvus (local milvus-lite under the library, or --milvus URI)
  collection.py  the Milvus collection: one row per photo (path, content hash, size, mtime, encoder, vector)
  state.py       job state in the library folder: sources, failures with reasons, the one-writer lock
  listing.py     photos under local folders or fsspec URLs, as (path, size, mtime_ns)
  workers.py     what runs on Ray workers: the encoder (Ray Data actor pool), visual tokens, the pair scorer
  index.py       `cluster index`: plan against the collection, encode on the actor pool, write batch by batch
  tokens.py      visual tokens by content hash in Parquet files on the shared filesystem or object store
  search.py      `cluster search`: Milvus first stage, re-ranking by a pool of scorer actors, local fusion
  duplicates.py  `cluster duplicates`: the k-NN graph from Milvus, grouped as the local command groups it

The `edgeret cluster` subcommands are edgeret/cli/cluster.py (parsing needs none of the extra's packages).
"""

from __future__ import annotations

import importlib.util

from ..errors import UsageError

EXTRA = "pip install 'edgeret[cluster]'"


def require(local_milvus: bool = True) -> None:
    """Fail with the install command when the cluster extra's packages are missing."""
    needed = ["ray", "pymilvus", "pyarrow"] + (["milvus_lite"] if local_milvus else [])
    missing = [m for m in needed if importlib.util.find_spec(m) is None]
    if missing:
        names = ", ".join(m.replace("_", "-") for m in missing)
        raise UsageError(f"edgeret cluster needs {names}, which come with the cluster extra: {EXTRA}")
