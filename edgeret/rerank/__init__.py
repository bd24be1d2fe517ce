"""Re-rankers for the first-stage top-k: the libmtmd pair scorer, its visual-token store, and score fusion."""

from edgeret.rerank.fusion import fuse, rank

__all__ = ["fuse", "rank"]
