"""Where the shared dev data lives (../shared beside the checkout, or EDGERET_SHARED): the devset and mnv2-gem.

Tests skip, and scripts leave out what needs them, when they are absent.
"""

from __future__ import annotations

import os
from pathlib import Path

SHARED = Path(os.environ.get("EDGERET_SHARED", Path(__file__).resolve().parents[3] / "shared"))
DEVSET = SHARED / "data" / "devset"
MNV2 = SHARED / "models" / "mnv2-gem"
