"""Command-line entry point of edgeret.testing.tiny_gguf (the generator lives in the package so tests import it).

    python scripts/tiny_gguf.py OUT_DIR [--projector mlp|idefics3|qwen2vl|qwen25vl|gemma3] [--shape tiny|...]
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edgeret.testing.tiny_gguf import main  # noqa: E402

if __name__ == "__main__":
    main()
