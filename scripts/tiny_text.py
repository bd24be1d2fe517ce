"""Command-line entry point of edgeret.testing.tiny_text (the generator lives in the package so tests import it).

    python scripts/tiny_text.py OUT_DIR [--output embedding|sequence]
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edgeret.testing.tiny_text import main  # noqa: E402

if __name__ == "__main__":
    main()
