"""Registry names cannot leave the models folder; truncated ONNX files are refused by import and verify."""

from __future__ import annotations

import hashlib
import json

import pytest

from edgeret import models
from edgeret.errors import ModelError
from edgeret.testing import tiny_onnx
from tests.helpers.hub import registry_toml


def test_registry_names_cannot_traverse(tmp_path):
    for bad in ("../../x", "..", "a/b", ".hidden", "x y", "/abs"):
        path = tmp_path / "r.toml"
        path.write_text(registry_toml({bad: {"role": "encoder", "files": [("model.onnx", 0, "unverified")]}}))
        with pytest.raises(ModelError, match="model name"):
            models.load_registry(path)


@pytest.fixture
def big_onnx(tmp_path):
    """A real ONNX encoder of ~300 KB (well past the 64 KiB header check), and a registry without its hash."""
    model = tiny_onnx.build("embedding", dim=256)
    data = model.SerializeToString()
    assert len(data) > 4 * (1 << 16)
    del model.opset_import[:]  # the last field: without it the bytes are a prefix of the file, cut at a field end
    cut = model.SerializeToString()
    assert data.startswith(cut) and len(cut) < len(data)
    reg = tmp_path / "r.toml"
    reg.write_text(registry_toml({"enc": {"role": "encoder", "files": [("model.onnx", 0, "unverified")]}}))
    return data, cut, models.load_registry(reg)


def test_import_refuses_a_truncated_onnx_and_names_the_users_file(tmp_path, big_onnx):
    data, cut, reg = big_onnx
    usb = tmp_path / "usb"
    usb.mkdir()
    (usb / "model.onnx").write_bytes(data[: int(len(data) * 0.8)])
    with pytest.raises(ModelError, match="truncated") as e:
        models.import_model(usb, "enc", trust_unverified=True, registry=reg)
    assert str(usb / "model.onnx") in str(e.value) and ".staging" not in str(e.value)
    (usb / "model.onnx").write_bytes(cut)  # cut where a field ends: only parsing the whole model sees it
    with pytest.raises(ModelError, match="cannot load") as e:
        models.import_model(usb, "enc", trust_unverified=True, registry=reg)
    assert str(usb / "model.onnx") in str(e.value) and ".staging" not in str(e.value)
    assert not (models.models_dir() / "enc").exists()
    (usb / "model.onnx").write_bytes(data)
    assert models.import_model(usb, "enc", trust_unverified=True, registry=reg).is_dir()


def test_verify_calls_a_truncated_onnx_broken(tmp_path, big_onnx):
    data, cut, reg = big_onnx
    usb = tmp_path / "usb"
    usb.mkdir()
    (usb / "model.onnx").write_bytes(data)
    folder = models.import_model(usb, "enc", trust_unverified=True, registry=reg)
    assert [r.ok for r in models.verify(registry=reg)] == [True]
    (folder / "model.onnx").write_bytes(cut)  # as an import made before the full check would have left it
    manifest = json.loads((folder / models.MANIFEST).read_text())
    manifest["files"]["model.onnx"].update(size=len(cut), sha256=hashlib.sha256(cut).hexdigest())
    (folder / models.MANIFEST).write_text(json.dumps(manifest))
    [result] = models.verify(registry=reg)
    assert not result.ok and any("cannot load" in p for p in result.problems), result.problems
