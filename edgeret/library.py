"""A Library is a folder holding the catalog, the search index and the visual-token stores, behind one lock."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from filelock import FileLock, Timeout
from PIL import Image

from . import indexer, regions
from .catalog import Catalog
from .encoders import ImageEncoder
from .errors import EncoderMismatch, LibraryBusy, LibraryError, ModelError, UsageError
from .regions import RegionSpec
from .settings import BATCH_SIZE, DEFAULT_ENCODER, EXACT_BELOW, K
from .vectors import open_index

log = logging.getLogger(__name__)

CATALOG = "catalog.sqlite"


@dataclass(frozen=True)
class Hit:
    """One first-stage result."""

    key: int
    path: str
    score: float


class Library:
    """Open with `Library(path, writable=True)` to index; plain opening is enough to search and read status."""

    def __init__(self, path: Path | str, writable: bool = False, exact_below: int = EXACT_BELOW):
        self.path = Path(path).expanduser().resolve()
        self.writable = writable
        if self.path.exists() and not self.path.is_dir():
            raise LibraryError(f"{self.path} is a file, not a library folder: give --library a folder")
        self._lock: FileLock | None = None
        if writable:
            self.path.mkdir(parents=True, exist_ok=True)
            self._lock = FileLock(self.path / "lock")
            try:
                self._lock.acquire(timeout=0)
            except Timeout:
                raise LibraryBusy(
                    f"the library {self.path} is busy: another edgeret process is writing to it"
                ) from None
        elif not (self.path / CATALOG).is_file():
            raise LibraryError(
                f"no library at {self.path}: create one with `edgeret index FOLDER --library {self.path}`"
            )
        self.catalog = Catalog(self.path / CATALOG, readonly=not writable)  # a reader never writes
        self._index = None
        self._index_version = -1
        self.exact_below = exact_below

    @staticmethod
    def exists(path: Path | str) -> bool:
        """Whether `path` holds a library (a catalog), without opening it."""
        return (Path(path).expanduser() / CATALOG).is_file()

    def close(self) -> None:
        self.catalog.close()
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> Library:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # encoder --------------------------------------------------------------------------------------------------
    @property
    def encoder_spec(self) -> str | None:
        """The encoder this library was built with (registry name or folder), if any."""
        return self.catalog.get_meta("encoder_spec")

    def load_encoder(self, spec: str | None = None, threads: int = 2) -> ImageEncoder:
        """Load `spec`, else the library's own encoder, else the default; refuse one the vectors don't match."""
        encoder = open_encoder(spec or self.encoder_spec, threads)
        self.check_encoder(encoder)
        return encoder

    def check_encoder(self, encoder: ImageEncoder) -> None:
        stored = self.catalog.get_meta("encoder_id")
        if stored and stored != encoder.id and self.catalog.vector_count():
            raise EncoderMismatch(
                f"this library was indexed with encoder {stored.split(':')[0]!r} and cannot be searched or "
                f"extended with {encoder.name!r}; re-encode every photo with `edgeret index --reindex --encoder "
                f"{encoder.name}` or use the library's own encoder"
            )

    # regions --------------------------------------------------------------------------------------------------
    @property
    def regions(self) -> RegionSpec:
        """The library's regional-vector setting (libraries from before regions existed: off)."""
        return regions.resolve(self.catalog.get_meta("regions") or "off")

    def _choose_regions(self, name: str | None, encoder: ImageEncoder, reindex: bool) -> RegionSpec:
        """`name`, else the library's own setting, else the encoder kind's default; a change needs a re-index."""
        has_vectors = bool(self.catalog.vector_count())
        stored = self.catalog.get_meta("regions_id")
        if name is None:
            if stored is not None:
                return self.regions
            # a library from before regions existed keeps its plain vectors until it is re-indexed
            return regions.OFF if has_vectors and not reindex else regions.default_for(encoder.preprocess)
        spec = regions.resolve(name)
        if has_vectors and not reindex and spec.id != (stored or regions.OFF.id):
            raise LibraryError(
                f"this library was indexed with --regions {self.regions.name}; changing it to {spec.name} means "
                f"re-encoding every photo: `edgeret index --reindex --regions {spec.name}`"
            )
        return spec

    def decode_side(self, encoder: ImageEncoder) -> int:
        """How large a query must be decoded for this library's encoder and its crops."""
        return regions.decode_side(self.regions, encoder.preprocess, query=True)

    # indexing -------------------------------------------------------------------------------------------------
    def roots(self) -> list[Path]:
        return self.catalog.roots()

    def add_roots(self, roots: Sequence[Path | str]) -> list[Path]:
        """Remember folders without indexing them yet (e.g. while the encoder is being installed); the next
        index() run, with or without roots, takes them in."""
        self._require_writable()
        paths = [Path(r).expanduser().resolve() for r in roots]
        for r in paths:
            if not r.is_dir():
                raise LibraryError(f"{r} is not a folder")
        self.catalog.add_roots(paths)
        return paths

    def index(
        self,
        roots: Sequence[Path | str] = (),
        encoder: ImageEncoder | None = None,
        encoder_spec: str | None = None,
        *,
        reindex: bool = False,
        regions: str | None = None,
        threads: int = 2,
        batch_size: int = BATCH_SIZE,
        progress: indexer.Progress | None = None,
        cancel: Callable[[], bool] | None = None,
    ) -> indexer.IndexReport:
        """Add `roots` (if any) and bring the catalog in step with every root; new or changed photos are encoded.

        `regions` names the regional-vector setting (edgeret.regions.SETTINGS); None keeps the library's own, or
        picks the encoder kind's default for a new library. Changing it needs `reindex`.
        """
        self._require_writable()
        paths = [Path(r).expanduser().resolve() for r in roots]
        for r in paths:
            if not r.exists():
                raise LibraryError(f"{r} does not exist")
        encoder = encoder or open_encoder(encoder_spec or self.encoder_spec, threads)
        spec = self._choose_regions(regions, encoder, reindex)
        if reindex:
            self.catalog.mark_all_pending()
        self.check_encoder(encoder)
        self.catalog.set_meta("encoder_id", encoder.id)
        self.catalog.set_meta("encoder_spec", encoder.spec)
        self.catalog.set_meta("regions", spec.name)
        self.catalog.set_meta("regions_id", spec.id)
        self.catalog.add_roots(paths)
        report = indexer.run(
            self.catalog, encoder, self.catalog.roots(), batch_size, indexer.default_workers(threads), progress, cancel,
            regions=spec,
        )
        self.refresh_index()
        return report

    def photos(self, folder: Path | str | None = None) -> list[tuple[int, str]]:
        """(key, path) of the indexed photos, under `folder` if given, sorted by path."""
        return self.catalog.photos(str(Path(folder).expanduser().resolve()) if folder else None)

    def vector_of(self, key: int):
        """The stored unit vector of a library photo ("find similar" needs no re-encoding)."""
        return self.catalog.vector_of(key)

    def key_for_path(self, path: Path | str) -> int | None:
        """The key of the photo at `path` if the library holds it, else None."""
        return self.catalog.id_for_path(str(Path(path).absolute()))

    def path_for_key(self, key: int) -> str | None:
        """The path of the library photo `key`, or None if there is none."""
        return self.catalog.paths_for([key]).get(key)

    def vectors_of(self, key: int) -> np.ndarray | None:
        """A library photo's stored vectors as a query set: its own first, then its regions' (if any). None when
        there are none, or when they are not the query set (a setting that splits queries but stores no crops)."""
        vector = self.catalog.vector_of(int(key))
        if vector is None or self.regions.enabled != self.regions.indexes:
            return None
        own = self.catalog.regions_of(int(key))
        return vector[None] if own is None else np.vstack([vector[None], own])

    def photo_count(self) -> int:
        """How many photos can be found (encoded, with a vector)."""
        return self.catalog.vector_count()

    def remove_root(self, root: Path | str) -> int:
        self._require_writable()
        return self.catalog.remove_root(Path(root).expanduser().resolve())

    def _require_writable(self) -> None:
        if not self.writable:
            raise LibraryError("the library was opened read-only")

    # search ---------------------------------------------------------------------------------------------------
    def refresh_index(self):
        """The nearest-neighbour index for the catalog's current vectors (rebuilt or caught up if stale)."""
        version = self.catalog.vectors_version()
        if self._index is None or version != self._index_version:
            # the HNSW file is kept for the next reader where the folder allows it (not on read-only media)
            persist = os.access(self.path, os.W_OK)
            self._index = open_index(self.path, self.catalog, self.exact_below, persist=persist)
            self._index_version = version
        return self._index

    def search_vectors(self, queries: np.ndarray, k: int = K, exclude_keys=()) -> list[list[Hit]]:
        """Top-k photos by cosine for each row of `queries` (unit vectors from this library's encoder).

        A photo scores its best vector (its own or a region's). `exclude_keys` are left out of every list
        ("find similar" on a library photo skips the photo itself).
        """
        return self.search_sets([row[None] for row in np.atleast_2d(queries)], k, exclude_keys)

    def search_sets(self, query_sets: Sequence[np.ndarray], k: int = K, exclude_keys=()) -> list[list[Hit]]:
        """Top-k photos for each set of query vectors (a query photo and its crops): the best pair's cosine."""
        if not 1 <= k <= 10**6:
            raise UsageError(f"k must be 1 to 1,000,000 (got {k})")
        if not all(q is not None and np.isfinite(q).all() for q in query_sets):
            raise ModelError("the encoder gave a query vector that is not finite (NaN or infinity)")
        exclude = {int(x) for x in exclude_keys}
        found = self.refresh_index().search_photos([np.atleast_2d(q) for q in query_sets], k + len(exclude))
        paths = self.catalog.paths_for({int(x) for n in found for x in n.keys})
        # a photo removed by a concurrent writer since the index was read has no path: leave it out
        return [
            [Hit(int(key), paths[int(key)], float(s)) for key, s in zip(n.keys, n.scores, strict=True)
             if int(key) not in exclude and int(key) in paths][:k]
            for n in found
        ]

    def query_vectors(self, images: Sequence[Image.Image], encoder: ImageEncoder) -> list[np.ndarray]:
        """Each query image's vector set: its global vector, plus its crops when the library has regions."""
        self.check_encoder(encoder)
        return regions.encode_sets(encoder, images, self.regions)

    def search_images(
        self, images: Sequence[Image.Image], encoder: ImageEncoder, k: int = K, exclude_keys=()
    ) -> list[list[Hit]]:
        """Top-k photos for each query image, split into the library's regions when it has them."""
        return self.search_sets(self.query_vectors(images, encoder), k, exclude_keys)

    # status ---------------------------------------------------------------------------------------------------
    def status(self) -> dict:
        counts = self.catalog.counts()
        photos = self.catalog.vector_count()
        n = photos + self.catalog.region_count()
        return {
            "library": str(self.path),
            "roots": [str(r) for r in self.roots()],
            "indexed": counts.get("ok", 0),
            "failed": counts.get("failed", 0),
            "pending": counts.get("pending", 0),
            "failures": [{"path": p, "reason": r} for p, r in self.catalog.failures()],
            "encoder": self.encoder_spec,
            "encoder_id": self.catalog.get_meta("encoder_id"),
            "regions": self.regions.name,
            "vectors_per_photo": round(n / photos, 2) if photos else None,
            "photos": photos,
            "pictures": self.catalog.picture_count(),  # photos with a picture signature (edgeret.picture)
            # said without opening the index: building an HNSW graph just to report on it could take minutes
            "index": {"kind": "exact" if n < self.exact_below else "hnsw", "size": n,
                      "bytes_on_disk": _disk_size(self.path)},
        }


def encoder_folder(spec: str | None) -> tuple[Path, str]:
    """(model folder, spec as the library records it) for a registry name or a folder; None is the default."""
    spec = spec or DEFAULT_ENCODER
    if Path(spec).expanduser().is_dir():  # a model folder is used as it is
        folder = Path(spec).expanduser().resolve()
        return folder, str(folder)
    from .models import resolve

    return resolve(spec, "encoder"), spec


def open_encoder(spec: str | None, threads: int = 2, **kw) -> ImageEncoder:
    """The ImageEncoder named by `spec` (a registry name or a model folder; None: the default encoder)."""
    folder, spec = encoder_folder(spec)
    return ImageEncoder(folder, threads=threads, name=Path(spec).name, spec=spec, **kw)


def _disk_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.iterdir() if f.is_file())
