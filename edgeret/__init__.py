"""edgeret: find the same object across a local photo library, offline, on a CPU."""

import os

# onnxruntime phones home unless this is set before its first import; edgeret is offline by construction.
os.environ["ORT_DISABLE_TELEMETRY"] = "1"

__version__ = "0.1.0"
