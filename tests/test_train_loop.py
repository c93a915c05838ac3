"""The training loop on fake in-memory data: sharding, determinism, resume, two-stage, NaN."""

import logging
import os

import chex
import jax
import numpy as np
import pytest

from resize_jax.train import checkpoint, train_and_evaluate
from resize_jax.train.writer import read_metrics
from tests import train_fakes


@pytest.fixture(autouse=True)
def fake_data(monkeypatch):
    train_fakes.install(monkeypatch)


def _losses(workdir):
    return np.array([r["train/loss"] for r in read_metrics(workdir) if "train/loss" in r])


def _assert_trees_equal(a, b):
    jax.tree.map(lambda x, y: np.testing.assert_array_equal(np.asarray(x), np.asarray(y)), a, b)


def test_trains_evaluates_and_writes_readable_metrics(tmp_path):
    config = train_fakes.tiny_config("learned", eval_every_steps=4)
    result = train_and_evaluate(config, str(tmp_path))
    assert int(result.state.step) == 8
    records = read_metrics(str(tmp_path))
    train = [r for r in records if "train/loss" in r]
    assert [r["step"] for r in train] == list(range(1, 9))
    for key in ("train/grad_norm", "train/learning_rate", "train/images_per_second"):
        assert key in train[-1]
    evals = [r for r in records if "eval/top1" in r]
    assert [r["step"] for r in evals] == [4, 8]
    assert evals[-1]["eval/count"] == train_fakes.NUM_EVAL  # Every example exactly once.
    assert records[0]["params/trainable"] > 0
    assert any(f.startswith("events.out.tfevents") for f in os.listdir(tmp_path))
    assert _losses(str(tmp_path))[-1] < _losses(str(tmp_path))[0]


def test_same_seed_same_metrics_bit_identical(tmp_path):
    a = train_and_evaluate(train_fakes.tiny_config(), str(tmp_path / "a"))
    b = train_and_evaluate(train_fakes.tiny_config(), str(tmp_path / "b"))
    np.testing.assert_array_equal(_losses(str(tmp_path / "a")), _losses(str(tmp_path / "b")))
    _assert_trees_equal(a.state.params, b.state.params)
    c = train_and_evaluate(train_fakes.tiny_config(seed=1), str(tmp_path / "c"))
    assert not np.array_equal(_losses(str(tmp_path / "a")), _losses(str(tmp_path / "c")))
    del c


@pytest.fixture(scope="module")
def one_device_run(tmp_path_factory):
    # On one device "replicated" and "fsdp" place the state alike: both cases compare to it.
    workdir = str(tmp_path_factory.mktemp("one"))
    with pytest.MonkeyPatch.context() as patch:
        train_fakes.install(patch)
        return train_and_evaluate(train_fakes.tiny_config(num_devices=1), workdir), workdir


@pytest.mark.parametrize("state_sharding", ["replicated", "fsdp"])
def test_eight_devices_match_one_device(tmp_path, state_sharding, one_device_run):
    chex.assert_equal(jax.device_count(), 8)
    one, one_dir = one_device_run
    # fsdp with no size threshold: every array with a dimension divisible by 8 is split.
    fields = {"sharding": state_sharding, "fsdp_min_size_mb": 0.0}
    eight = train_and_evaluate(
        train_fakes.tiny_config(num_devices=8, **fields), str(tmp_path / "eight")
    )
    # Sharded and unsharded sums round differently: one step's gradients differ by ~1e-6
    # (relative, with XLA's convolutions and with the native kernels alike), and Adam turns
    # that into loss differences of up to ~5e-5 over these steps; the tolerance is 4x that.
    np.testing.assert_allclose(
        _losses(one_dir), _losses(str(tmp_path / "eight")), atol=2e-4, rtol=2e-4
    )
    assert one.eval_metrics["count"] == eight.eval_metrics["count"] == train_fakes.NUM_EVAL
    sharding = eight.state.params["frontend"]["conv_in"]["kernel"].sharding
    assert len(sharding.device_set) == 8
    # The learned resizer's 7×7×3×16 kernel: split along its 16 output channels under fsdp.
    assert sharding.is_fully_replicated == (state_sharding == "replicated")


def test_stopped_and_resumed_equals_uninterrupted(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="absl")
    straight = train_and_evaluate(train_fakes.tiny_config(), str(tmp_path / "straight"))
    # A real SIGTERM arrives while batch 6 is read: the run saves at its step and stops.
    config = train_fakes.tiny_config(**{"data.fake_sigterm_at_batch": 6})
    config.preemption_check_every_steps = 1
    stopped = train_and_evaluate(config, str(tmp_path / "resumed"))
    assert stopped.preempted and int(stopped.state.step) == 6
    # The log does not present the run as finished, nor an older evaluation as its result.
    assert "Stopped at step 6; not evaluated." in caplog.text
    with checkpoint.make_manager(str(tmp_path / "resumed")) as manager:
        assert manager.latest_step() == 6
    config = train_fakes.tiny_config(resume_changes="data.fake_sigterm_at_batch")
    resumed = train_and_evaluate(config, str(tmp_path / "resumed"))
    assert not resumed.preempted and int(resumed.state.step) == 8
    assert "Finished at step 8; eval: " in caplog.text
    _assert_trees_equal(straight.state.params, resumed.state.params)
    _assert_trees_equal(straight.state.batch_stats, resumed.state.batch_stats)
    _assert_trees_equal(straight.state.opt_state, resumed.state.opt_state)


def test_truncated_latest_checkpoint_falls_back_to_previous(tmp_path, caplog):
    result = train_and_evaluate(train_fakes.tiny_config(), str(tmp_path))
    latest = tmp_path / "checkpoints" / "8"
    for root, _, files in os.walk(latest):
        for name in files:
            with open(os.path.join(root, name), "r+b") as f:
                f.truncate(max(os.path.getsize(os.path.join(root, name)) // 3, 0))
    with checkpoint.make_manager(str(tmp_path)) as manager:
        restored = checkpoint.restore_latest(manager, result.state)
    assert int(restored.step) == 4
    assert "step 8" in caplog.text and "falling back" in caplog.text


def test_two_stage_init_from_backbone_and_freezing(tmp_path):
    stage1 = train_and_evaluate(train_fakes.tiny_config("fixed"), str(tmp_path / "stage1"))
    config = train_fakes.tiny_config("learned", init_from=str(tmp_path / "stage1"))
    config.init_parts = "backbone"
    config.optimizer.freeze = "backbone"
    config.num_train_steps = 0
    loaded = train_and_evaluate(config, str(tmp_path / "loaded"))
    _assert_trees_equal(loaded.state.params["backbone"], stage1.state.params["backbone"])
    _assert_trees_equal(loaded.state.batch_stats["backbone"], stage1.state.batch_stats["backbone"])
    fresh = train_and_evaluate(
        train_fakes.tiny_config("learned", num_train_steps=0), str(tmp_path / "fresh")
    )
    _assert_trees_equal(loaded.state.params["frontend"], fresh.state.params["frontend"])
    # Train the front-end on top of the frozen backbone.
    config.num_train_steps = 4
    config.checkpoint_every_steps = 0
    tuned = train_and_evaluate(config, str(tmp_path / "tuned"))
    _assert_trees_equal(tuned.state.params["backbone"], stage1.state.params["backbone"])
    _assert_trees_equal(tuned.state.batch_stats["backbone"], stage1.state.batch_stats["backbone"])
    moved = jax.tree.map(
        lambda a, b: float(np.abs(np.asarray(a) - np.asarray(b)).max()),
        tuned.state.params["frontend"],
        fresh.state.params["frontend"],
    )
    assert max(jax.tree.leaves(moved)) > 0


def test_lr_multiplier_scales_a_part(tmp_path):
    base = train_and_evaluate(
        train_fakes.tiny_config("learned", num_train_steps=1), str(tmp_path / "a")
    )
    config = train_fakes.tiny_config("learned", num_train_steps=1)
    config.optimizer.lr_multipliers = "frontend:0.0"
    scaled = train_and_evaluate(config, str(tmp_path / "b"))
    init = train_and_evaluate(
        train_fakes.tiny_config("learned", num_train_steps=0), str(tmp_path / "c")
    )
    _assert_trees_equal(scaled.state.params["frontend"], init.state.params["frontend"])
    _assert_trees_equal(scaled.state.params["backbone"], base.state.params["backbone"])


def test_nan_stops_training_naming_the_step_and_keeps_last_checkpoint(tmp_path):
    config = train_fakes.tiny_config(**{"data.fake_nan_at_batch": 6})
    with pytest.raises(FloatingPointError, match=r"Non-finite loss .* at step 6"):
        train_and_evaluate(config, str(tmp_path))
    clean = train_fakes.tiny_config(resume_changes="data.fake_nan_at_batch")
    restored = train_and_evaluate(clean, str(tmp_path))
    # It resumed from the step-4 checkpoint, which is finite, and finished.
    assert int(restored.state.step) == 8
    assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(restored.state.params))


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"optimizer.name": "lamb"}, r"`config.optimizer.name` must be one of"),
        ({"frontend.name": "magic"}, r"`config.frontend.name` must be one of"),
        ({"model.name": "vgg"}, r"`config.model.name` must be one of"),
        ({"batch_size": 12}, r"`config.batch_size`=12 must be a positive multiple"),
        ({"dtype": "float16"}, r"`config.dtype` must be one of"),
        ({"prng_impl": "philox"}, r"`config.prng_impl` must be one of"),
        ({"optimizer.freeze": "frontnd"}, r"`optimizer.freeze` names 'frontnd'"),
    ],
)
def test_bad_config_fails_before_compiling(tmp_path, overrides, match):
    config = train_fakes.tiny_config("learned", **overrides)
    with pytest.raises(ValueError, match=match):
        train_and_evaluate(config, str(tmp_path))
    assert not os.path.exists(tmp_path / "checkpoints" / "1")
