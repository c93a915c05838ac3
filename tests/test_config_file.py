"""`--config` takes a run's config.json: sizes come back as tuples, unset fields stay
overridable, and a bad file is named."""

import pytest
from absl import flags

from resize_jax.config_args import training_defaults
from resize_jax.data import default_config
from resize_jax.train import config_file


@pytest.fixture
def saved(tmp_path):
    config = training_defaults()
    config.data = default_config()
    config.data.image_size = (64, 48)
    path = tmp_path / "config.json"
    path.write_text(config.to_json_best_effort(indent=2))
    return str(path)


def test_json_config_parses_with_overrides(saved):
    argv = [
        "train.py",
        f"--config={saved}",
        "--config.num_train_steps=7",
        "--config.data.image_size=(32, 24)",
        "--config.data.root=/data/photos",  # null in the JSON: still overridable
    ]
    values = flags.FlagValues()
    holder = config_file.define_config_flag("config", "c", flag_values=values, sys_argv=argv)
    values(argv)
    config = holder.value
    assert config.num_train_steps == 7
    assert config.data.image_size == (32, 24)
    assert config.data.root == "/data/photos"
    assert config.data.crop_aspect_range == pytest.approx((3 / 4, 4 / 3))  # a tuple again


def test_bad_json_configs_are_named(tmp_path):
    with pytest.raises(ValueError, match="no such file"):
        config_file.load_json_config(str(tmp_path / "missing.json"))
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(ValueError, match="is not valid JSON"):
        config_file.load_json_config(str(broken))
    listed = tmp_path / "list.json"
    listed.write_text("[1, 2]")
    with pytest.raises(ValueError, match="must hold a JSON object, got list"):
        config_file.load_json_config(str(listed))
