"""scripts/export_clip_onnx.py on a tiny randomly initialised CLIP: parity with torch, dynamic batch, int8 copy,
and the exported folder loads as an edgeret encoder. Skipped when torch or transformers are not installed."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytestmark = pytest.mark.slow

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def tiny_clip():
    torch.manual_seed(0)
    cfg = transformers.CLIPConfig(
        text_config={
            "vocab_size": 99,
            "hidden_size": 32,
            "intermediate_size": 37,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "max_position_embeddings": 16,
            "eos_token_id": 98,
            "bos_token_id": 97,
            "pad_token_id": 1,
        },
        vision_config={
            "image_size": 32,
            "patch_size": 8,
            "hidden_size": 32,
            "intermediate_size": 37,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
        },
        projection_dim=24,
    )
    return transformers.CLIPModel(cfg).eval()


def test_export_matches_torch_and_loads_as_encoder(tmp_path, tiny_clip):
    from tests.helpers.scripts import load_script

    export_clip_onnx = load_script("export_clip_onnx")

    report = export_clip_onnx.export(export_clip_onnx.from_transformers(tiny_clip), tmp_path, text=True, int8=True)
    assert report["ok"], report
    assert report["image"]["max_abs_diff"] <= 1e-4 and report["text"]["max_abs_diff"] <= 1e-4
    image = tmp_path / "image"
    pre = json.loads((image / "preprocess.json").read_text())
    assert pre["input_size"] == 32 and pre["output"] == "embedding" and pre["resize"] == "shortest_edge_center_crop"

    import onnxruntime as ort

    sess = ort.InferenceSession(str(image / "model.onnx"), providers=["CPUExecutionProvider"])
    out = sess.run(None, {"pixel_values": np.zeros((5, 3, 32, 32), np.float32)})[0]
    assert out.shape == (5, 24)  # dynamic batch
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    with torch.no_grad():
        feats = tiny_clip.get_image_features(pixel_values=torch.zeros(1, 3, 32, 32))
        feats = feats if isinstance(feats, torch.Tensor) else feats.pooler_output
        want = torch.nn.functional.normalize(feats, dim=-1)
    np.testing.assert_allclose(out[:1], want.numpy(), atol=1e-4)

    int8 = tmp_path / "image-int8" / "model.onnx"
    assert int8.stat().st_size < (image / "model.onnx").stat().st_size
    assert report["image_int8"]["min_cosine_vs_fp32"] >= 0.97

    from PIL import Image

    from edgeret.encoders import ImageEncoder
    from edgeret.models import resolve

    assert resolve(str(image), "encoder") == image.resolve()
    for folder in (image, int8.parent):  # both load in the product's own encoder
        vec = ImageEncoder(folder, threads=1).encode_images([Image.new("RGB", (64, 48), (200, 30, 30))])
        assert vec.shape == (1, 24)
