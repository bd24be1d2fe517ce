import json

import pytest

from edgeret.cli import main
from edgeret.testing.photos import make_photo


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_index_search_status_round_trip(tmp_path, photos, tiny_encoder, capsys):
    lib = tmp_path / "lib"
    code, out, _ = _run(capsys, "index", photos, "--library", lib, "--encoder", tiny_encoder, "--json")
    assert code == 0 and json.loads(out)["indexed"] == 13

    code, out, _ = _run(capsys, "index", "--library", lib)  # the library remembers its folders and encoder
    assert code == 0 and "unchanged 13" in out

    query_dir = tmp_path / "queries"
    make_photo(query_dir / "q1.jpg", seed=4)
    make_photo(query_dir / "q2.png", seed=11, fmt="PNG")
    code, out, _ = _run(capsys, "search", query_dir, "-k", "3", "--library", lib, "--json")
    lines = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and len(lines) == 2
    assert lines[0]["query"].endswith("q1.jpg")
    assert lines[0]["results"][0]["path"] == str(photos / "a" / "img04.jpg")
    assert lines[1]["results"][0]["path"] == str(photos / "b" / "img11.jpg")
    for r in lines[0]["results"]:
        assert set(r) >= {"path", "score", "first_stage"} and r["path"].startswith("/")

    code, out, _ = _run(capsys, "status", "--library", lib, "--json")
    st = json.loads(out)
    assert code == 0 and st["indexed"] == 13 and st["failed"] == 0 and st["failures"] == []


def test_text_output_and_failures(tmp_path, photos, tiny_encoder, capsys):
    (photos / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 nope")
    lib = tmp_path / "lib"
    code, out, _ = _run(capsys, "index", photos, "--library", lib, "--encoder", tiny_encoder, "--no-progress")
    assert code == 0 and "indexed 13" in out and "failed 1" in out and "broken.jpg" in out
    code, out, _ = _run(capsys, "status", "--library", lib)
    assert "failed   " in out and "broken.jpg" in out
    code, out, _ = _run(capsys, "search", photos / "a" / "img00.jpg", "--library", lib, "-k", "2")
    rank, score, path = out.splitlines()[1].split()
    assert code == 0 and rank == "1" and float(score) > 0.99 and path.endswith("a/img00.jpg")


def test_errors_are_messages_with_exit_codes(tmp_path, photos, tiny_encoder, capsys):
    code, _, err = _run(capsys, "status", "--library", tmp_path / "none")
    assert code == 4 and "no library at" in err and "Traceback" not in err
    code, _, err = _run(capsys, "search", tmp_path / "missing.jpg", "--library", tmp_path / "none")
    assert code == 2 and "does not exist" in err
    lib = tmp_path / "lib"
    _run(capsys, "index", photos, "--library", lib, "--encoder", tiny_encoder)
    bad = tmp_path / "bad.jpg"
    bad.write_text("text")
    code, _, err = _run(capsys, "search", bad, "--library", lib)
    assert code == 1 and "cannot read query" in err


def test_library_from_environment(tmp_path, photos, tiny_encoder, capsys, monkeypatch):
    monkeypatch.setenv("EDGERET_LIBRARY", str(tmp_path / "envlib"))
    code, _, _ = _run(capsys, "index", photos, "--encoder", tiny_encoder)
    assert code == 0 and (tmp_path / "envlib" / "catalog.sqlite").is_file()


def test_search_with_a_box_finds_the_boxed_photo_and_echoes_the_box(tmp_path, photos, tiny_encoder, capsys):
    from PIL import Image

    lib = tmp_path / "lib"
    assert _run(capsys, "index", photos, "--library", lib, "--encoder", tiny_encoder)[0] == 0
    scene = Image.open(photos / "b" / "img11.jpg").convert("RGB").resize((800, 600))
    scene.paste(Image.open(photos / "a" / "img04.jpg").convert("RGB"), (400, 300))
    scene.save(tmp_path / "scene.png")
    code, out, _ = _run(capsys, "search", tmp_path / "scene.png", "--library", lib, "--json",
                        "--box", "400,300,720,540")
    found = json.loads(out)
    assert code == 0 and found["box"] == [400, 300, 720, 540]
    assert found["results"][0]["path"] == str(photos / "a" / "img04.jpg") and found["results"][0]["score"] > 0.99
    code, out, _ = _run(capsys, "search", tmp_path / "scene.png", "--library", lib, "--json",
                        "--box", "0.5,0.5,0.9,0.9", "--reranker", "sv", "-k", "3")
    found = json.loads(out)
    assert code == 0 and found["box"] == [400, 300, 720, 540] and len(found["results"]) == 3
    code, out, _ = _run(capsys, "search", tmp_path / "scene.png", "--library", lib, "--json")
    whole = json.loads(out)
    assert "box" not in whole and whole["results"][0]["path"] == str(photos / "b" / "img11.jpg")  # the scene's

    for box, says in (("400,300,900,540", "outside the 800x600 image"), ("720,300,400,540", "inverted"),
                      ("1,2,3", "four numbers")):
        code, out, err = _run(capsys, "search", tmp_path / "scene.png", "--library", lib, "--box", box)
        assert code == 2 and says in err and out == ""
    code, _, err = _run(capsys, "search", "--text", "a mug", "--library", lib, "--box", "0,0,10,10")
    assert code == 2 and "text query" in err


def test_bad_counts_library_files_and_empty_query_folders_are_messages(tmp_path, photos, tiny_encoder, capsys):
    lib = tmp_path / "lib"
    assert _run(capsys, "index", photos, "--library", lib, "--encoder", tiny_encoder)[0] == 0
    query = photos / "a" / "img00.jpg"
    for k in ("0", "-1", "10000000000000", "x"):
        with pytest.raises(SystemExit) as e:
            _run(capsys, "search", query, "--library", lib, "-k", k)
        err = capsys.readouterr().err
        assert e.value.code == 2 and "-k" in err and "Traceback" not in err, (k, err)
    code, out, _ = _run(capsys, "search", query, "--library", lib, "-k", "100000", "--json")
    assert code == 0 and len(json.loads(out)["results"]) == 13  # more than the library holds: all of it
    for cmd in (["status"], ["search", query], ["index", photos]):
        code, _, err = _run(capsys, *cmd, "--library", query)
        assert code == 4 and "is a file, not a library folder" in err, (cmd, err)
    (tmp_path / "empty").mkdir()
    code, out, err = _run(capsys, "search", tmp_path / "empty", "--library", lib)
    assert code == 2 and "holds no image files" in err and out == ""
