"""First run at a terminal: a missing registry model is offered for download, pulled from the hub, and used."""

import json
import os
import pty
import subprocess
import sys

from edgeret.testing import tiny_onnx
from tests.helpers.hub import Hub, hub_path, registry_toml, sha256


def test_index_offers_to_pull_a_missing_encoder_at_a_terminal(tmp_path, photos):
    model = tiny_onnx.build("embedding").SerializeToString()
    pre = tiny_onnx.preprocess_for("embedding")
    reg = tmp_path / "registry.toml"
    spec = {"tinyenc": {"role": "encoder", "files": [("model.onnx", len(model), sha256(model))], "preprocess": pre}}
    reg.write_text(registry_toml(spec), "utf-8")
    hub = Hub()
    hub.add(hub_path("tinyenc", "model.onnx"), model)
    master, slave = pty.openpty()
    try:
        env = os.environ | {"EDGERET_REGISTRY": str(reg), "EDGERET_HUB_URL": hub.url}
        cmd = [sys.executable, "-m", "edgeret.cli", "index", str(photos), "--library", str(tmp_path / "lib"),
               "--encoder", "tinyenc", "--json"]
        proc = subprocess.Popen(cmd, stdin=slave, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        os.write(master, b"y\n")
        out, err = proc.communicate(timeout=120)
    finally:
        os.close(master)
        os.close(slave)
        hub.close()
    assert proc.returncode == 0, err.decode()
    assert b"Download tinyenc now?" in err and b"installed tinyenc" in err
    assert json.loads(out)["indexed"] == 13
