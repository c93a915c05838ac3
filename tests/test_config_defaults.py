"""One source of defaults: values derived from the step count follow an override of it, and
the data resolver takes its fallbacks from `data.default_config()`."""

import json

import ml_collections

from resize_jax import data
from resize_jax.data.config import resolve
from resize_jax.train import default_config
from tests.test_configs import load_config


def test_blur_and_warmup_follow_num_train_steps():
    config = default_config.get_config("frontend=saliency")
    assert (config.num_train_steps, config.frontend.blur_steps) == (1500, 375)
    assert config.optimizer.warmup_steps == 50
    # What `--config.num_train_steps=3000` does (the flag sets the field of a locked config).
    config.lock()
    config.num_train_steps = 3000
    assert config.frontend.blur_steps == 750 and config.optimizer.warmup_steps == 100
    # The run's config.json records the resolved values.
    written = json.loads(config.to_json_best_effort())
    assert written["frontend"]["blur_steps"] == 750
    assert written["optimizer"]["warmup_steps"] == 100
    # An explicit override of a derived value wins and stays.
    config.frontend.blur_steps = 10
    config.num_train_steps = 600
    assert config.frontend.blur_steps == 10 and config.optimizer.warmup_steps == 20


def test_runlocal_warmup_fits_in_its_steps():
    config = default_config.get_config("frontend=saliency,runlocal")
    assert config.num_train_steps == 30
    assert config.optimizer.warmup_steps <= config.num_train_steps // 10
    assert config.frontend.blur_steps == 30 // 4


def test_paper_saliency_config_blur_follows_the_steps():
    config = load_config("cub_saliency", "frontend=saliency")
    config.num_train_steps = 8000
    assert config.frontend.blur_steps == 2000


def test_configs_default_py_is_the_package_default():
    config = load_config("default", "frontend=learned")
    assert config == default_config.get_config("frontend=learned")


def test_data_resolver_falls_back_to_default_config():
    defaults = data.default_config()
    resolved = resolve(ml_collections.ConfigDict({"name": "small_details"}))
    assert resolved.shuffle_buffer == defaults.shuffle_buffer
    # No default of its own: the dataset's spec decides (ImageNet's for small_details).
    assert defaults.crop_area_range is None
    assert resolved.crop_area_range == (0.08, 1.0)
    assert resolved.ignore_label == defaults.ignore_label
    assert resolved.augment != "none"  # defaults.augment is True.
