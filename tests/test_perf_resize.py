"""ops.resize's strided-slice path (resize_jax/ops/taps.py) against the dense matrix product."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from resize_jax import ops
from resize_jax.ops.resize import _resize_axis, interpolation_matrix, resize_taps
from resize_jax.ops.taps import apply_taps, regular_taps

HI = lax.Precision.HIGHEST
# Integer downscaling factors (regular bands), one irregular size and one upscale.
SIZES = [(448, 224), (64, 16), (30, 10), (17, 6), (48, 20), (8, 16)]


@pytest.mark.parametrize("method", list(ops.METHODS))
@pytest.mark.parametrize("antialias", [False, True])
@pytest.mark.parametrize(("n_in", "n_out"), SIZES)
def test_taps_equal_the_matrix(method, antialias, n_in, n_out):
    matrix = interpolation_matrix(n_in, n_out, method, antialias)
    taps = regular_taps(matrix)
    if taps is None:
        return  # Irregular band: resize keeps the dense product (checked below).
    # Rebuild the dense matrix from the taps: every weight is accounted for, exactly.
    rebuilt = np.zeros((n_out, n_in))
    for k in range(taps.weights.shape[0]):
        columns = taps.start + k + taps.stride * np.arange(n_out)
        inside = (columns >= 0) & (columns < n_in)
        rebuilt[np.arange(n_out)[inside], columns[inside]] += taps.weights[k][inside]
    np.testing.assert_array_equal(rebuilt, matrix)
    x = jax.random.normal(jax.random.key(0), (2, n_in, 3, 2))
    dense = jnp.einsum("oh,bhwc->bowc", jnp.asarray(matrix, jnp.float32), x, precision=HI)
    np.testing.assert_allclose(apply_taps(x, taps, 1, n_out), dense, atol=1e-6)


def test_which_sizes_take_the_slices():
    assert resize_taps(448, 224, "bilinear", False) is not None  # The paper's resize.
    assert resize_taps(448, 224, "bicubic", True) is not None
    assert resize_taps(8, 16, "bilinear", False) is None  # Upscaling: stride 1/2.
    assert resize_taps(448, 150, "bilinear", False) is None  # Irregular band.
    assert resize_taps(6, 3, "lanczos5", True) is None  # Small: the matmul is cheaper.
    taps = resize_taps(448, 224, "bilinear", False)
    assert (taps.start, taps.stride) == (0, 2)
    np.testing.assert_array_equal(taps.weights, 0.5)


@pytest.mark.parametrize(
    ("method", "antialias"),
    # Not antialiased lanczos3: at 64→16 it has 24 taps and takes the matmul path.
    [
        ("bilinear", False),
        ("bilinear", True),
        ("bicubic", False),
        ("bicubic", True),
        ("lanczos3", False),
    ],
)
def test_resize_paths_agree_with_gradients(method, antialias):
    x = jax.random.normal(jax.random.key(1), (2, 64, 48, 3))
    cotangent = jax.random.normal(jax.random.key(2), (2, 16, 12, 3))

    def run(use_taps):
        def f(images):
            out = _resize_axis(images, 1, 16, method, antialias, HI, use_taps)
            return _resize_axis(out, 2, 12, method, antialias, HI, use_taps)

        out, vjp = jax.vjp(f, x)
        return out, vjp(cotangent)[0]

    assert resize_taps(64, 16, method, antialias) is not None
    (fast, fast_grad), (dense, dense_grad) = run(True), run(False)
    np.testing.assert_allclose(fast, dense, atol=1e-6)
    np.testing.assert_allclose(fast_grad, dense_grad, atol=1e-6)
    np.testing.assert_allclose(ops.resize(x, (16, 12), method=method, antialias=antialias), fast)


def test_learned_resizer_scale_has_no_dense_product():
    # The paper's 448→224 resizes run as slices: XLA counts a few FLOPs per output, not the
    # 2·448 of a dense row (2.56 GFLOPs/image for the learned resizer's two resizes before).
    x = jax.ShapeDtypeStruct((1, 448, 448, 16), jnp.float32)
    cost = jax.jit(lambda im: ops.resize(im, (224, 224))).lower(x).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, list | tuple) else cost
    outputs = (224 * 448 + 224 * 224) * 16
    assert cost["flops"] <= 3 * outputs  # Two products and one sum per output and axis.
    assert cost["flops"] < 2 * 448 * outputs / 100
