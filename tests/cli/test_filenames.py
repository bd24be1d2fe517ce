"""A photo whose name is not valid UTF-8: every command prints it (escaped in text, losslessly in JSON)."""

import json
import os
import subprocess
import sys

from edgeret.testing.photos import make_photo

RAW = b"caf\xe9.jpg"


def _cli(*argv, env_extra=None):
    # a strict UTF-8 stdout, as under a UTF-8 locale: printing a lone surrogate would raise
    env = {**os.environ, "PYTHONIOENCODING": "utf-8", **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "edgeret.cli", *map(str, argv)], capture_output=True, env=env,
                          timeout=120)


def test_every_command_prints_a_non_utf8_name(tmp_path, tiny_encoder):
    root = tmp_path / "photos"
    make_photo(root / "a.jpg", seed=1)
    make_photo(root / "b.jpg", seed=2)
    odd = os.path.join(os.fsencode(root), RAW)
    os.rename(root / "b.jpg", odd)
    (root / "b.jpg").write_bytes(b"broken")
    os.rename(root / "b.jpg", os.path.join(os.fsencode(root), b"bad\xff.jpg"))
    lib = tmp_path / "lib"

    p = _cli("index", root, "--library", lib, "--encoder", tiny_encoder, "--no-progress")
    assert p.returncode == 0 and b"indexed 2" in p.stdout and b"bad\\xff.jpg" in p.stdout, p.stderr
    p = _cli("status", "--library", lib)
    assert p.returncode == 0 and b"bad\\xff.jpg" in p.stdout, p.stderr

    p = _cli("search", os.fsdecode(odd), "--library", lib, "-k", "1")
    assert p.returncode == 0 and p.stdout.decode("utf-8").splitlines()[1].endswith("caf\\xe9.jpg"), p.stderr
    p = _cli("search", os.fsdecode(odd), "--library", lib, "-k", "1", "--json")
    found = json.loads(p.stdout)["results"][0]["path"]
    assert os.fsencode(found) == odd  # JSON keeps the name losslessly (as \udcXX escapes)
    p = _cli("status", "--library", lib, "--json")
    assert [os.fsencode(f["path"]) for f in json.loads(p.stdout)["failures"]] == [odd.replace(RAW, b"bad\xff.jpg")]
