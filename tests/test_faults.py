"""Fault injection on the training run: each test breaks something a long run meets (a signal
during the final evaluation, corrupt or missing checkpoint files, a second run, a changed or
invalid config, non-finite values) and asserts what the run promises (docs/reliability.md).

One finished run (fixed front-end, 4 steps, checkpoints at steps 2 and 4) is shared by the
module; the tests that damage it work on copies.
"""

import json
import os
import shutil

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from resize_jax import frontends, ops
from resize_jax.train import checkpoint, config_check, train_and_evaluate, workdir_guard
from tests import train_fakes


def _config(**overrides):
    values = {"num_train_steps": 4, "checkpoint_every_steps": 2, "log_every_steps": 2}
    return train_fakes.tiny_config("fixed", **{**values, **overrides})


def _assert_trees_equal(a, b):
    jax.tree.map(lambda x, y: np.testing.assert_array_equal(np.asarray(x), np.asarray(y)), a, b)


def _all_finite(tree) -> bool:
    return all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(tree))


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """(workdir, result) of the shared run."""
    with pytest.MonkeyPatch.context() as patch:
        train_fakes.install(patch)
        workdir = tmp_path_factory.mktemp("finished")
        result = train_and_evaluate(_config(), str(workdir))
    return workdir, result


@pytest.fixture(autouse=True)
def fake_data(monkeypatch):
    train_fakes.install(monkeypatch)


@pytest.fixture
def copy(finished, tmp_path):
    workdir = tmp_path / "run"
    shutil.copytree(finished[0], workdir)
    return workdir


def _data_files(step_dir):
    found = []
    for root, _, files in os.walk(step_dir):
        found += [os.path.join(root, f) for f in files if os.sep + "d" + os.sep in root + os.sep]
    return sorted(found, key=os.path.getsize)


def test_finished_run_has_verified_checkpoints(finished):
    workdir, result = finished
    assert not result.preempted and int(result.state.step) == 4
    for step in (2, 4):
        step_dir = os.path.join(workdir, "checkpoints", str(step))
        assert os.path.exists(os.path.join(step_dir, checkpoint.MANIFEST))
        assert checkpoint.verify_step(step_dir) is None
    with open(os.path.join(workdir, workdir_guard.LOCK_FILE)) as f:
        assert f.read() == ""  # Released cleanly: no stale record.


def test_overwritten_array_bytes_are_detected_quarantined_and_resaved(finished, copy, caplog):
    # 4 KB of garbage inside the step-4 array data: orbax would read it without complaint.
    target = _data_files(copy / "checkpoints" / "4")[-1]
    with open(target, "r+b") as f:
        f.seek(min(64, os.path.getsize(target) // 2))
        f.write(np.random.default_rng(0).bytes(4096))
    with checkpoint.CheckpointStore(str(copy)) as store:
        restored = store.restore_latest(finished[1].state)
        assert int(restored.step) == 2
        assert store.all_steps() == [2]
    assert "step 4" in caplog.text and "differ from their checksum" in caplog.text
    assert [p.name.split("_")[1] for p in (copy / "quarantine").iterdir()] == ["4"]
    # The rerun retrains step 4 and saves it afresh, bit-exactly as the uninterrupted run.
    rerun = train_and_evaluate(_config(), str(copy))
    _assert_trees_equal(rerun.state.params, finished[1].state.params)
    _assert_trees_equal(rerun.state.opt_state, finished[1].state.opt_state)
    assert checkpoint.verify_step(str(copy / "checkpoints" / "4")) is None


def test_deleted_item_directory_falls_back_to_the_intact_step(finished, copy, caplog):
    shutil.rmtree(copy / "checkpoints" / "4" / "default")
    with checkpoint.CheckpointStore(str(copy)) as store:
        restored = store.restore_latest(finished[1].state)
    assert int(restored.step) == 2
    assert "step 4" in caplog.text and "Composite" not in caplog.text
    _assert_trees_equal(restored.params, jax.device_get(restored.params))


def test_save_cut_short_by_a_kill_is_removed_at_the_next_start(finished, copy):
    # What a SIGKILL during an asynchronous save leaves: orbax's uncommitted temporary step.
    shutil.copytree(copy / "checkpoints" / "4", copy / "checkpoints" / "6.orbax-checkpoint-tmp-1")
    with checkpoint.CheckpointStore(str(copy)) as store:
        assert store.all_steps() == [2, 4]
        assert int(store.restore_latest(finished[1].state).step) == 4
    assert sorted(os.listdir(copy / "checkpoints")) == ["2", "4"]


def test_apply_names_the_corrupt_step_it_skips(copy, caplog):
    from resize_jax.train import workdir as workdir_reader

    target = _data_files(copy / "checkpoints" / "4")[-1]
    with open(target, "r+b") as f:
        f.write(b"\0" * 512)
    run = workdir_reader.load_run(str(copy))
    assert run.step == 2
    assert "step 4" in caplog.text and "corrupt" in caplog.text


def test_non_finite_state_is_never_saved(finished, tmp_path):
    state = finished[1].state
    nan_state = state.replace(
        opt_state=jax.tree.map(
            lambda x: x * np.nan if x.dtype == np.float32 else x, state.opt_state
        )
    )
    with checkpoint.CheckpointStore(str(tmp_path)) as store:
        with pytest.raises(FloatingPointError, match=r"Non-finite values at step 4 in opt_state"):
            store.save(nan_state)
        assert store.all_steps() == []


def test_diverging_run_stops_with_every_save_complete_and_finite(tmp_path):
    config = _config(num_train_steps=8, checkpoint_every_steps=1, log_every_steps=1)
    config.optimizer.learning_rate = 1e6
    config.optimizer.warmup_steps = 0
    with pytest.raises(FloatingPointError, match=r"Non-finite .* at step (\d+)") as error:
        train_and_evaluate(config, str(tmp_path))
    directory = tmp_path / "checkpoints"
    assert not [p for p in directory.iterdir() if "tmp" in p.name]
    steps = sorted(int(p.name) for p in directory.iterdir() if p.name.isdigit())
    assert steps, "at least the first step was finite and saved"
    assert f"The newest checkpoint, step {steps[-1]} " in str(error.value)
    with ocp.CheckpointManager(directory) as manager:
        for step in steps:
            assert checkpoint.verify_step(str(directory / str(step))) is None
            assert _all_finite(manager.restore(step, args=ocp.args.StandardRestore()))


def test_sigterm_during_final_eval_keeps_the_final_checkpoint(finished, tmp_path):
    # No eval pictures: their batch is read before training and would take the signal.
    config = _config(eval_images=0, **{"data.fake_sigterm_at_eval_batch": 1})
    stopped = train_and_evaluate(config, str(tmp_path))
    assert stopped.preempted and int(stopped.state.step) == 4
    with checkpoint.CheckpointStore(str(tmp_path)) as store:
        assert store.latest_step() == 4
        restored = store.restore_latest(finished[1].state)
    _assert_trees_equal(restored.params, finished[1].state.params)
    # The rerun trains nothing and only evaluates.
    config = _config(eval_images=0, resume_changes="data.fake_sigterm_at_eval_batch")
    rerun = train_and_evaluate(config, str(tmp_path))
    assert not rerun.preempted
    assert rerun.eval_metrics == finished[1].eval_metrics


def test_sigint_requests_a_stop_and_a_second_one_interrupts():
    import signal

    from resize_jax.train import signals

    before = signal.getsignal(signal.SIGINT)
    with signals.StopRequest() as stop:
        signal.raise_signal(signal.SIGINT)  # What the loop sees as a stop request.
        assert stop.requested and stop.signal_name == "SIGINT" and stop.agreed(1, 10)
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
        signal.raise_signal(signal.SIGTERM)  # Still only a request.
    assert signal.getsignal(signal.SIGINT) is before


def test_changed_config_is_refused_naming_the_fields_unless_allowed(finished, copy):
    before = (copy / "config.json").read_text()
    with pytest.raises(ValueError, match=r"`config.optimizer.learning_rate`: saved 0.003, now 0.1"):
        train_and_evaluate(_config(**{"optimizer.learning_rate": 0.1}), str(copy))
    with pytest.raises(ValueError, match=r"`config.frontend.name`: saved 'fixed', now 'learned'"):
        config = train_fakes.tiny_config("learned", num_train_steps=4, checkpoint_every_steps=2)
        train_and_evaluate(config, str(copy))
    assert (copy / "config.json").read_text() == before
    # Allowed explicitly: the run continues from step 4 to 6.
    longer = train_and_evaluate(
        _config(num_train_steps=6, resume_changes="num_train_steps"), str(copy)
    )
    assert int(longer.state.step) == 6
    assert json.loads((copy / "config.json").read_text())["num_train_steps"] == 6


def test_invalid_value_does_not_touch_an_existing_run(copy):
    before = (copy / "config.json").read_text()
    with pytest.raises(ValueError, match=r"`config.frontend.method` must be one of"):
        train_and_evaluate(_config(**{"frontend.method": "area"}), str(copy))
    assert (copy / "config.json").read_text() == before


def test_second_live_run_is_refused_and_a_stale_lock_taken_over(tmp_path, caplog):
    busy = r"is in use by another live run \(pid \d+ on host"
    with workdir_guard.locked(str(tmp_path)), pytest.raises(ValueError, match=busy):
        train_and_evaluate(_config(), str(tmp_path))
    # A run killed with SIGKILL leaves its record but no lock (the kernel released it).
    (tmp_path / workdir_guard.LOCK_FILE).write_text(
        json.dumps({"pid": 999999, "host": "h", "started": "t"})
    )
    with workdir_guard.locked(str(tmp_path)):
        pass
    assert "stale lock" in caplog.text and "pid 999999" in caplog.text


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"keep_checkpoints": 0}, r"`config.keep_checkpoints` must be an integer >= 1, got 0"),
        ({"optimizer.learning_rate": -1.0}, r"`config.optimizer.learning_rate` must be a finite"),
        ({"optimizer.learning_rate": 1e39}, r"`config.optimizer.learning_rate` .*float32"),
        ({"optimizer.learning_rate": float("nan")}, r"`config.optimizer.learning_rate`"),
        ({"optimizer.grad_clip_norm": -1.0}, r"`config.optimizer.grad_clip_norm`"),
        ({"optimizer.b1": 1.5}, r"`config.optimizer.b1` must be a finite number in \[0.0, 1.0\)"),
        (
            {"optimizer.warmup_steps": -5},
            r"`config.optimizer.warmup_steps` must be an integer >= 0",
        ),
        ({"checkpoint_every_steps": -1}, r"`config.checkpoint_every_steps` must be an integer"),
        ({"eval_every_steps": -1}, r"`config.eval_every_steps` must be an integer >= 0"),
        ({"optimizer.accumulation_steps": 0}, r"`config.optimizer.accumulation_steps`"),
        ({"frontend.num_res_block": 2}, r"`config.frontend.num_res_block` is not a field"),
    ],
)
def test_bad_value_is_refused_by_name_before_anything_is_written(tmp_path, overrides, message):
    with pytest.raises(ValueError, match=message):
        train_and_evaluate(_config(**overrides), str(tmp_path / "w"))
    assert not (tmp_path / "w").exists()


@pytest.mark.parametrize(
    "name", ["default", "imagenet_resizer", "cub_saliency", "seg_enet", "vit_resizer"]
)
def test_shipped_configs_pass_the_checks(name):
    import importlib.util

    path = os.path.join(os.path.dirname(__file__), "..", "configs", f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"config_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for arg in ("frontend=fixed", "frontend=learned", "frontend=saliency,runlocal"):
        config_check.check_config(module.get_config(arg))


def test_unknown_field_suggests_the_known_one():
    config = train_fakes.tiny_config("learned")
    config.frontend.num_res_block = 2
    with pytest.raises(ValueError, match=r"Did you mean `config.frontend.num_res_blocks`\?"):
        config_check.check_config(config)


def test_workdir_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match=r"`workdir`=.* exists and is not a directory"):
        train_and_evaluate(_config(), str(tmp_path / "file"))


def test_train_step_too_large_for_the_device_is_refused_before_running(tmp_path, monkeypatch):
    from resize_jax.train import memory_check

    monkeypatch.setattr(memory_check, "device_memory_bytes", lambda device=None: 1 << 16)
    with pytest.raises(ValueError, match=r"GiB per device.*`config.frontend.output_shape`"):
        train_and_evaluate(_config(), str(tmp_path))
    assert not (tmp_path / "config.json").exists()
    assert not os.listdir(tmp_path / "checkpoints")


def test_command_line_typo_names_the_field_and_the_closest_one(tmp_path):
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    command = [
        sys.executable,
        os.path.join(root, "train.py"),
        "--config",
        os.path.join(root, "configs", "default.py") + ":frontend=learned,runlocal",
        "--workdir",
        str(tmp_path / "w"),
        "--config.frontend.num_res_block=2",
    ]
    env = {**os.environ, "PYTHONPATH": root, "JAX_PLATFORMS": "cpu"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    assert "`config.frontend.num_res_block` is not a field of the config" in done.stderr
    assert "Did you mean `config.frontend.num_res_blocks`?" in done.stderr
    assert not (tmp_path / "w").exists()


# Ops and modules: bad arguments refused by name, NaN kept local, layouts flagged.


@pytest.mark.parametrize(
    "make",
    [
        lambda: ops.resize(np.zeros((1, 8, 8, 3)), (4, 4), antialias="no"),
        lambda: frontends.FixedResizer((4, 4), antialias="no"),
        lambda: frontends.LearnedResizer((4, 4), antialias="no"),
        lambda: frontends.SaliencySampler((4, 4), antialias="no"),
    ],
)
def test_string_for_antialias_is_refused(make):
    with pytest.raises(ValueError, match=r"`antialias` must be True or False, got 'no'"):
        make()


def test_string_for_separable_is_refused():
    saliency = np.full((1, 4, 4), 1 / 16, np.float32)
    with pytest.raises(ValueError, match=r"`separable` must be True or False, got 'no'"):
        ops.saliency_grid(saliency, (8, 8), separable="no")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"bn_epsilon": -1.0}, r"`bn_epsilon` must be a positive finite number, got -1.0"),
        ({"bn_momentum": 5.0}, r"`bn_momentum` must be a finite number in \[0, 1\], got 5.0"),
    ],
)
def test_learned_resizer_batch_norm_settings_are_checked(kwargs, message):
    with pytest.raises(ValueError, match=message):
        frontends.LearnedResizer((4, 4), **kwargs)


def _mirrored_grid(batch=2, h=6, w=7):
    grid = np.asarray(ops.identity_grid(batch, h, w, np.float32)).copy()
    grid[1, ..., 0] = grid[1, :, ::-1, 0]  # Batch item 1 mirrored left-right.
    return grid


def test_invert_grid_refuses_a_mirrored_grid_and_is_nan_under_jit():
    grid = _mirrored_grid()
    with pytest.raises(ValueError, match=r"`grid` must be monotone.*batch items \[1\]"):
        ops.invert_grid(grid, (6, 7))
    separable = ops.SeparableGrid(x=grid[:, 0, :, 0], y=grid[:, :, 0, 1])
    with pytest.raises(ValueError, match=r"`grid` must be monotone.*batch items \[1\]"):
        ops.invert_grid(separable, (6, 7))
    traced = jax.jit(lambda g: ops.invert_grid(g, (6, 7)))(separable)
    assert np.isfinite(np.asarray(traced.x[0])).all() and np.isnan(np.asarray(traced.x[1])).all()


def test_nan_image_is_blamed_on_images_not_the_saliency_map():
    images = np.zeros((1, 16, 16, 3), np.float32)
    sampler = frontends.SaliencySampler(
        (8, 8), saliency_input_shape=(16, 16), grid_shape=(4, 4), pad=2
    )
    variables = sampler.init(jax.random.key(0), images)
    images[0, 3, 4, 1] = np.nan
    with pytest.raises(ValueError, match=r"`images` must be finite"):
        sampler.apply(variables, images)


def test_nearest_resize_keeps_one_nan_pixel_local():
    images = np.random.default_rng(0).random((1, 9, 11, 2)).astype(np.float32)
    images[0, 4, 5, 0] = np.nan
    for shape in ((5, 7), (20, 23), (9, 4)):
        ours = np.asarray(ops.resize(images, shape, method="nearest"))
        reference = np.asarray(jax.image.resize(images, (1, *shape, 2), "nearest"))
        np.testing.assert_array_equal(np.isnan(ours), np.isnan(reference))
        # At most the outputs that copy the NaN pixel (none when downscaling skips it).
        assert np.isnan(ours).sum() <= np.ceil(shape[0] / 9) * np.ceil(shape[1] / 11)
        assert np.isnan(ours).any() or shape[1] < 11  # Only a downscale can skip the pixel.
        np.testing.assert_array_equal(ours[..., 1], reference[..., 1])


def test_nchw_batch_gets_a_layout_warning_and_nhwc_none():
    import warnings

    with pytest.warns(UserWarning, match=r"\(2, 3, 97, 131\), which looks like NCHW"):
        ops.resize(np.zeros((2, 3, 97, 131), np.float32), (32, 32))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ops.resize(np.zeros((2, 97, 131, 3), np.float32), (32, 32))


# Data: unreadable files skipped and named, malformed folders and AVA ids refused.


def _image_folder(root, labels=("cat", "dog"), count=2):
    from PIL import Image

    for label_id, label in enumerate(labels):
        for i in range(count):
            path = root / "train" / label / f"{i}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            pixels = np.random.default_rng(i).integers(0, 256, (48, 64, 3), dtype=np.uint8)
            pixels[..., 0] = 100 * label_id
            Image.fromarray(pixels).save(path, quality=90)
    return root


def _folder_config(root):
    from resize_jax import data

    config = data.default_config()
    config.name, config.root, config.image_size = "folder", str(root), (16, 16)
    config.eval_split = "train"
    return config


def test_folder_skips_corrupt_jpeg_bodies_and_bad_symlinks_naming_them(tmp_path, caplog):
    import logging

    from resize_jax.data import pipeline  # Not `resize_jax.data`: the fakes replace it here.

    root = _image_folder(tmp_path, count=3)
    body = (root / "train" / "cat" / "0.jpg").read_bytes()
    (root / "train" / "cat" / "0.jpg").write_bytes(body[: len(body) * 2 // 3])  # Truncated.
    garbage = np.random.default_rng(0).bytes(2048)
    middle = len(body) // 2
    (root / "train" / "dog" / "1.jpg").write_bytes(body[:middle] + garbage + body[middle + 2048 :])
    (root / "train" / "dog" / "dangling.jpg").symlink_to(root / "nowhere.jpg")
    (root / "train" / "dog" / "loop.jpg").symlink_to(root / "train" / "dog" / "loop.jpg")
    with caplog.at_level(logging.WARNING):
        config = _folder_config(root)
        info = pipeline.get_info(config)
    assert info.num_train == 4
    for name in ("cat/0.jpg", "dog/1.jpg", "dangling.jpg", "loop.jpg"):
        assert name in caplog.text
    assert "Skipped 4 unreadable image file(s)" in caplog.text
    batches = list(pipeline.eval_iterator(config, batch_size=4))  # Decodes every kept file.
    assert sum(b["mask"].sum() for b in batches) == 4


def test_folder_refuses_an_empty_class_and_training_refuses_a_single_class(tmp_path):
    from resize_jax import tasks
    from resize_jax.data import pipeline

    root = _image_folder(tmp_path / "empty")
    (root / "train" / "bird").mkdir()
    with pytest.raises(ValueError, match=r"label directories without a readable image: \['bird'\]"):
        pipeline.get_info(_folder_config(root))
    single = pipeline.get_info(_folder_config(_image_folder(tmp_path / "single", labels=("cat",))))
    with pytest.raises(ValueError, match=r"at least 2 classes; the dataset has 1 \(\['cat'\]\)"):
        tasks.get_task("classification").check_dataset(single)


@pytest.mark.parametrize("image_id", ["../../x", "/abs/path", ".."])
def test_ava_image_id_must_stay_inside_image_dir(tmp_path, image_id):
    from resize_jax.data import ava

    line = f"1 {image_id} " + " ".join(["1"] * 10) + " 0 0 0\n"
    (tmp_path / "ratings.txt").write_text(line)
    with pytest.raises(ValueError, match=r"line 1: the image id must be a file name inside"):
        ava.parse_ratings(str(tmp_path / "ratings.txt"))
