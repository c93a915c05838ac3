"""ops.conv2d_same / ops.conv_general_dilated: the native CPU kernels against a float64 NumPy
oracle and XLA's convolution (values and both gradients), dispatch, fallbacks and errors."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from resize_jax.frontends import LearnedResizer
from resize_jax.ops import conv, native
from tests import native_build

needs_compiler = pytest.mark.skipif(
    shutil.which(os.environ.get("CXX", "c++")) is None, reason="no C++ compiler on this machine"
)

# (x shape, w shape): CO % 16 (vectorised outputs), CI % 16 (vectorised inputs), both, widths
# that leave remainders after every column block, CO not a multiple of 4.
SHAPES = [
    ((2, 11, 29, 3), (7, 7, 3, 16)),
    ((1, 6, 13, 1), (5, 5, 1, 32)),
    ((2, 9, 27, 16), (7, 7, 16, 3)),
    ((1, 7, 15, 32), (3, 3, 32, 5)),
    ((2, 8, 17, 16), (3, 3, 16, 16)),
    ((2, 5, 7, 16), (1, 1, 16, 16)),
    ((1, 4, 5, 16), (1, 1, 16, 2)),
]


def numpy_conv(x, w):
    x, w = np.asarray(x, np.float64), np.asarray(w, np.float64)
    size = w.shape[0]
    pad = size // 2
    xp = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    height, width = x.shape[1:3]
    out = np.zeros((*x.shape[:3], w.shape[3]))
    for ky in range(size):
        for kx in range(size):
            out += xp[:, ky : ky + height, kx : kx + width] @ w[ky, kx]
    return out


def _xla(x, w):
    pad = w.shape[0] // 2
    return lax.conv_general_dilated(
        x, w, (1, 1), [(pad, pad)] * 2, dimension_numbers=("NHWC", "HWIO", "NHWC")
    )


def _random(x_shape, w_shape, seed=0):
    kx, kw, kg = jax.random.split(jax.random.key(seed), 3)
    x = jax.random.normal(kx, x_shape)
    w = jax.random.normal(kw, w_shape) / np.sqrt(np.prod(w_shape[:3]))
    g = jax.random.normal(kg, (*x_shape[:3], w_shape[3]))
    return x, w, g


def _hlo(fn, *args):
    return jax.jit(fn).lower(*args).as_text()


@needs_compiler
def test_native_kernels_build_and_load():
    assert native.available()


@needs_compiler
def test_vectors_are_as_wide_as_the_machine_builds_them():
    # Vectors wider than the machine's registers live in memory (GCC lowers them piece by
    # piece): the kernels must take the width -march=native gives.
    macros = native_build.native_macros()
    expected = 16 if "__AVX512F__" in macros else 8 if "__AVX__" in macros else 4
    assert native.vector_lanes() == expected
    with native.disabled():
        assert native.vector_lanes() is None


@needs_compiler
@pytest.mark.parametrize(("x_shape", "w_shape"), SHAPES)
def test_forward_matches_float64_oracle(x_shape, w_shape):
    x, w, _ = _random(x_shape, w_shape)
    out = jax.jit(conv.conv2d_same)(x, w)
    chex.assert_shape(out, (*x_shape[:3], w_shape[3]))
    np.testing.assert_allclose(out, numpy_conv(x, w), rtol=1e-5, atol=1e-5)


@needs_compiler
@pytest.mark.parametrize(("x_shape", "w_shape"), SHAPES)
def test_gradients_match_xla(x_shape, w_shape):
    x, w, g = _random(x_shape, w_shape, seed=1)
    _, vjp = jax.vjp(conv.conv2d_same, x, w)
    _, vjp_xla = jax.vjp(_xla, x, w)
    for ours, theirs in zip(jax.jit(vjp)(g), vjp_xla(g), strict=True):
        scale = float(jnp.max(jnp.abs(theirs)))
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=2e-5 * scale)


@needs_compiler
def test_weight_gradient_against_oracle_by_finite_differences():
    # Independent of XLA's convolution: d/dw of <conv(x, w), g> along a random direction.
    x, w, g = _random((1, 6, 9, 3), (3, 3, 3, 16), seed=2)
    direction = jax.random.normal(jax.random.key(3), w.shape)
    dw = jax.grad(lambda w: jnp.sum(conv.conv2d_same(x, w) * g))(w)
    x64, g64, w64, d64 = (np.asarray(a, np.float64) for a in (x, g, w, direction))
    eps = 1e-3
    numeric = (
        np.sum(numpy_conv(x64, w64 + eps * d64) * g64)
        - np.sum(numpy_conv(x64, w64 - eps * d64) * g64)
    ) / (2 * eps)
    np.testing.assert_allclose(float(jnp.sum(dw * direction)), numeric, rtol=1e-4)


@needs_compiler
def test_eligible_layers_run_the_native_kernels():
    x, w, g = _random((1, 8, 8, 3), (7, 7, 3, 16))
    assert "resize_jax_conv_vec_out" in _hlo(conv.conv2d_same, x, w)
    x2, w2, _ = _random((1, 8, 8, 16), (7, 7, 16, 3))
    assert "resize_jax_conv_vec_in" in _hlo(conv.conv2d_same, x2, w2)
    grads = lambda x, w, g: jax.vjp(conv.conv2d_same, x, w)[1](g)
    assert "resize_jax_conv_weight_grad" in _hlo(grads, x, w, g)


@needs_compiler
def test_ineligible_or_disabled_layers_use_xla(monkeypatch):
    x, w, _ = _random((1, 8, 8, 3), (3, 3, 3, 5))  # neither channel count a multiple of 16
    assert not conv.native_eligible(x, w)
    assert "resize_jax_conv" not in _hlo(conv.conv2d_same, x, w)
    x, w, _ = _random((1, 8, 8, 3), (7, 7, 3, 16))
    with native.disabled():
        assert not conv.native_eligible(x, w)
        assert "resize_jax_conv" not in _hlo(lambda x, w: conv.conv2d_same(x, w), x, w)
    monkeypatch.setenv(native.ENV_SWITCH, "0")
    assert not conv.native_eligible(x, w)
    # bf16 inputs stay with XLA too.
    assert not conv.native_eligible(x.astype(jnp.bfloat16), w.astype(jnp.bfloat16))


@needs_compiler
def test_vmap_and_sharded_batch():
    x, w, _ = _random((8, 6, 10, 3), (5, 5, 3, 16))
    expected = numpy_conv(x, w)
    stacked = jax.vmap(conv.conv2d_same, in_axes=(0, None))(x.reshape(2, 4, 6, 10, 3), w)
    np.testing.assert_allclose(stacked.reshape(expected.shape), expected, rtol=1e-5, atol=1e-5)
    # Per-example weights, and per-example weight gradients (vmap of grad): one call each.
    ws = jnp.stack([w, 2 * w])
    per_weight = jax.jit(jax.vmap(conv.conv2d_same, in_axes=(None, 0)))(x, ws)
    np.testing.assert_allclose(per_weight[1], 2 * expected, rtol=1e-5, atol=1e-5)
    loss = lambda w, x: jnp.sum(conv.conv2d_same(x[None], w) ** 2)
    per_example = jax.jit(jax.vmap(jax.grad(loss), in_axes=(None, 0)))(w, x)
    loss_xla = lambda w, x: jnp.sum(_xla(x[None], w) ** 2)
    np.testing.assert_allclose(
        per_example, jax.vmap(jax.grad(loss_xla), in_axes=(None, 0))(w, x), rtol=1e-4, atol=1e-4
    )

    mesh = Mesh(np.array(jax.devices()), ("data",))
    xs = jax.device_put(x, NamedSharding(mesh, PartitionSpec("data")))
    out = jax.jit(conv.conv2d_same)(xs, w)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    grad = jax.jit(jax.grad(lambda w, x: jnp.sum(conv.conv2d_same(x, w) ** 2)))
    dw = grad(w, xs)
    dw_xla = jax.grad(lambda w: jnp.sum(_xla(x, w) ** 2))(w)
    np.testing.assert_allclose(dw, dw_xla, rtol=0, atol=2e-5 * float(jnp.max(jnp.abs(dw_xla))))
    # Each device convolves its own shard: no gathered batch, per-shard custom calls, and the
    # weight gradient summed across devices.
    per_device = len(jax.devices())
    compiled = grad.lower(w, xs).compile().as_text()
    assert "all-gather" not in compiled and "all-reduce" in compiled
    assert f"f32[{8 // per_device},6,10,16]{{3,2,1,0}} custom-call" in compiled
    assert f"f32[{8 // per_device},5,5,3,16]{{4,3,2,1,0}} custom-call" in compiled


@pytest.mark.timeout(300)
@needs_compiler
def test_learned_resizer_train_step_equals_xla():
    """The whole resizer, forward and every parameter gradient, with and without the native
    kernels. Independent dx and dw custom calls run concurrently here: a kernel that blocked
    the thread pool would hang this test."""
    model = LearnedResizer((20, 20))
    images = jax.random.uniform(jax.random.key(0), (2, 40, 40, 3))
    variables = model.init(jax.random.key(1), images)

    def loss(params):
        (out, _), _ = model.apply(
            {**variables, "params": params}, images, train=True, mutable=["batch_stats"]
        )
        return jnp.mean(out**2), out

    (value, out), grads = jax.jit(jax.value_and_grad(loss, has_aux=True))(variables["params"])
    with native.disabled():
        (value_xla, out_xla), grads_xla = jax.jit(
            jax.value_and_grad(lambda p: loss(p), has_aux=True)
        )(variables["params"])
    np.testing.assert_allclose(out, out_xla, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(value, value_xla, rtol=1e-4)
    leaves, leaves_xla = jax.tree.leaves(grads), jax.tree.leaves(grads_xla)
    overall = max(float(jnp.max(jnp.abs(leaf))) for leaf in leaves_xla)
    for ours, theirs in zip(leaves, leaves_xla, strict=True):
        # Biases in front of a BatchNorm have zero gradient up to rounding noise: compare
        # those against the overall scale, not their own.
        scale = float(jnp.max(jnp.abs(theirs)))
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-4 * scale + 1e-6 * overall)


def test_conv_general_dilated_is_a_drop_in():
    x, w, _ = _random((2, 9, 10, 16), (3, 3, 16, 16))
    nhwc = ("NHWC", "HWIO", "NHWC")
    for kwargs in (
        {"window_strides": (1, 1), "padding": "SAME"},
        {"window_strides": (1, 1), "padding": [(1, 1), (1, 1)]},
        {"window_strides": (2, 2), "padding": "SAME"},
        {"window_strides": (1, 1), "padding": "VALID"},
        {"window_strides": (1, 1), "padding": "SAME", "rhs_dilation": (2, 2)},
    ):
        ours = conv.conv_general_dilated(x, w, dimension_numbers=nhwc, **kwargs)
        theirs = lax.conv_general_dilated(x, w, dimension_numbers=nhwc, **kwargs)
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5)
    grouped = conv.conv_general_dilated(
        x, w[:, :, :4], (1, 1), "SAME", dimension_numbers=nhwc, feature_group_count=4
    )
    chex.assert_shape(grouped, (2, 9, 10, 16))


@needs_compiler
@pytest.mark.parametrize(
    ("x_shape", "w_shape", "kwargs", "native_path"),
    [
        # Strided SAME layers (by space-to-depth): even and odd sizes (XLA pads them
        # differently), strides 2 to 4, even and odd numbers of block taps.
        ((2, 12, 10, 3), (3, 3, 3, 16), {"window_strides": (2, 2), "padding": "SAME"}, True),
        ((2, 13, 11, 3), (5, 5, 3, 16), {"window_strides": (2, 2), "padding": "SAME"}, True),
        ((1, 15, 17, 3), (7, 7, 3, 16), {"window_strides": (2, 2), "padding": "SAME"}, True),
        # One block tap (stride >= K): a 1×1 layer on the blocks, a matrix product.
        ((1, 14, 9, 16), (3, 3, 16, 16), {"window_strides": (3, 3), "padding": "SAME"}, False),
        ((1, 17, 16, 16), (3, 3, 16, 16), {"window_strides": (4, 4), "padding": "SAME"}, False),
        # 1×1 layers: subsampled before the (XLA) matrix product; dilation changes nothing.
        ((2, 13, 10, 16), (1, 1, 16, 16), {"window_strides": (2, 2), "padding": "SAME"}, False),
        ((2, 13, 10, 16), (1, 1, 16, 16), {"padding": "SAME", "rhs_dilation": (3, 3)}, False),
        # Dilated SAME layers, padding given as a string or as pairs.
        ((2, 12, 10, 16), (3, 3, 16, 16), {"padding": "SAME", "rhs_dilation": (2, 2)}, True),
        ((2, 12, 10, 16), (5, 5, 16, 16), {"padding": [(4, 4)] * 2, "rhs_dilation": (2, 2)}, True),
        ((1, 12, 9, 16), (3, 3, 16, 16), {"padding": "SAME", "rhs_dilation": (3, 3)}, True),
        # XLA's: a size that is no multiple of the dilation; explicit strided padding; a
        # stride and a dilation at once.
        ((2, 12, 10, 16), (3, 3, 16, 16), {"padding": "SAME", "rhs_dilation": (3, 3)}, False),
        ((2, 12, 10, 3), (3, 3, 3, 16), {"window_strides": (2, 2), "padding": [(1, 1)] * 2}, False),
        (
            (2, 12, 12, 16),
            (3, 3, 16, 16),
            {"window_strides": (2, 2), "padding": "SAME", "rhs_dilation": (2, 2)},
            False,
        ),
    ],
)
def test_strided_and_dilated_layers(x_shape, w_shape, kwargs, native_path):
    x, w, _ = _random(x_shape, w_shape)
    kwargs = {"window_strides": (1, 1), **kwargs, "dimension_numbers": ("NHWC", "HWIO", "NHWC")}
    expected = lax.conv_general_dilated(x, w, **kwargs)
    g = jax.random.normal(jax.random.key(7), expected.shape)

    def loss(fn):
        return lambda x, w: jnp.sum(fn(x, w, **kwargs) * g)

    ours = jax.jit(lambda x, w: conv.conv_general_dilated(x, w, **kwargs))
    assert ("resize_jax_conv_vec_" in _hlo(ours, x, w)) == native_path
    np.testing.assert_allclose(ours(x, w), expected, rtol=1e-5, atol=1e-5)
    grads = jax.jit(jax.grad(loss(conv.conv_general_dilated), (0, 1)))(x, w)
    for got, want in zip(
        grads, jax.grad(loss(lax.conv_general_dilated), (0, 1))(x, w), strict=True
    ):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_errors_name_the_argument():
    x, w, _ = _random((1, 6, 6, 3), (3, 3, 3, 16))
    with pytest.raises(ValueError, match="`w` must be f\\[K, K, CI, CO\\] with odd K"):
        conv.conv2d_same(x, jnp.zeros((2, 2, 3, 16)))
    with pytest.raises(ValueError, match="`w` must be"):
        conv.conv2d_same(x, jnp.zeros((3, 5, 3, 16)))
    with pytest.raises(ValueError, match="`x` must be f\\[B, H, W, 3\\]"):
        conv.conv2d_same(jnp.zeros((1, 6, 6, 4)), w)
    with pytest.raises(ValueError, match="`x` must be"):
        conv.conv2d_same(jnp.zeros((6, 6, 3)), w)


def _run_isolated(code: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


_PROBE = """
import warnings, jax, jax.numpy as jnp
from resize_jax.ops import conv, native
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    ok = native.available()
x, w = jnp.ones((1, 5, 5, 3)), jnp.ones((3, 3, 3, 16))
print("available", ok, "sum", float(conv.conv2d_same(x, w).sum()))
print("warnings", [str(c.message) for c in caught])
"""


def test_without_a_compiler_falls_back_with_a_warning(tmp_path):
    result = _run_isolated(
        _PROBE, {"CXX": str(tmp_path / "no-such-compiler"), "RESIZE_JAX_CACHE": str(tmp_path)}
    )
    assert result.returncode == 0, result.stderr
    assert "available False sum 8112.0" in result.stdout  # (2+3+3+3+2)² taps × 3 × 16
    assert "no C++ compiler found" in result.stdout


def test_a_failing_build_falls_back_with_the_compiler_error(tmp_path):
    broken = tmp_path / "broken-cxx"
    broken.write_text("#!/bin/sh\necho 'error: simulated compiler failure' >&2\nexit 1\n")
    broken.chmod(0o755)
    result = _run_isolated(_PROBE, {"CXX": str(broken), "RESIZE_JAX_CACHE": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert "available False sum 8112.0" in result.stdout
    assert "simulated compiler failure" in result.stdout
    assert not list(tmp_path.glob("*.so"))  # no half-written library left behind


@needs_compiler
def test_build_goes_to_the_cache_directory(tmp_path):
    result = _run_isolated(_PROBE, {"RESIZE_JAX_CACHE": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert "available True sum 8112.0" in result.stdout
    assert len(list(tmp_path.glob("native_kernels-*.so"))) == 1


@needs_compiler
def test_gpu_and_tpu_lowerings_use_xla_convolutions():
    # Lowering needs no accelerator: the same jitted gradient is XLA's convolution there.
    x, w, _ = _random((2, 8, 8, 3), (7, 7, 3, 16))
    grad = jax.jit(jax.grad(lambda w, x: jnp.sum(conv.conv2d_same(x, w) ** 2)))
    traced = grad.trace(w, x)
    assert "resize_jax_conv" in traced.lower(lowering_platforms=("cpu",)).as_text()
    for platform in ("cuda", "tpu"):
        text = traced.lower(lowering_platforms=(platform,)).as_text()
        assert "resize_jax_conv" not in text and "convolution" in text


def test_native_kernels_are_not_looked_up_off_cpu(monkeypatch):
    """On a GPU or TPU host the kernels are neither looked up nor compiled (no compiler
    warning that does not concern it); the layer is XLA's convolution."""
    x, w, _ = _random((1, 8, 8, 3), (7, 7, 3, 16))

    def must_not_run():
        raise AssertionError("native.available() was consulted off CPU")

    monkeypatch.setattr(native, "available", must_not_run)
    monkeypatch.setattr(jax, "default_backend", lambda: "tpu")
    assert not conv.native_eligible(x, w)
    # A fresh function: not the trace cached by the tests above.
    assert "resize_jax_conv" not in _hlo(lambda x, w: conv.conv2d_same(x, w), x, w)
    # A CPU default device on such a host brings them back.
    monkeypatch.setattr(native, "available", lambda: True)
    with jax.default_device(jax.devices("cpu")[0]):
        assert conv.native_eligible(x, w)


@needs_compiler
@pytest.mark.parametrize(
    ("x_shape", "w_shape"),
    [
        ((2, 11, 29, 3), (7, 7, 3, 16)),
        ((2, 5, 7, 16), (1, 1, 16, 16)),
        ((1, 4, 9, 16), (3, 3, 16, 32)),
    ],
)
def test_bias_leaky_fused_matches_the_composition(x_shape, w_shape):
    """Values and all three gradients of the fused kernel against XLA's conv + bias + leaky."""
    x, w, g = _random(x_shape, w_shape)
    b = jax.random.normal(jax.random.key(7), w_shape[-1:])

    def composed(x, w, b):
        return jax.nn.leaky_relu(_xla(x, w) + b, 0.2)

    fused = jax.jit(lambda x, w, b: conv.conv2d_same_bias_leaky(x, w, b, 0.2))
    assert "resize_jax_conv_vec_out_bias_leaky" in _hlo(fused, x, w, b)
    want, want_vjp = jax.vjp(composed, x, w, b)
    got, got_vjp = jax.vjp(fused, x, w, b)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    for ours, theirs in zip(got_vjp(g), want_vjp(g), strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4)


def test_bias_leaky_falls_back_to_the_composition_and_checks_the_bias():
    x, w, _ = _random((1, 6, 7, 3), (3, 3, 3, 16))
    b = jnp.linspace(-1, 1, 16)
    for slope in (0.0, -0.5):  # the sign trick of the fused gradient needs slope > 0
        fn = lambda x, w, b, slope=slope: conv.conv2d_same_bias_leaky(x, w, b, slope)
        assert "bias_leaky" not in _hlo(fn, x, w, b)
        y = _xla(x, w) + b
        want = jnp.where(y >= 0, y, slope * y)
        np.testing.assert_allclose(fn(x, w, b), want, rtol=1e-5, atol=1e-5)
    bf16 = conv.conv2d_same_bias_leaky(*(a.astype(jnp.bfloat16) for a in (x, w, b)), 0.2)
    assert bf16.dtype == jnp.bfloat16
    with pytest.raises(ValueError, match="`b` must be f\\[16\\]"):
        conv.conv2d_same_bias_leaky(x, w, jnp.zeros(8), 0.2)


def test_conv_leaky_module_is_nn_conv_then_leaky_relu():
    """Same variables (names, shapes, initial values) and outputs as the two flax layers."""
    import flax.linen as nn

    from resize_jax.frontends.conv_leaky import ConvLeaky

    x = jax.random.normal(jax.random.key(0), (2, 9, 8, 3))
    ours, reference = ConvLeaky(16, 7, 0.2), nn.Conv(16, (7, 7), padding="SAME")
    variables = ours.init(jax.random.key(1), x)
    chex.assert_trees_all_equal(variables, reference.init(jax.random.key(1), x))
    variables = jax.tree.map(lambda v: v + 0.1, variables)  # a non-zero bias
    np.testing.assert_allclose(
        ours.apply(variables, x),
        nn.leaky_relu(reference.apply(variables, x), 0.2),
        rtol=1e-5,
        atol=1e-5,
    )


@needs_compiler
def test_bias_leaky_fused_keeps_the_batch_split():
    x, w, g = _random((8, 6, 10, 3), (5, 5, 3, 16))
    b = jnp.linspace(-1.0, 1.0, 16)
    mesh = Mesh(np.array(jax.devices()), ("data",))
    xs = jax.device_put(x, NamedSharding(mesh, PartitionSpec("data")))

    def loss(w, b, x):
        return jnp.sum(conv.conv2d_same_bias_leaky(x, w, b, 0.2) * g)

    grad = jax.jit(jax.grad(loss, argnums=(0, 1)))
    for ours, theirs in zip(grad(w, b, xs), jax.grad(loss, argnums=(0, 1))(w, b, x), strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4)
    compiled = grad.lower(w, b, xs).compile().as_text()
    per_device = 8 // len(jax.devices())
    assert "all-gather" not in compiled
    assert f"f32[{per_device},6,10,16]{{3,2,1,0}} custom-call" in compiled


@pytest.mark.parametrize(
    ("x_shape", "size", "stride", "dilation"),
    [
        ((2, 12, 10, 3), 3, 1, 1),
        ((2, 12, 10, 3), 3, 2, 1),
        ((1, 13, 11, 3), 3, 2, 1),
        ((1, 15, 17, 4), 7, 2, 1),
        ((1, 14, 9, 4), 3, 3, 1),
        ((2, 12, 10, 4), 3, 1, 2),
        ((1, 12, 9, 4), 5, 1, 3),
        ((1, 13, 10, 4), 1, 2, 1),
    ],
)
def test_as_valid_layer_is_the_same_layer(x_shape, size, stride, dilation):
    x, w, _ = _random(x_shape, (size, size, x_shape[-1], 16))
    nhwc = ("NHWC", "HWIO", "NHWC")
    expected = lax.conv_general_dilated(
        x, w, (stride, stride), "SAME", rhs_dilation=(dilation, dilation), dimension_numbers=nhwc
    )
    x_valid, w_valid, restore = conv.as_valid_layer(x, w, stride, dilation)
    valid = lax.conv_general_dilated(x_valid, w_valid, (1, 1), "VALID", dimension_numbers=nhwc)
    np.testing.assert_allclose(restore(valid), expected, rtol=1e-5, atol=1e-5)


def test_as_valid_layer_refuses_a_stride_and_a_dilation():
    x, w, _ = _random((1, 8, 8, 3), (3, 3, 3, 16))
    with pytest.raises(ValueError, match="stride 2 and dilation 2"):
        conv.as_valid_layer(x, w, 2, 2)
