"""`edgeret cluster` options resolve like the local commands' (settings.py), with one thread per actor by default."""

import pytest

for _name in ("ray", "pymilvus", "milvus_lite", "pyarrow"):
    pytest.importorskip(_name)

from edgeret.cli import build_parser  # noqa: E402
from edgeret.cli.cluster import _options  # noqa: E402
from edgeret.settings import CLUSTER_THREADS  # noqa: E402


@pytest.mark.parametrize("env, argv, threads", [
    (None, [], CLUSTER_THREADS),
    ("3", [], 3),
    ("3", ["--threads", "2"], 2),
])
def test_threads_per_actor_come_from_the_command_line_then_edgeret_threads(tmp_path, monkeypatch, env, argv, threads):
    monkeypatch.setenv("EDGERET_CONFIG", str(tmp_path / "none.toml"))
    monkeypatch.delenv("EDGERET_THREADS", raising=False)
    if env:
        monkeypatch.setenv("EDGERET_THREADS", env)
    args = build_parser().parse_args(["cluster", "status", "--library", str(tmp_path), *argv])
    _, opts = _options(args)
    assert opts.threads == threads and opts.library == tmp_path.resolve()
