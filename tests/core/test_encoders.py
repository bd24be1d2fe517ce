import json

import numpy as np
import pytest
from PIL import Image

from edgeret.decode import decode
from edgeret.encoders import ImageEncoder, pool
from edgeret.errors import ModelError
from edgeret.preprocess import Preprocess
from edgeret.testing.photos import make_photo


def _img(w, h):
    return Image.fromarray(np.random.default_rng(w * h).integers(0, 256, (h, w, 3), dtype=np.uint8))


@pytest.mark.parametrize(
    "recipe,size,shape",
    [
        ({"input_size": 64, "resize": "shortest_edge_center_crop"}, (200, 100), (3, 64, 64)),
        ({"input_size": 64, "resize": "stretch"}, (200, 100), (3, 64, 64)),
        ({"input_size": 64, "resize": "longest_edge_pad"}, (200, 100), (3, 64, 64)),
        ({"input_size": 448, "resize": "longest_edge", "multiple_of": 32}, (768, 576), (3, 352, 448)),
        ({"input_size": 448, "resize": "longest_edge", "multiple_of": 32}, (418, 512), (3, 448, 352)),
        ({"input_size": 64, "resize": "stretch", "layout": "NHWC"}, (50, 70), (64, 64, 3)),
    ],
)
def test_preprocess_shapes(recipe, size, shape):
    assert Preprocess.from_dict(recipe)(_img(*size)).shape == shape


def test_normalisation_and_padding_values():
    pre = Preprocess.from_dict(
        {"input_size": 4, "resize": "longest_edge_pad", "mean": [0.5] * 3, "std": [0.25] * 3, "layout": "NHWC"}
    )
    x = pre(Image.new("RGB", (4, 2), (255, 0, 128)))
    assert x.shape == (4, 4, 3)
    np.testing.assert_allclose(x[1, 0], [2.0, -2.0, (128 / 255 - 0.5) / 0.25], atol=1e-6)
    np.testing.assert_array_equal(x[0], 0)  # padding carries the mean colour


def test_bad_recipe_is_a_model_error():
    with pytest.raises(ModelError, match="resize: Input should be"):
        Preprocess.from_dict({"resize": "squash"})


def test_pooling_against_numpy():
    fmap = np.random.default_rng(0).random((2, 5, 3, 4)).astype(np.float32)
    np.testing.assert_allclose(pool(fmap, "mean"), fmap.mean(axis=(2, 3)), rtol=1e-6)
    np.testing.assert_allclose(pool(fmap, "max"), fmap.max(axis=(2, 3)), rtol=1e-6)
    gem = np.cbrt((fmap**3).mean(axis=(2, 3)))
    np.testing.assert_allclose(pool(fmap, "gem", 3.0), gem, rtol=1e-5)


@pytest.mark.parametrize("which", ["tiny_encoder", "tiny_fmap_encoder"])
def test_encoder_outputs_unit_vectors_and_batching_is_invariant(which, request, tmp_path):
    enc = ImageEncoder(request.getfixturevalue(which), threads=1)
    images = [decode(make_photo(tmp_path / f"{i}.jpg", i, size=(300 + 40 * i, 200))) for i in range(5)]
    together = enc.encode_images(images)
    alone = np.concatenate([enc.encode_images([im]) for im in images])
    assert together.shape == (5, 32) and enc.dim == 32
    np.testing.assert_allclose(np.linalg.norm(together, axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(together, alone, atol=1e-5)
    assert not np.allclose(together[0], together[1])


def test_encoder_folder_errors(tmp_path, tiny_encoder):
    with pytest.raises(ModelError, match="not an encoder folder"):
        ImageEncoder(tmp_path)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model.onnx").write_bytes(b"\x08\x07" + b"garbage" * 100)
    (broken / "preprocess.json").write_text(json.dumps({"input_size": 64}))
    with pytest.raises(ModelError):
        ImageEncoder(broken)


def test_encoder_id_changes_with_weights(tmp_path, tiny_encoder):
    from edgeret.testing import tiny_onnx

    other = tiny_onnx.write(tmp_path / "tiny-embed", "embedding", seed=1)
    assert ImageEncoder(tiny_encoder).id != ImageEncoder(other).id
    assert ImageEncoder(tiny_encoder).id == ImageEncoder(tiny_encoder).id
