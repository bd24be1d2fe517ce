"""The local library, CLI and app never import the cluster extra's packages; `cluster` without them says what to do."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("ray", "pymilvus", "milvus_lite", "pyarrow")

PROBE = """
import importlib, json, sys
for name in sys.argv[1:]:
    try:
        importlib.import_module(name)
    except ImportError as e:
        if "PySide6" not in str(e):  # a machine without the gui extra: the app cannot be probed
            raise
from edgeret.cli import build_parser
build_parser().parse_args(["cluster", "index", "x"])  # parsing a cluster command loads nothing either
print(json.dumps(sorted({m.split('.')[0] for m in sys.modules} & set(HEAVY))))
""".replace("HEAVY", repr(HEAVY))

MODULES = ["edgeret", "edgeret.cli", "edgeret.library", "edgeret.query", "edgeret.indexer", "edgeret.rerankers",
           "edgeret.duplicates", "edgeret.watch", "edgeret.evaluate", "edgeret.cluster", "gui.app", "gui.main_window"]

# makes the extra's packages unimportable, as on a machine where edgeret was installed without [cluster]
BLOCK = """
import sys
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in HEAVY:
            raise ModuleNotFoundError(f"No module named {name!r}")
sys.meta_path.insert(0, _Block())
import importlib.util
_find = importlib.util.find_spec
importlib.util.find_spec = lambda name, *a: None if name.split('.')[0] in HEAVY else _find(name, *a)
from edgeret.cli import main
sys.exit(main(sys.argv[1:]))
""".replace("HEAVY", repr(HEAVY))


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}


def test_local_modules_import_none_of_the_cluster_packages():
    out = subprocess.run([sys.executable, "-c", PROBE, *MODULES], capture_output=True, text=True, env=_env(),
                         cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_cluster_command_without_the_extra_says_how_to_install_it(tmp_path):
    out = subprocess.run([sys.executable, "-c", BLOCK, "cluster", "status", "--library", str(tmp_path)],
                         capture_output=True, text=True, env=_env(), cwd=ROOT, timeout=120)
    assert out.returncode == 2, out.stderr
    assert "pip install 'edgeret[cluster]'" in out.stderr
    assert "Traceback" not in out.stderr
    assert not list(tmp_path.iterdir())  # nothing was created
