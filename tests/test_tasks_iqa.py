"""Image quality: EMD loss by hand, SRCC/PLCC against scipy, binary accuracy, eval over
masked batches, input checks."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special
import scipy.stats

from resize_jax import data
from resize_jax.tasks import ImageQuality, emd_loss, get_task, mean_scores
from resize_jax.tasks.iqa import pearson, rank_average_ties, spearman


@pytest.mark.parametrize(
    ("p", "q", "r", "expected"),
    [
        # CDFs (1, 1, 1) and (0, 0, 1): differences (1, 1, 0).
        ([1, 0, 0], [0, 0, 1], 2.0, math.sqrt(2 / 3)),
        ([1, 0, 0], [0, 0, 1], 1.0, 2 / 3),
        # CDFs (.5, 1, 1) and (0, .5, 1): differences (.5, .5, 0).
        ([0.5, 0.5, 0], [0, 0.5, 0.5], 2.0, math.sqrt((0.25 + 0.25) / 3)),
        # Ten bins, all mass on score 5 against all on score 6: one CDF step differs.
        (np.eye(10)[4], np.eye(10)[5], 2.0, math.sqrt(1 / 10)),
        # Ten bins, (0.2 at 1, 0.8 at 10) against uniform: CDF_p = 0.2 for k < 10.
        (
            [0.2, 0, 0, 0, 0, 0, 0, 0, 0, 0.8],
            [0.1] * 10,
            2.0,
            math.sqrt(sum((0.2 - 0.1 * k) ** 2 for k in range(1, 10)) / 10),
        ),
    ],
)
def test_emd_against_hand_computed_values(p, q, r, expected):
    value = emd_loss(jnp.asarray([p], jnp.float32), jnp.asarray([q], jnp.float32), r)
    np.testing.assert_allclose(value, [expected], rtol=1e-6)


def test_emd_zero_for_identical_histograms_with_finite_gradient():
    logits = jax.random.normal(jax.random.key(0), (4, 10))
    target = jax.nn.softmax(logits)
    loss = lambda z: emd_loss(jax.nn.softmax(z), target).mean()
    np.testing.assert_allclose(loss(logits), 0.0, atol=1e-7)
    grad = jax.grad(loss)(logits)
    assert np.isfinite(np.asarray(grad)).all()
    # Away from the optimum the gradient is finite and not zero.
    other = jax.grad(loss)(logits + jnp.arange(10.0) * 0.3)
    assert np.isfinite(np.asarray(other)).all() and float(jnp.abs(other).max()) > 1e-4
    # Exactly equal inputs (no softmax round-off): still finite, zero.
    exact = jax.grad(lambda p: emd_loss(p, target).sum())(target)
    np.testing.assert_array_equal(exact, np.zeros_like(exact))


def test_rank_correlations_match_scipy():
    rng = np.random.default_rng(0)
    for n in (2, 7, 101):
        x = np.round(rng.normal(5, 1, n), 1)  # Rounded: ties on purpose.
        y = np.round(x + rng.normal(0, 1, n), 1)
        np.testing.assert_allclose(rank_average_ties(x), scipy.stats.rankdata(x))
        np.testing.assert_allclose(spearman(x, y), scipy.stats.spearmanr(x, y)[0], atol=1e-12)
        np.testing.assert_allclose(pearson(x, y), scipy.stats.pearsonr(x, y)[0], atol=1e-12)
    assert math.isnan(pearson([1.0], [2.0])) and math.isnan(spearman([3, 3, 3], [1, 2, 3]))


def _iqa_batches(rng, sizes, real):
    """Random logits and rating counts in batches; padding (mask 0) after `real` examples."""
    batches, seen = [], 0
    for size in sizes:
        counts = rng.integers(0, 40, (size, 10)).astype(np.float32)
        mask = np.zeros(size, np.float32)
        mask[: max(0, min(size, real - seen))] = 1.0
        counts[mask == 0] = 0.0  # Padding examples carry a zero histogram, as the pipeline's.
        seen += size
        logits = rng.normal(0, 1, (size, 10)).astype(np.float32)
        batches.append((logits, {"label": counts, "mask": mask}))
    return batches


def test_eval_over_masked_batches_matches_scipy():
    task = get_task("image_quality")
    rng = np.random.default_rng(1)
    batches = _iqa_batches(rng, sizes=(16, 16, 16), real=41)
    stats_fn = jax.jit(lambda logits, batch: task.eval_statistics(logits, {}, batch))
    total = None
    for logits, batch in batches:
        total = task.accumulate(total, jax.device_get(stats_fn(logits, batch)))
    metrics = task.finalize(total)

    logits = np.concatenate([b[0] for b in batches])[:41]
    counts = np.concatenate([b[1]["label"] for b in batches])[:41]
    probs = scipy.special.softmax(logits.astype(np.float64), axis=-1)
    hist = counts / counts.sum(-1, keepdims=True)
    pred, true = probs @ np.arange(1, 11), hist @ np.arange(1, 11)
    emd = np.sqrt(np.mean((np.cumsum(probs, -1) - np.cumsum(hist, -1)) ** 2, -1))
    assert metrics["count"] == 41
    np.testing.assert_allclose(metrics["srcc"], scipy.stats.spearmanr(pred, true)[0], atol=1e-5)
    np.testing.assert_allclose(metrics["plcc"], scipy.stats.pearsonr(pred, true)[0], atol=1e-5)
    np.testing.assert_allclose(metrics["loss"], emd.mean(), rtol=1e-5)
    np.testing.assert_allclose(metrics["binary_accuracy"], np.mean((pred > 5) == (true > 5)))


def test_binary_accuracy_by_hand_and_training_loss():
    task = ImageQuality()
    # Targets with mean scores 3, 8, 5 (exactly 5 is not "high"); predictions 7, 8, 4.
    targets = np.zeros((3, 10), np.float32)
    targets[0, 2] = targets[1, 7] = targets[2, 4] = 1.0
    logits = np.full((3, 10), -30.0, np.float32)
    logits[0, 6] = logits[1, 7] = logits[2, 3] = 30.0
    np.testing.assert_allclose(mean_scores(jax.nn.softmax(logits)), [7, 8, 4], atol=1e-4)
    loss, metrics = task.loss(jnp.asarray(logits), {}, {"label": jnp.asarray(targets)})
    np.testing.assert_allclose(metrics["binary_accuracy"], 2 / 3)  # wrong, right, right
    np.testing.assert_allclose(metrics["mean_score_abs_error"], (4 + 0 + 1) / 3, atol=1e-4)
    expected = np.mean([math.sqrt(4 / 10), 0.0, math.sqrt(1 / 10)])
    np.testing.assert_allclose(loss, expected, atol=1e-5)
    # Raw rating counts are normalised: the same loss as the histograms.
    counts_loss, _ = task.loss(jnp.asarray(logits), {}, {"label": jnp.asarray(targets * 37)})
    np.testing.assert_allclose(counts_loss, loss, rtol=1e-6)


def test_constant_predictions_give_nan_correlations():
    task = ImageQuality()
    labels = np.eye(10, dtype=np.float32)[[1, 4, 7]]
    batch = {"label": labels, "mask": np.ones(3, np.float32)}
    stats = task.eval_statistics(jnp.zeros((3, 10)), {}, batch)
    metrics = task.finalize(task.accumulate(None, jax.device_get(stats)))
    assert math.isnan(metrics["srcc"]) and math.isnan(metrics["plcc"])
    assert metrics["count"] == 3


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"r": 0.5}, r"`r` must be a finite number >= 1"), ({"threshold": "5"}, r"`threshold`")],
)
def test_bad_fields_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ImageQuality(**kwargs)


def test_bad_inputs_raise():
    task = ImageQuality()
    with pytest.raises(ValueError, match=r"`batch\['label'\]` must be rating histograms"):
        task.loss(jnp.zeros((2, 10)), {}, {"label": jnp.zeros((2, 5))})
    with pytest.raises(ValueError, match=r"`outputs` must be f\[B, K\] histograms"):
        task.loss(jnp.zeros((2, 4, 4, 10)), {}, {"label": jnp.zeros((2, 10))})
    with pytest.raises(ValueError, match=r"`probs` and `targets` must have the same shape"):
        emd_loss(jnp.zeros((2, 10)), jnp.zeros((2, 9)))


def test_check_dataset_refuses_other_tasks():
    info = lambda task: data.DatasetInfo(task, 10, 1, 1, (8, 8, 3), None)
    ImageQuality().check_dataset(info("image_quality"))
    with pytest.raises(ValueError, match=r"needs an image-quality dataset.*'segmentation'"):
        ImageQuality().check_dataset(info("segmentation"))
