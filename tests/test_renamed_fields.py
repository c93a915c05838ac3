"""Renamed names keep working for one release, with a DeprecationWarning: the saliency map's
padding (`pad_mode` → `map_pad_mode`, `ops.PAD_MODES` → `ops.MAP_PAD_MODES`) and the learned
resizer's kernel (`interpolation` → `method`, as the fixed resizer's); configs that use the
old names, as config files or as a run's config.json, still build the same model."""

import json
import types

import jax
import numpy as np
import pytest

from resize_jax import ops
from resize_jax.config_args import frontend_section
from resize_jax.frontends import LearnedResizer, SaliencySampler
from resize_jax.train import build, config_check, default_config, workdir


def test_old_field_names_warn_and_set_the_new_field():
    with pytest.warns(DeprecationWarning, match="`pad_mode` is deprecated.*`map_pad_mode`"):
        sampler = SaliencySampler((12, 12), pad_mode="reflect")
    assert (sampler.map_pad_mode, sampler.pad_mode) == ("reflect", None)
    with pytest.warns(DeprecationWarning, match="`interpolation` is deprecated.*`method`"):
        resizer = LearnedResizer((4, 4), interpolation="nearest")
    assert (resizer.method, resizer.interpolation) == ("nearest", None)
    # The old name is checked as the new one, and giving both with different values is refused.
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match="`method` must be"):
        LearnedResizer((4, 4), interpolation="cubic")
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match="give only `method`"):
        LearnedResizer((4, 4), method="bicubic", interpolation="nearest")


def test_old_names_compute_what_the_new_ones_do():
    images = jax.random.uniform(jax.random.key(0), (1, 16, 16, 3))
    new = LearnedResizer((6, 6), method="nearest")
    with pytest.warns(DeprecationWarning):
        old = LearnedResizer((6, 6), interpolation="nearest")
    variables = new.init(jax.random.key(1), images)
    np.testing.assert_array_equal(old.apply(variables, images)[0], new.apply(variables, images)[0])

    saliency = jax.random.uniform(jax.random.key(2), (1, 5, 5)) + 0.1
    want = ops.saliency_grid(saliency, (7, 7), pad=3, map_pad_mode="constant")
    with pytest.warns(DeprecationWarning, match="`pad_mode` is deprecated"):
        got = ops.saliency_grid(saliency, (7, 7), pad=3, pad_mode="constant")
    np.testing.assert_array_equal(got, want)
    with pytest.warns(DeprecationWarning, match="MAP_PAD_MODES"):
        assert ops.PAD_MODES == ops.MAP_PAD_MODES


def test_new_config_sections_hold_only_the_new_names():
    section = frontend_section("saliency", (8, 8))
    assert "map_pad_mode" in section and "pad_mode" not in section
    section = frontend_section("learned", (8, 8))
    assert "method" in section and "interpolation" not in section


@pytest.mark.parametrize("saved", [False, True], ids=["config_file", "run_config_json"])
def test_configs_with_old_names_still_build(tmp_path, saved):
    config = default_config.get_config("frontend=learned")
    # A config file written before the rename sets the old name on the section.
    del config.frontend["method"]
    config.frontend.interpolation = "nearest"
    if saved:  # A run's config.json (what `load_run` rebuilds a checkpoint's model from).
        with open(tmp_path / workdir.CONFIG_FILE, "w") as f:
            json.dump(config.to_dict(), f)
        config = workdir.load_config(str(tmp_path))
    config_check.check_section_names("frontend", config.frontend, LearnedResizer, kind="front-end")
    with pytest.warns(DeprecationWarning, match="`interpolation` is deprecated"):
        model = build.build_model(config, types.SimpleNamespace(num_classes=4))
    assert model.frontend.method == "nearest"
