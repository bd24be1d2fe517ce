"""Settings: defaults < config.toml < environment < command line; a bad value is a message, never a traceback."""

import pytest

from edgeret.cli import main
from edgeret.errors import ConfigError
from edgeret.settings import EXACT_BELOW, load_settings


def test_file_then_environment_then_command_line(tmp_path, monkeypatch):
    cfg = tmp_path / "config.toml"
    cfg.write_text('threads = 3\nexact_below = 10\nlibrary = "~/from-file"\nunrelated = true\n')
    monkeypatch.setenv("EDGERET_CONFIG", str(cfg))
    s = load_settings()
    assert (s.threads, s.exact_below, s.library.name) == (3, 10, "from-file")
    monkeypatch.setenv("EDGERET_THREADS", " 5 ")
    monkeypatch.setenv("EDGERET_LIBRARY", str(tmp_path / "from-env"))
    assert load_settings().threads == 5 and load_settings().library == tmp_path / "from-env"
    assert load_settings(threads=7, library=tmp_path / "cli").threads == 7
    monkeypatch.delenv("EDGERET_CONFIG")
    assert load_settings().exact_below == EXACT_BELOW


@pytest.mark.parametrize("name, value, words", [
    ("EDGERET_THREADS", "many", "EDGERET_THREADS: threads must be a whole number, not 'many'"),
    ("EDGERET_THREADS", "0", "threads must be at least 1"),
    ("EDGERET_EXACT_BELOW", "1e5", "EDGERET_EXACT_BELOW: exact_below must be a whole number"),
    ("EDGERET_EXACT_BELOW", "-1", "exact_below must be at least 0"),
])
def test_bad_environment_values_are_config_errors(tmp_path, monkeypatch, capsys, name, value, words):
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=words):
        load_settings()
    assert main(["status", "--library", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err


@pytest.mark.parametrize("text, words", [
    ("threads = [", "is not valid TOML"),
    ('threads = "four"', "threads must be a whole number, not 'four'"),
    ("threads = true", "threads must be a whole number, not True"),
    ("library = 3", "library must be a string, not 3"),
])
def test_malformed_config_file_is_a_config_error(tmp_path, monkeypatch, capsys, text, words):
    cfg = tmp_path / "config.toml"
    cfg.write_text(text)
    monkeypatch.setenv("EDGERET_CONFIG", str(cfg))
    assert main(["status", "--library", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert words in err and str(cfg) in err and "Traceback" not in err


def test_bad_weights_policy_is_a_config_error(monkeypatch):
    from edgeret.rerank.weights import policy_from_env

    monkeypatch.setenv("EDGERET_VLM_WEIGHTS", "fast")
    with pytest.raises(ConfigError, match="choose one of auto, as-is, f32"):
        policy_from_env()


def test_a_commands_own_default_sits_under_the_file_and_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGERET_CONFIG", str(tmp_path / "none.toml"))
    assert load_settings({"threads": 1}).threads == 1  # `edgeret cluster`: one thread per actor, not all cores
    monkeypatch.setenv("EDGERET_THREADS", "3")
    assert load_settings({"threads": 1}).threads == 3
    assert load_settings({"threads": 1}, threads=2).threads == 2
