"""eval --query-boxes: a query with a box in the ground truth is searched with that region only."""

import json

from PIL import Image

from edgeret.cli import main
from edgeret.evaluate import load_ground_truth


def test_boxed_queries_are_searched_with_their_region(tmp_path, photos, tiny_encoder, capsys):
    lib = tmp_path / "lib"
    scene = Image.open(photos / "b" / "img11.jpg").convert("RGB").resize((800, 600))
    scene.paste(Image.open(photos / "a" / "img04.jpg").convert("RGB"), (400, 300))
    scene.save(photos / "scene.png")
    Image.open(photos / "a" / "img04.jpg").save(photos / "a" / "again.png")
    gt = {"images": [{"file": str(photos / "scene.png"), "group": "g", "kind": "clutter", "box": [400, 300, 720, 540]},
                     {"file": str(photos / "a" / "again.png"), "group": "g", "kind": "clean"}],
          "groups": [{"id": "g", "type": "t"}]}
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    assert load_ground_truth(tmp_path / "gt.json").queries()[0].box == (400, 300, 720, 540)
    assert main(["index", str(photos), "--library", str(lib), "--encoder", str(tiny_encoder)]) == 0
    capsys.readouterr()
    runs = {}
    for flags in ((), ("--query-boxes",)):
        assert main(["eval", "--gt", str(tmp_path / "gt.json"), "--library", str(lib), "--json", *flags]) == 0
        runs[flags] = json.loads(capsys.readouterr().out)
    plain, boxed = runs[()], runs[("--query-boxes",)]
    assert plain["boxed_queries"] == 0 and boxed["boxed_queries"] == 1 and boxed["query_boxes"]
    assert boxed["metrics"]["kind=clutter"]["first_stage"]["R@1"] == 1.0  # the region is the pasted photo's copy
    assert plain["metrics"]["kind=clutter"]["first_stage"]["mAP"] < 1.0
    assert boxed["metrics"]["kind=clean"] == plain["metrics"]["kind=clean"]  # an unboxed query is unchanged
