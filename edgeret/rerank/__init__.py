"""Re-rankers for the first-stage top-k: the libmtmd pair scorer, its visual-token store, and score fusion."""

from edgeret.rerank.fusion import fuse, rank
from edgeret.rerank.mllm import MllmReranker, RerankerError, VisualTokens
from edgeret.rerank.tokens import TokenStore

__all__ = ["MllmReranker", "RerankerError", "TokenStore", "VisualTokens", "fuse", "rank"]
