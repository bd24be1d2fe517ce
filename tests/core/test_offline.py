"""edgeret makes no network traffic and leaves onnxruntime's telemetry off."""

import subprocess
import sys
import textwrap


def test_index_and_search_make_no_network_calls_and_no_telemetry(tmp_path, photos, tiny_encoder):
    home = tmp_path / "home"
    home.mkdir()
    guard = tmp_path / "guard"
    guard.mkdir()
    # sitecustomize runs before anything else in the child: every socket connection attempt becomes a hard error
    (guard / "sitecustomize.py").write_text(textwrap.dedent("""
        import socket
        def _refuse(*a, **k):
            raise RuntimeError("network access attempted")
        socket.socket.connect = _refuse
        socket.socket.connect_ex = _refuse
        socket.create_connection = _refuse
        socket.getaddrinfo = _refuse
    """))
    lib, query = str(tmp_path / "lib"), str(photos / "a" / "img00.jpg")
    code = textwrap.dedent(f"""
        import os, sys
        from edgeret.cli import main
        rc = main(["index", {str(photos)!r}, "--library", {lib!r}, "--encoder", {str(tiny_encoder)!r}])
        rc |= main(["search", {query!r}, "--library", {lib!r}])
        import onnxruntime
        assert os.environ["ORT_DISABLE_TELEMETRY"] == "1"
        sys.exit(rc)
    """)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "PYTHONPATH": str(guard)}
    p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "network access attempted" not in p.stderr
    assert not (home / ".cache" / "Microsoft").exists()  # where onnxruntime's telemetry keeps its device id


def test_telemetry_flag_is_set_by_importing_edgeret():
    code = "import os, edgeret.encoders; print(os.environ.get('ORT_DISABLE_TELEMETRY'))"
    env = {"PATH": "/usr/bin:/bin"}
    p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert p.stdout.strip() == "1", p.stderr
