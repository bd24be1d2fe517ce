"""A library on read-only media (a copy on a CD or a read-only mount) opens for status, search and duplicates.

Tests run as root, for whom chmod stops no write; so the readers run as `nobody` (setpriv) on a copy whose files
and folder belong to root with no write bits: every write the reader tried would fail as on read-only media.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from edgeret.library import Library
from edgeret.testing.photos import make_photo

ROOT = Path(__file__).resolve().parents[2]


def _as_reader(*argv, home: Path):
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "PYTHONPATH": str(ROOT), "EDGERET_MODELS": str(home / "m"),
           "EDGERET_CONFIG": str(home / "none.toml"), "EDGERET_THUMBNAILS": str(home / "t")}
    cmd = [sys.executable, "-m", "edgeret.cli", *map(str, argv)]
    if os.geteuid() == 0:
        if not shutil.which("setpriv"):
            pytest.skip("running as root without setpriv: cannot run a reader that writes nothing")
        cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)


@pytest.fixture
def readonly_library(tmp_path, tiny_encoder):
    base = Path(tempfile.mkdtemp(prefix="edgeret-ro-"))  # pytest's own tmp is root-only: unreadable by nobody
    try:
        photos = base / "photos"
        for i in range(6):
            make_photo(photos / f"p{i}.jpg", seed=i)
        shutil.copy(photos / "p0.jpg", photos / "copy.jpg")
        encoder = shutil.copytree(tiny_encoder, base / tiny_encoder.name)
        with Library(base / "lib", writable=True) as lib:
            lib.index([photos], encoder_spec=str(encoder), threads=1)
        (base / "home").mkdir()
        os.chmod(base / "home", 0o777)
        for p in [*base.rglob("*"), base]:
            if p.name != "home" and p.parent.name != "home":
                os.chmod(p, 0o555 if p.is_dir() else 0o444)
        yield base
    finally:
        for p in [base, *base.rglob("*")]:
            os.chmod(p, 0o755 if p.is_dir() else 0o644)
        shutil.rmtree(base)


def test_readers_work_on_a_read_only_library_and_write_nothing(readonly_library):
    lib, home = readonly_library / "lib", readonly_library / "home"
    before = {p.name: p.stat().st_mtime_ns for p in lib.iterdir()}
    p = _as_reader("status", "--library", lib, "--json", home=home)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["indexed"] == 7
    p = _as_reader("search", readonly_library / "photos" / "p3.jpg", "--library", lib, "-k", "2", "--json", home=home)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["results"][0]["path"].endswith("p3.jpg")
    p = _as_reader("duplicates", "--library", lib, "--json", home=home)
    assert p.returncode == 0, p.stderr
    assert "unable to open" not in p.stderr and "Traceback" not in p.stderr
    assert {p.name: p.stat().st_mtime_ns for p in lib.iterdir()} == before
