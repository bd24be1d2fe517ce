"""Command-line entry point of edgeret.testing.tiny_onnx (the generator lives in the package so tests import it).

    python scripts/tiny_onnx.py OUT_DIR [--kind embedding|feature_map]
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edgeret.testing.tiny_onnx import main  # noqa: E402

if __name__ == "__main__":
    main()
