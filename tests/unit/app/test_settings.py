import argparse
import json

import pytest

from app.paths import Paths
from app.cli.setting_flags import add_flags, apply_flags
from app.settings import Settings, SettingsError, load_settings, save_settings
from inference.sampling import SamplingOptions


def test_defaults_when_missing_and_round_trip(tmp_path):
    path = tmp_path / "settings.json"
    settings = load_settings(path)
    assert settings == Settings()
    settings.sampling.temperature = 0.2
    settings.engine.n_ctx = 8192
    save_settings(settings, path)
    again = load_settings(path)
    assert again.sampling.temperature == 0.2 and again.engine.n_ctx == 8192
    assert list(tmp_path.iterdir()) == [path]  # no temp files left behind


def test_out_of_bounds_value_names_the_setting(tmp_path):
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"sampling": {"temperature": 99}}))
    with pytest.raises(SettingsError, match="sampling.temperature"):
        load_settings(path)


def test_bad_json_is_a_clear_error(tmp_path):
    path = tmp_path / "settings.json"
    path.write_text("{nope")
    with pytest.raises(SettingsError, match="not valid JSON"):
        load_settings(path)


def test_assignment_is_validated():
    with pytest.raises(ValueError):
        Settings().engine.n_ctx = 10


def test_flags_come_from_the_declaration():
    parser = argparse.ArgumentParser()
    add_flags(parser, SamplingOptions, ["temperature", "seed", "stop"], dest_prefix="s_")
    assert "Randomness" in parser.format_help()
    args = parser.parse_args(["--temperature", "0", "--seed", "7", "--stop", "A", "--stop", "B"])
    opts = apply_flags(SamplingOptions(), args, dest_prefix="s_")
    assert (opts.temperature, opts.seed, opts.stop) == (0.0, 7, ["A", "B"])
    assert apply_flags(SamplingOptions(), parser.parse_args([]), dest_prefix="s_") == SamplingOptions()
    with pytest.raises(SettingsError, match="--temperature"):
        apply_flags(SamplingOptions(), parser.parse_args(["--temperature", "-1"]), dest_prefix="s_")


def test_paths_follow_ember_home(ember_home):
    paths = Paths.from_env().ensure()
    assert paths.home == ember_home.resolve()
    assert paths.database == ember_home.resolve() / "ember.db"
    assert all(p.is_dir() for p in (paths.models, paths.cache, paths.logs))
