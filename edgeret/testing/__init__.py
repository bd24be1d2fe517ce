"""Generators of the tiny real models and synthetic photos the tests (and some benchmarks) run on.

Not used by the application: tiny_onnx (image encoders), tiny_gguf (GGUF text model + mmproj pairs), tiny_text
(a paired CLIP-style text/image tower), photos (deterministic synthetic photos), shared (where the shared dev
data is). They need the [dev] extra (onnx).
"""
