"""Regression (gaze): losses by hand, normalisation and its record, exact masked mean /
median / 90th-percentile errors over batches, input checks."""

import math
import types

import jax.numpy as jnp
import numpy as np
import pytest

from resize_jax.tasks import Gaze, Regression, get_task, regression_loss

INFO = types.SimpleNamespace(
    task="regression", num_classes=2, target_mean=(1.0, -9.0), target_std=(4.0, 2.0)
)


def test_losses_by_hand():
    p = jnp.asarray([[0.0, 0.0], [3.0, -4.0]])
    y = jnp.asarray([[0.5, 2.0], [0.0, 0.0]])
    np.testing.assert_allclose(regression_loss(p, y, "l2"), [0.25 + 4.0, 9.0 + 16.0])
    # Huber with delta 1: ½x² inside, |x| − ½ outside; summed over the dimensions.
    np.testing.assert_allclose(regression_loss(p, y, "smooth_l1"), [0.125 + 1.5, 2.5 + 3.5])
    np.testing.assert_allclose(regression_loss(p, y, "smooth_l1", delta=2.0), [0.125 + 2.0, 4 + 6])
    with pytest.raises(ValueError, match="`kind`"):
        regression_loss(p, y, "l1")


def test_normalisation_is_bound_from_the_dataset_and_recorded():
    task = get_task("regression", loss_type="l2").bind_dataset(INFO)
    assert task.target_mean == (1.0, -9.0) and task.target_std == (4.0, 2.0)
    assert task.recorded_fields() == {"target_mean": (1.0, -9.0), "target_std": (4.0, 2.0)}
    # The network learns (y − mean) / std: an output of (1, −1) is (5, −11) in cm.
    np.testing.assert_allclose(task.predictions(jnp.asarray([[1.0, -1.0]])), [[5.0, -11.0]])
    batch = {"label": jnp.asarray([[5.0, -11.0], [1.0, -9.0]])}
    loss, metrics = task.loss(jnp.asarray([[1.0, -1.0], [1.0, 1.0]]), {}, batch)
    # Example 1 is exact; example 2 is off by (1, 1) normalised = (4, 2) cm.
    np.testing.assert_allclose(loss, (0.0 + 2.0) / 2)
    np.testing.assert_allclose(metrics["mean_error"], math.hypot(4, 2) / 2, rtol=1e-6)
    # Statistics given in the config win; without normalisation outputs are the targets.
    given = Regression(target_mean=(0.0, 0.0), target_std=(1.0, 1.0)).bind_dataset(INFO)
    assert given.target_mean == (0.0, 0.0)
    raw = Regression(normalize=False).bind_dataset(INFO)
    np.testing.assert_allclose(raw.predictions(jnp.asarray([[1.0, 2.0]])), [[1.0, 2.0]])
    # A constant target (std 0) is divided by 1.
    flat = types.SimpleNamespace(**{**vars(INFO), "target_std": (0.0, 2.0)})
    assert Regression().bind_dataset(flat).target_std == (1.0, 2.0)


def test_eval_metrics_are_exact_over_masked_batches():
    rng = np.random.default_rng(0)
    task = Gaze().bind_dataset(INFO)
    targets = rng.normal(size=(23, 2)) * 3
    outputs = rng.normal(size=(23, 2))
    errors = np.linalg.norm(np.asarray(task.predictions(outputs)) - targets, axis=-1)
    total = None
    for start in range(0, 32, 8):  # 23 examples in 4 batches of 8, the last 1 padded ×7
        stop = min(start + 8, 23)
        pad = 8 - (stop - start)
        batch = {
            "label": jnp.asarray(np.concatenate([targets[start:stop], np.zeros((pad, 2))])),
            "mask": jnp.asarray([1.0] * (stop - start) + [0.0] * pad),
        }
        out = jnp.asarray(np.concatenate([outputs[start:stop], 9 * np.ones((pad, 2))]))
        total = task.accumulate(total, task.eval_statistics(out, {}, batch))
        if stop == 23:
            break
    metrics = task.finalize(total)
    assert metrics["count"] == 23
    np.testing.assert_allclose(metrics["mean_error"], errors.mean(), rtol=1e-6)
    np.testing.assert_allclose(metrics["median_error"], np.median(errors), rtol=1e-6)
    np.testing.assert_allclose(metrics["p90_error"], np.percentile(errors, 90), rtol=1e-6)
    predictions = np.asarray(task.predictions(outputs))
    np.testing.assert_allclose(
        [metrics["mae/0"], metrics["mae/1"]], np.abs(predictions - targets).mean(0), rtol=1e-6
    )
    normalised = (targets - np.asarray(INFO.target_mean)) / np.asarray(INFO.target_std)
    loss = regression_loss(jnp.asarray(outputs), jnp.asarray(normalised), "smooth_l1")
    np.testing.assert_allclose(metrics["loss"], np.asarray(loss).mean(), rtol=1e-5)


def test_registry_and_gaze_preset():
    gaze = get_task("gaze")
    assert isinstance(gaze, Gaze) and gaze.loss_type == "smooth_l1" and gaze.num_targets == 2
    assert get_task("regression").loss_type == "l2"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"loss_type": "l1"}, "`loss_type`"),
        ({"delta": 0.0}, "`delta`"),
        ({"normalize": "yes"}, "`normalize`"),
        ({"num_targets": -1}, "`num_targets`"),
        ({"target_mean": (0.0,), "target_std": ()}, "same length"),
        ({"target_mean": (0.0,), "target_std": (0.0,)}, "`target_std` must be positive"),
        ({"target_mean": ("a",), "target_std": (1.0,)}, "`target_mean`"),
        ({"target_mean": (0.0,), "target_std": (1.0,), "num_targets": 2}, "`num_targets`=2"),
    ],
)
def test_bad_settings_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Regression(**kwargs)


def test_bad_batches_and_datasets_raise():
    task = Gaze().bind_dataset(INFO)
    good = {"label": jnp.zeros((4, 2)), "mask": jnp.ones(4)}
    with pytest.raises(ValueError, match=r"`outputs` must be f\[B, D\]"):
        task.loss(jnp.zeros((4, 2, 1)), {}, good)
    with pytest.raises(ValueError, match="D = 2"):
        task.loss(jnp.zeros((4, 3)), {}, {"label": jnp.zeros((4, 3))})
    with pytest.raises(ValueError, match=r"`batch\['label'\]`"):
        task.eval_statistics(
            jnp.zeros((4, 2)), {}, {"label": jnp.zeros((4,)), "mask": good["mask"]}
        )
    with pytest.raises(ValueError, match="bind_dataset"):
        Gaze().loss(jnp.zeros((4, 2)), {}, good)  # normalising, statistics never given
    with pytest.raises(ValueError, match="regression dataset"):
        task.check_dataset(types.SimpleNamespace(task="classification", num_classes=2))
    with pytest.raises(ValueError, match="num_targets"):
        task.check_dataset(types.SimpleNamespace(task="regression", num_classes=3))
    none = types.SimpleNamespace(
        task="regression", num_classes=2, target_mean=None, target_std=None
    )
    with pytest.raises(ValueError, match="target statistics"):
        Gaze().bind_dataset(none)
