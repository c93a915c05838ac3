"""grid_sample_antialiased: level choice, parity with the antialiased resize, aliasing, grads."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from resize_jax import ops
from resize_jax.frontends import SaliencySampler
from resize_jax.ops.mipmap import default_num_levels, level_of_detail

sample_aa = jax.jit(ops.grid_sample_antialiased, static_argnames=("padding_mode", "num_levels"))


def _shrinking_grid(batch, size, out):
    """The half-pixel-centre grid of a size→out resize, in the grid_sample convention."""
    centres = (np.arange(out) + 0.5) * size / out - 0.5  # input pixel positions
    coords = centres / (size - 1) * 2 - 1
    grid = np.stack(np.meshgrid(coords, coords, indexing="xy"), axis=-1)
    return jnp.asarray(np.broadcast_to(grid, (batch, out, out, 2)), jnp.float32)


def _dots(phase, size=32, period=4):
    """A grey image with one-pixel white dots every `period` px at `phase` along both axes."""
    image = np.full((size, size, 3), 0.5, np.float32)
    image[phase::period, phase::period] = 1.0
    return image


@pytest.mark.parametrize("factor", [2, 4])
def test_uniform_power_of_two_shrink_reads_the_pyramid_level(factor):
    images = jax.random.uniform(jax.random.key(0), (2, 32, 32, 3))
    grid = _shrinking_grid(2, 32, 32 // factor)
    lod = level_of_detail(grid, 32, 32)
    np.testing.assert_allclose(lod, np.log2(factor), atol=1e-5)
    level = ops.image_pyramid(images, 3)[int(np.log2(factor))]
    np.testing.assert_allclose(sample_aa(images, grid), level, atol=1e-5)
    if factor == 2:  # Level 1 is the antialiased resize itself.
        expected = ops.resize(images, (16, 16), antialias=True)
        np.testing.assert_allclose(sample_aa(images, grid), expected, atol=1e-5)


def test_magnifying_grid_is_plain_grid_sample():
    images = jax.random.normal(jax.random.key(1), (2, 9, 11, 2))
    # 25×30 points over a 9×11 image: spacing < 1 px, level 0 only.
    xs, ys = np.linspace(-1, 1, 30), np.linspace(-0.8, 0.9, 25)
    grid = jnp.asarray(np.stack(np.meshgrid(xs, ys, indexing="xy"), -1)[None].repeat(2, 0))
    for mode in ops.PADDING_MODES:
        chex.assert_trees_all_close(
            sample_aa(images, grid, padding_mode=mode),
            ops.grid_sample(images, grid, padding_mode=mode),
            atol=1e-6,
        )
    one_level = sample_aa(images, _shrinking_grid(2, 9, 3)[:, :, :3], num_levels=1)
    plain = ops.grid_sample(images, _shrinking_grid(2, 9, 3)[:, :, :3])
    np.testing.assert_allclose(one_level, plain, atol=1e-6)


def test_it_does_not_alias_one_pixel_dots_that_grid_sample_misses():
    # A 4× shrink of a period-4 dot lattice: grid_sample sees the dots at full contrast or
    # not at all depending on the lattice's phase; the antialiased sampler sees their
    # average (1/16 of the dot contrast) whatever the phase.
    images = jnp.asarray(np.stack([_dots(phase) for phase in range(4)]))
    grid = _shrinking_grid(4, 32, 8)
    plain = np.asarray(ops.grid_sample(images, grid)).mean(axis=(1, 2, 3))
    smooth = np.asarray(sample_aa(images, grid)).mean(axis=(1, 2, 3))
    assert plain.max() - plain.min() > 0.1  # aliasing: the phase decides
    assert smooth.max() - smooth.min() < 0.01
    np.testing.assert_allclose(smooth, 0.5 + 0.5 / 16, atol=0.01)


def test_levels_blend_continuously_across_a_level_boundary():
    images = jax.random.uniform(jax.random.key(2), (1, 64, 64, 1))
    # Shrinking by just under and just over 2: λ crosses the level-1 boundary.
    below = sample_aa(images, _shrinking_grid(1, 64, 33))
    above = sample_aa(images, _shrinking_grid(1, 64, 31))
    lods = [float(level_of_detail(_shrinking_grid(1, 64, n), 64, 64).mean()) for n in (33, 31)]
    assert lods[0] < 1 < lods[1]
    # Same points up to the grid change: both are close to level 1's values.
    level1 = ops.image_pyramid(images, 2)[1]
    for out in (below, above):
        resized = ops.resize(level1, out.shape[1:3])
        assert float(jnp.abs(out - resized).mean()) < 0.05


def test_gradients_are_finite_and_exact_for_the_images():
    images = jax.random.uniform(jax.random.key(3), (1, 16, 16, 2))
    for grid in (
        _shrinking_grid(1, 16, 4),
        ops.identity_grid(1, 16, 16),
        jnp.zeros((1, 4, 4, 2)),  # every point at the centre: zero spacing
    ):
        grads = jax.grad(lambda g: jnp.sum(sample_aa(images, g) ** 2))(grid)
        assert bool(jnp.all(jnp.isfinite(grads)))
    # Linear in the images: autodiff must match finite differences exactly.
    grid = _shrinking_grid(1, 16, 5) * 0.9
    check_grads(lambda x: sample_aa(x, grid), (images,), order=1, modes=("rev",), atol=1e-2)


def test_grid_gradient_matches_finite_differences_between_levels():
    # A smooth image and a jittered grid of ~1.5-px spacing (λ ≈ 0.6): the gradient reaches
    # the grid through the sample positions and through the level weights.
    ys, xs = np.meshgrid(np.arange(24), np.arange(24), indexing="ij")
    image = np.stack([np.sin(xs / 3.0) * np.cos(ys / 4.0), np.cos((xs + ys) / 5.0)], -1)
    images = jnp.asarray(image[None], jnp.float32)
    jitter = jax.random.uniform(jax.random.key(5), (1, 8, 8, 2), minval=-0.02, maxval=0.02)
    grid = _shrinking_grid(1, 24, 16)[:, 4:12, 4:12] + jitter
    check_grads(
        lambda g: sample_aa(images, g), (grid,), order=1, modes=("rev",), eps=1e-3, atol=2e-2
    )


def test_default_num_levels():
    assert default_num_levels((128, 128), (32, 32)) == 4  # levels 0–2, one spare
    assert default_num_levels((800, 800), (224, 224)) == 4
    assert default_num_levels((32, 32), (64, 64)) == 2
    assert default_num_levels((4, 4), (1, 1)) == 3  # capped at the 1-px level


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_bad_num_levels_is_named(bad):
    with pytest.raises(ValueError, match="num_levels"):
        ops.grid_sample_antialiased(
            jnp.zeros((1, 8, 8, 1)), jnp.zeros((1, 2, 2, 2)), num_levels=bad
        )


def test_bad_arguments_are_named():
    images, grid = jnp.zeros((2, 8, 8, 1)), jnp.zeros((2, 2, 2, 2))
    with pytest.raises(ValueError, match="batch size"):
        ops.grid_sample_antialiased(images, grid[:1])
    with pytest.raises(ValueError, match="padding_mode"):
        ops.grid_sample_antialiased(images, grid, padding_mode="wrap")
    with pytest.raises(ValueError, match="grid"):
        ops.grid_sample_antialiased(images, grid[..., :1])


def test_saliency_sampler_antialias_sees_the_dots_whatever_their_phase():
    images = jnp.asarray(np.stack([_dots(phase, size=64) for phase in range(4)]))
    means = {}
    for antialias in (False, True):
        sampler = SaliencySampler(
            (16, 16), saliency_input_shape=(16, 16), grid_shape=(8, 8), pad=4, antialias=antialias
        )
        variables = sampler.init(jax.random.key(0), images)
        out, _ = sampler.apply(variables, images)
        means[antialias] = np.asarray(out).mean(axis=(1, 2, 3))
    assert np.ptp(means[True]) < np.ptp(means[False])
    assert np.ptp(means[True]) < 0.01


def test_saliency_sampler_antialias_separable_equals_dense():
    images = jax.random.uniform(jax.random.key(4), (2, 48, 48, 3))
    kwargs = dict(saliency_input_shape=(24, 24), grid_shape=(6, 6), pad=3, antialias=True)
    dense = SaliencySampler((12, 12), **kwargs)
    separable = SaliencySampler((12, 12), separable=True, **kwargs)
    variables = dense.init(jax.random.key(0), images)
    out_sep, aux = separable.apply(variables, images)
    expected = ops.grid_sample_antialiased(images, ops.separable_to_grid(aux["grid"]))
    np.testing.assert_allclose(out_sep, expected, atol=1e-6)


@pytest.mark.parametrize("field", ["antialias", "separable"])
def test_saliency_sampler_boolean_fields_are_checked(field):
    with pytest.raises(ValueError, match=field):
        SaliencySampler((8, 8), **{field: "yes"})
