"""The Vision Transformer: timm's parameter counts, resolution flexibility, bad input."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from resize_jax import models
from resize_jax.ops import resample_patch_kernel, resample_posemb, resize
from resize_jax.ops.resample_embeddings import patch_resize_pinv

TINY = {"patch_size": 4, "hidden_size": 16, "depth": 1, "num_heads": 2, "mlp_dim": 32}


def _count(name, num_classes=1000, size=224):
    model = models.get_model(name, num_classes=num_classes)
    shapes = jax.eval_shape(
        lambda x: model.init(jax.random.key(0), x), jnp.zeros((1, size, size, 3))
    )
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(shapes))


@pytest.mark.parametrize(
    "name, expected",
    [
        # timm's vit_{tiny,small,base,large}_patch16_224 at 1000 classes.
        ("vit_ti16", 5_717_416),
        ("vit_s16", 22_050_664),
        ("vit_b16", 86_567_656),
        ("vit_l16", 304_326_632),
    ],
)
def test_parameter_counts_equal_timm(name, expected):
    assert _count(name) == expected


@functools.cache
def _jitted_apply(model):
    return jax.jit(model.apply)


def _apply(model, variables, images):
    # Jitted once per model: eager Flax dispatches op by op, many times slower.
    return _jitted_apply(model)(variables, images)


@pytest.fixture(scope="module")
def tiny():
    model = models.get_model("vit_ti16", num_classes=5, **TINY)
    images = jax.random.uniform(jax.random.key(1), (2, 32, 32, 3))
    variables = jax.jit(model.init)(jax.random.key(0), images)
    # A non-zero head, so logits depend on every layer.
    head = variables["params"]["head"]
    head["kernel"] = jax.random.normal(jax.random.key(2), head["kernel"].shape)
    return model, variables, images


def test_tokens_pooling_and_shapes(tiny):
    model, variables, images = tiny
    params = variables["params"]
    assert params["pos_embedding"].shape == (1, 1 + 8 * 8, 16)  # Class token row + 8×8 grid.
    assert params["embedding"]["kernel"].shape == (4, 4, 3, 16)
    logits, aux = _apply(model, variables, images)
    assert logits.shape == (2, 5) and logits.dtype == jnp.float32
    assert aux["pre_logits"].shape == (2, 16)
    # Every token reaches the class token: changing one corner pixel changes the logits.
    changed = images.at[:, -1, -1, :].add(1.0)
    assert not np.allclose(_apply(model, variables, changed)[0], logits)

    gap = models.get_model("vit_ti16", num_classes=5, classifier="gap", **TINY)
    gap_vars = jax.jit(gap.init)(jax.random.key(0), images)
    assert "cls" not in gap_vars["params"]
    assert gap_vars["params"]["pos_embedding"].shape == (1, 64, 16)
    assert _apply(gap, gap_vars, images)[0].shape == (2, 5)


def test_bfloat16_compute_float32_params(tiny):
    model, variables, images = tiny
    bf16 = models.get_model("vit_ti16", num_classes=5, dtype=jnp.bfloat16, **TINY)
    logits, aux = _apply(bf16, variables, images)
    assert logits.dtype == jnp.float32 and aux["pre_logits"].dtype == jnp.bfloat16
    np.testing.assert_allclose(logits, _apply(model, variables, images)[0], atol=0.1)


def test_other_input_size_resamples_position_embeddings_on_the_fly(tiny):
    model, variables, _ = tiny
    images = jax.random.uniform(jax.random.key(3), (2, 48, 40, 3))  # Grid 12×10 from 8×8.
    logits, _ = _apply(model, variables, images)
    posemb = variables["params"]["pos_embedding"]
    resampled = resample_posemb(posemb, (12, 10), num_prefix_tokens=1)
    np.testing.assert_array_equal(resampled[:, :1], posemb[:, :1])  # Class token untouched.
    explicit = {"params": {**variables["params"], "pos_embedding": resampled}}
    grid_model = models.get_model("vit_ti16", num_classes=5, posemb_grid=(12, 10), **TINY)
    np.testing.assert_allclose(_apply(grid_model, explicit, images)[0], logits, atol=1e-5)


def test_posemb_resample_is_the_resize_of_the_grid():
    posemb = jax.random.normal(jax.random.key(0), (1, 1 + 6 * 6, 8))
    out = resample_posemb(posemb, (9, 4), num_prefix_tokens=1)
    grid = posemb[:, 1:].reshape(1, 6, 6, 8)
    expected = resize(grid, (9, 4), method="bicubic", antialias=True).reshape(1, 36, 8)
    np.testing.assert_allclose(out[:, 1:], expected, atol=1e-6)
    assert resample_posemb(posemb, (6, 6), num_prefix_tokens=1) is posemb


def test_posemb_resample_matches_timm_interpolation():
    # timm's resample_abs_pos_embed: F.interpolate(bicubic, antialias=True, align_corners=False).
    torch = pytest.importorskip("torch")
    grid = np.random.default_rng(0).normal(size=(1, 7, 7, 16)).astype(np.float32)
    posemb = jnp.asarray(grid.reshape(1, 49, 16))
    for new in ((14, 14), (4, 5)):
        ours = np.asarray(resample_posemb(posemb, new)).reshape(1, *new, 16)
        theirs = torch.nn.functional.interpolate(
            torch.from_numpy(grid).permute(0, 3, 1, 2),
            size=new,
            mode="bicubic",
            antialias=True,
            align_corners=False,
        )
        np.testing.assert_allclose(ours, theirs.permute(0, 2, 3, 1).numpy(), atol=1e-5)


def test_flexivit_kernel_resample_preserves_tokens_of_resized_patches():
    rng = np.random.default_rng(0)
    kernel = jnp.asarray(rng.normal(size=(4, 4, 3, 6)), jnp.float32)
    patches = jnp.asarray(rng.uniform(size=(5, 4, 4, 3)), jnp.float32)
    tokens = jnp.einsum("bhwc,hwcd->bd", patches, kernel)
    for new in ((8, 8), (6, 10)):  # Enlarging: exact.
        new_kernel = resample_patch_kernel(kernel, new)
        resized = resize(patches, new)
        np.testing.assert_allclose(
            jnp.einsum("bhwc,hwcd->bd", resized, new_kernel), tokens, rtol=1e-4, atol=1e-4
        )
    # The pseudo-inverse is that of the resize the library applies to a patch (basis images).
    basis = jnp.eye(16).reshape(16, 4, 4, 1)
    resize_matrix = np.asarray(resize(basis, (6, 6))).reshape(16, 36).T
    np.testing.assert_allclose(
        patch_resize_pinv((4, 4), (6, 6)), np.linalg.pinv(resize_matrix.T), atol=1e-6
    )


def test_model_with_another_patch_size_uses_the_resampled_kernel(tiny):
    _, variables, _ = tiny
    images = jax.random.uniform(jax.random.key(4), (2, 48, 48, 3))
    flexi = models.get_model(
        "vit_ti16", num_classes=5, **{**TINY, "patch_size": 6}, patch_embedding_size=4
    )
    logits, _ = _apply(flexi, variables, images)  # Same weights, 8×8 grid of 6×6 patches.
    params = variables["params"]
    kernel = resample_patch_kernel(params["embedding"]["kernel"], (6, 6))
    explicit = {"params": {**params, "embedding": {**params["embedding"], "kernel": kernel}}}
    six = models.get_model("vit_ti16", num_classes=5, **{**TINY, "patch_size": 6})
    np.testing.assert_allclose(_apply(six, explicit, images)[0], logits, atol=1e-5)


def test_patch_size_that_does_not_divide_the_input_is_refused(tiny):
    model, variables, _ = tiny
    with pytest.raises(ValueError, match=r"multiples of `patch_size`=4, got 30×32"):
        _apply(model, variables, jnp.zeros((1, 30, 32, 3)))
    with pytest.raises(ValueError, match="at least 4×4"):
        _apply(model, variables, jnp.zeros((1, 2, 2, 3)))


def test_non_square_stored_grid_needs_posemb_grid(tiny):
    model, variables, _ = tiny
    params = dict(variables["params"])
    params["pos_embedding"] = jnp.zeros((1, 1 + 8 * 6, 16))  # An 8×6 grid from elsewhere.
    with pytest.raises(ValueError, match=r"48 grid embeddings, not a square grid.*posemb_grid"):
        _apply(model, {"params": params}, jnp.zeros((1, 32, 32, 3)))
    explicit = models.get_model("vit_ti16", num_classes=5, posemb_grid=(8, 6), **TINY)
    assert _apply(explicit, {"params": params}, jnp.zeros((1, 32, 32, 3)))[0].shape == (1, 5)
    wrong = models.get_model("vit_ti16", num_classes=5, posemb_grid=(7, 7), **TINY)
    with pytest.raises(ValueError, match=r"`posemb_grid`=\(7, 7\) holds 49 embeddings"):
        _apply(wrong, {"params": params}, jnp.zeros((1, 32, 32, 3)))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"num_heads": 5}, "multiple of `num_heads`=5"),
        ({"classifier": "mean"}, "`classifier` must be one of"),
        ({"patch_size": 0}, "`patch_size` must be a positive integer"),
        ({"posemb_grid": (8,)}, "`posemb_grid` must be a pair"),
        ({"posemb_grid": (8, 0)}, "`posemb_grid` must hold positive integers"),
        ({"dropout_rate": 1.0}, "`dropout_rate`"),
    ],
)
def test_bad_fields_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        models.get_model("vit_ti16", num_classes=5, **{**TINY, **kwargs})


def test_bad_resample_arguments_are_refused():
    with pytest.raises(ValueError, match=r"`posemb` must have shape \[1, tokens, D\]"):
        resample_posemb(jnp.zeros((4, 8)), (2, 2))
    with pytest.raises(ValueError, match=r"`old_grid`=.*holds 12 embeddings"):
        resample_posemb(jnp.zeros((1, 17, 8)), (2, 2), old_grid=(3, 4), num_prefix_tokens=0)
    with pytest.raises(ValueError, match="`kernel` must have shape"):
        resample_patch_kernel(jnp.zeros((4, 4, 3)), (2, 2))
