"""The real-photo check: mnv2-gem on the shared devset must reproduce its reference mAP (0.779) within 0.01."""

import json

import numpy as np
import pytest

from edgeret.cli import main
from edgeret.metrics import average_precision, recall_at

pytestmark = [pytest.mark.devset, pytest.mark.slow]

REFERENCE_MAP = 0.779


def test_devset_map_matches_reference(tmp_path, shared_devset, capsys):
    from tests.conftest import MNV2

    lib = tmp_path / "lib"
    images = shared_devset / "images"
    argv = ["index", str(images), "--library", str(lib), "--encoder", str(MNV2), "--regions", "off", "--json"]
    assert main(argv) == 0  # the reference recipe: one vector per photo
    assert json.loads(capsys.readouterr().out)["indexed"] == 136

    gt = json.loads((shared_devset / "gt.json").read_text())
    group = {str((shared_devset / i["file"]).resolve()): i["group"] for i in gt["images"]}
    queries = [p for p, g in group.items() if g]
    assert main(["search", *queries, "-k", "136", "--library", str(lib), "--json"]) == 0
    aps, r1 = [], []
    for line in capsys.readouterr().out.splitlines():
        rec = json.loads(line)
        q = rec["query"]
        ranked = [r["path"] for r in rec["results"] if r["path"] != q]
        positives = {p for p, g in group.items() if g == group[q] and p != q}
        aps.append(average_precision(ranked, positives))
        r1.append(recall_at(ranked, positives, 1))
    assert len(aps) == 128
    assert abs(np.mean(aps) - REFERENCE_MAP) <= 0.01, np.mean(aps)
    assert np.mean(r1) > 0.8
