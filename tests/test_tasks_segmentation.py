"""Segmentation: mIoU by hand (ignored and absent classes), loss over labelled pixels, the way
back to full resolution (resize, unwarp), flat saliency against the fixed resizer, checks."""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from resize_jax import data, ops
from resize_jax.frontends import FixedResizer, SaliencySampler
from resize_jax.models import FrontEndModel
from resize_jax.tasks import Segmentation, full_resolution_logits, get_task

IGNORE = 255


def _one_hot_logits(predictions, num_classes, scale=10.0):
    return scale * jax.nn.one_hot(jnp.asarray(predictions), num_classes)


def _evaluate(task, batches):
    stats_fn = jax.jit(lambda logits, aux, batch: task.eval_statistics(logits, aux, batch))
    total = None
    for logits, aux, batch in batches:
        total = task.accumulate(total, jax.device_get(stats_fn(logits, aux, batch)))
    return task.finalize(total)


def test_miou_by_hand_with_an_ignored_and_an_absent_class():
    labels = np.array([[[0, 0, 1, IGNORE], [1, 3, 3, IGNORE]]], np.int32)
    # Class 2 is predicted only on an ignored pixel: absent from what is counted.
    predictions = np.array([[[0, 1, 1, 2], [1, 3, 0, 0]]])
    # Counted pixels (true → predicted): 0→0, 0→1, 1→1, 1→1, 3→3, 3→0.
    # IoU_0 = 1 / (2 + 2 − 1) = 1/3; IoU_1 = 2 / (2 + 3 − 2) = 2/3; IoU_3 = 1 / (2 + 1 − 1) =
    # 1/2; class 2 absent from labels and counted predictions → excluded: mIoU = 1/2.
    # A padding example (mask 0) with every pixel wrong, in a second batch, must not count.
    padding = np.full((1, 2, 4), 2, np.int32)
    batches = [
        (_one_hot_logits(predictions, 4), {}, {"label": labels, "mask": np.ones(1, np.float32)}),
        (
            _one_hot_logits(np.zeros((1, 2, 4), int), 4),
            {},
            {"label": padding, "mask": np.zeros(1, np.float32)},
        ),
    ]
    metrics = _evaluate(Segmentation(ignore_label=IGNORE), batches)
    np.testing.assert_allclose(metrics["miou"], 0.5)
    np.testing.assert_allclose(
        [metrics[f"iou/{k}"] for k in (0, 1, 3)], [1 / 3, 2 / 3, 1 / 2], rtol=1e-12
    )
    assert math.isnan(metrics["iou/2"])
    np.testing.assert_allclose(metrics["pixel_accuracy"], 4 / 6)
    np.testing.assert_allclose(metrics["mean_class_accuracy"], (1 / 2 + 1 + 1 / 2) / 3)
    assert metrics["count"] == 1


def test_loss_is_the_mean_over_labelled_pixels_and_ignores_void():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 2, (2, 4, 4, 3)).astype(np.float32)
    labels = rng.integers(0, 3, (2, 4, 4)).astype(np.int32)
    labels[0, :2] = IGNORE
    task = Segmentation()
    loss, metrics = jax.jit(task.loss)(jnp.asarray(logits), {}, {"label": labels})
    valid = labels != IGNORE
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    ce = -np.take_along_axis(log_probs, np.where(valid, labels, 0)[..., None], -1)[..., 0]
    np.testing.assert_allclose(loss, ce[valid].mean(), rtol=1e-5)
    np.testing.assert_allclose(
        metrics["pixel_accuracy"], (logits.argmax(-1) == labels)[valid].mean(), rtol=1e-6
    )
    # Void pixels carry no gradient.
    grad = jax.grad(lambda z: task.loss(z, {}, {"label": labels})[0])(jnp.asarray(logits))
    assert float(jnp.abs(grad[0, :2]).max()) == 0.0

    weights = (0.5, 2.0, 1.0)
    weighted, _ = jax.jit(Segmentation(class_weights=weights).loss)(
        jnp.asarray(logits), {}, {"label": labels}
    )
    w = np.asarray(weights)[np.where(valid, labels, 0)]
    np.testing.assert_allclose(weighted, (w * ce)[valid].sum() / w[valid].sum(), rtol=1e-5)


def test_the_way_back_resize_identity_and_unwarp():
    logits = jax.random.normal(jax.random.key(0), (2, 4, 6, 3))
    grid = ops.identity_grid(2, 4, 6)
    no_frontend = FrontEndModel(frontend=None, backbone=_PixelClassifier(3))
    sampler = SaliencySampler((4, 6), grid_shape=(7, 7), pad=6)

    @jax.jit
    def paths(logits, grid):
        return (
            no_frontend.to_input(logits, {"frontend": {}}, (4, 6)),
            FixedResizer((4, 6)).to_input(logits, {}, (8, 12)),
            ops.resize(logits, (8, 12)),
            sampler.to_input(logits, {"grid": grid}, (4, 6)),
        )

    same, up, resized, unwarped = paths(logits, grid)
    np.testing.assert_array_equal(same, logits)
    np.testing.assert_allclose(up, resized, atol=1e-6)
    np.testing.assert_allclose(unwarped, logits, atol=1e-5)  # Identity grid: no change.
    # The old entry point still works, with a deprecation warning.
    with pytest.warns(DeprecationWarning, match="model.to_input"):
        old = full_resolution_logits(logits, {"grid": grid}, (4, 6))
    np.testing.assert_allclose(old, unwarped, atol=1e-6)


def test_a_task_not_bound_to_a_frontend_model_refuses_its_aux():
    task = Segmentation()
    batch = {"label": jnp.zeros((2, 4, 6), jnp.int32)}
    aux = {"frontend": {"grid": ops.identity_grid(2, 4, 6)}}
    with pytest.raises(ValueError, match=r"task.for_model\(model\)"):
        task.loss(jnp.zeros((2, 4, 6, 3)), aux, batch)


class _FlatSaliency(nn.Module):
    """A saliency network with a constant output: the sampler's grid is uniform."""

    @nn.compact
    def __call__(self, x):
        return jnp.zeros((*x.shape[:3], 1), x.dtype)


class _RandomSaliency(nn.Module):
    """A saliency network with learnable, non-flat logits on a 7×7 grid."""

    @nn.compact
    def __call__(self, x):
        bias = self.param("logits", nn.initializers.normal(1.5), (7, 7, 1))
        return jnp.broadcast_to(bias, (x.shape[0], 7, 7, 1))


class _PixelClassifier(nn.Module):
    """A dense 'backbone': a 1×1 convolution of the (resized) image to class logits."""

    num_classes: int

    @nn.compact
    def __call__(self, images, *, train=False):
        del train  # Unused.
        return nn.Conv(self.num_classes, (1, 1), name="head")(images), {}


def _blocky_scene(key, size, num_classes, block):
    """Label maps of `block`-pixel squares with void squares, and images whose channels are
    the one-hot labels (void: all zero)."""
    cells = jax.random.randint(key, (2, size // block, size // block), 0, num_classes + 1)
    labels = jnp.repeat(jnp.repeat(cells, block, 1), block, 2)
    labels = jnp.where(labels == num_classes, IGNORE, labels).astype(jnp.int32)
    return jax.nn.one_hot(labels, num_classes), labels


def _miou_through(frontend, images, labels, num_classes, params=None):
    model = FrontEndModel(frontend=frontend, backbone=_PixelClassifier(num_classes))
    task = Segmentation().for_model(model)
    batch = {"label": labels, "mask": jnp.ones(labels.shape[0])}

    @jax.jit
    def run(images):
        variables = model.init(jax.random.key(1), images)
        if params is not None:
            variables = {"params": {**variables["params"], "backbone": params}}
        logits, aux = model.apply(variables, images)
        stats = task.eval_statistics(logits, aux, batch)
        return stats, model.to_input(logits, aux, labels.shape[1:]), aux

    stats, full, aux = run(images)
    return task.finalize(task.accumulate(None, jax.device_get(stats))), full, aux


@pytest.mark.parametrize("separable", [False, True])
def test_flat_saliency_sampler_gives_the_fixed_resizer_miou(separable):
    num_classes, size = 4, 32
    images, labels = _blocky_scene(jax.random.key(0), size, num_classes, 4)
    # An imperfect, random classifier, shared by both paths: a non-trivial mIoU.
    backbone = {
        "head": {
            "kernel": jax.random.normal(jax.random.key(2), (1, 1, 4, 4)),
            "bias": jnp.zeros(4),
        }
    }
    sampler = SaliencySampler(
        (size, size),
        saliency_net=_FlatSaliency(),
        saliency_input_shape=(16, 16),
        grid_shape=(7, 7),
        pad=6,
        separable=separable,
    )
    # Identity-like: same output size, so the flat sampler's uniform grid is the identity.
    fixed, fixed_full, _ = _miou_through(
        FixedResizer((size, size)), images, labels, num_classes, backbone
    )
    flat, flat_full, aux = _miou_through(sampler, images, labels, num_classes, backbone)
    assert type(aux["frontend"]["grid"]).__name__ == ("SeparableGrid" if separable else "ArrayImpl")
    np.testing.assert_allclose(flat_full, fixed_full, atol=1e-4)
    assert 0.05 < fixed["miou"] < 0.95
    np.testing.assert_allclose(flat["miou"], fixed["miou"], atol=1e-12)
    np.testing.assert_allclose(flat["pixel_accuracy"], fixed["pixel_accuracy"], atol=1e-12)

    # At half the size, both paths sample the same content at slightly different places
    # (align-corners grid against half-pixel resize): the same mIoU to within the boundary
    # pixels. The oracle classifier reads the one-hot channels.
    oracle = {"head": {"kernel": jnp.eye(4).reshape(1, 1, 4, 4) * 10, "bias": jnp.zeros(4)}}
    half = dict(
        saliency_net=_FlatSaliency(),
        saliency_input_shape=(16, 16),
        grid_shape=(7, 7),
        pad=6,
        separable=separable,
    )
    fixed, _, _ = _miou_through(
        FixedResizer((size // 2, size // 2)), images, labels, num_classes, oracle
    )
    flat, _, _ = _miou_through(
        SaliencySampler((size // 2, size // 2), **half), images, labels, num_classes, oracle
    )
    assert fixed["miou"] > 0.8
    np.testing.assert_allclose(flat["miou"], fixed["miou"], atol=0.025)  # Measured: 0.018.


def test_saliency_predictions_are_unwarped_and_train_the_sampler():
    num_classes, size = 3, 32
    images, labels = _blocky_scene(jax.random.key(3), size, num_classes, 8)
    images = images + 0.1 * jax.random.normal(jax.random.key(4), images.shape)
    sampler = SaliencySampler(
        (16, 16),
        saliency_net=_RandomSaliency(),
        saliency_input_shape=(16, 16),
        grid_shape=(7, 7),
        pad=6,
    )
    model = FrontEndModel(frontend=sampler, backbone=_PixelClassifier(num_classes))
    variables = model.init(jax.random.key(5), images)
    task = Segmentation().for_model(model)
    batch = {"label": labels}

    def loss_fn(params):
        logits, aux = model.apply({"params": params}, images)
        return task.loss(logits, aux, batch)[0], (logits, aux)

    (loss, (logits, aux)), grads = jax.jit(jax.value_and_grad(loss_fn, has_aux=True))(
        variables["params"]
    )
    assert logits.shape == (2, 16, 16, num_classes)
    # The unwarped logits at each input pixel are those at its place in the warped image.
    full, expected = jax.jit(
        lambda logits, aux: (
            model.to_input(logits, aux, (size, size)),
            ops.grid_sample(logits, ops.invert_grid(aux["frontend"]["grid"], (size, size))),
        )
    )(logits, aux)
    assert full.shape == (2, size, size, num_classes)
    np.testing.assert_allclose(full, expected, atol=1e-5)
    assert np.isfinite(float(loss))
    saliency_grad = grads["frontend"]["saliency_net"]["logits"]
    assert np.isfinite(np.asarray(saliency_grad)).all()
    assert float(jnp.abs(saliency_grad).max()) > 0  # The zoom learns from the task loss.


def test_out_of_range_labels_raise_at_finalize():
    task = Segmentation()
    labels = np.array([[[0, 5], [1, IGNORE]]], np.int32)
    stats = jax.jit(task.eval_statistics)(
        jnp.zeros((1, 2, 2, 3)), {}, {"label": labels, "mask": np.ones(1, np.float32)}
    )
    with pytest.raises(ValueError, match=r"1 label pixels were outside \[0, 3\)"):
        task.finalize(task.accumulate(None, jax.device_get(stats)))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"ignore_label": "void"}, r"`ignore_label` must be an int"),
        ({"class_weights": (1.0, -1.0)}, r"`class_weights` must be a tuple of finite"),
    ],
)
def test_bad_fields_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Segmentation(**kwargs)


def test_bad_inputs_raise():
    task = get_task("segmentation", class_weights=(1.0, 1.0))
    with pytest.raises(ValueError, match=r"`batch\['label'\]` must be int\[B, H, W\]"):
        task.loss(jnp.zeros((2, 4, 4, 2)), {}, {"label": jnp.zeros((2, 4), jnp.int32)})
    with pytest.raises(ValueError, match=r"`class_weights` must hold one weight per class \(3\)"):
        task.loss(jnp.zeros((1, 4, 4, 3)), {}, {"label": jnp.zeros((1, 4, 4), jnp.int32)})
    with pytest.raises(ValueError, match=r"`outputs` must have rank 4"):
        task.loss(jnp.zeros((1, 3)), {}, {"label": jnp.zeros((1, 4, 4), jnp.int32)})


def test_check_dataset():
    info = lambda task, ignore: data.DatasetInfo(task, 4, 1, 1, (8, 8, 3), ignore)
    Segmentation().check_dataset(info("segmentation", 255))
    with pytest.raises(ValueError, match=r"needs a segmentation dataset"):
        Segmentation().check_dataset(info("classification", None))
    with pytest.raises(ValueError, match=r"`config.task.ignore_label`=255 differs.*0"):
        Segmentation().check_dataset(info("segmentation", 0))


def test_optax_reference_for_unit_weights():
    # The unweighted loss is optax's integer-label cross-entropy averaged over the pixels.
    logits = jax.random.normal(jax.random.key(6), (1, 3, 3, 5))
    labels = jax.random.randint(jax.random.key(7), (1, 3, 3), 0, 5)
    loss, _ = jax.jit(Segmentation().loss)(logits, {}, {"label": labels})
    expected = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
    np.testing.assert_allclose(loss, expected, rtol=1e-6)
