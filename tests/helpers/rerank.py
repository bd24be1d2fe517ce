"""Deterministic images for the re-ranker tests: a query and candidates of varied shapes (one is the query)."""

from __future__ import annotations

from edgeret.testing.photos import blobs as photo

QUERY = photo(100, 80, 48)
CANDIDATES = [photo(1, 40, 60), photo(2, 64, 64), photo(3, 100, 30), QUERY, photo(4, 33, 77)]
