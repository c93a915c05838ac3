"""Bilinear sampling of NHWC images at arbitrary points: `grid_sample` and `identity_grid`.

The grid convention (the one convention of the whole library):

    grid: f[B, h, w, 2]; grid[..., 0] is x (along the width), grid[..., 1] is y (along the
    height), both in [-1, 1]; -1 and +1 are the *centres* of the first and last pixel.

So a coordinate `g` on an axis of `n` pixels lands on pixel position `(g + 1) / 2 * (n - 1)`
(PyTorch's `grid_sample(..., align_corners=True)`, which the saliency sampler's public code
and `benchmarks/reference_torch.py` use). Consequences: `identity_grid` reproduces the
image exactly, and sampling an image on the uniform grid `linspace(-1, 1, m)` is a resize
with align-corners semantics (sample `o` at input position `o * (n - 1) / (m - 1)`), which
is *not* the half-pixel-centre `resize_jax.ops.resize`.

Implementation: per image (vmapped over the batch), the four neighbours of every sample are
read from the image flattened to `[H*W, C]` (one gather per corner), then mixed with bilinear
weights. The gradient with respect to the grid comes from the gathered corners alone (no
scatter, a hand-written JVP below), and the gradient with respect to the images as the
gather's transpose, a scatter-add, which is only computed when the images need a gradient.
On CPU, f32 images take a native kernel for the samples and for the grid's derivative (one
pass over the points, `resize_jax.ops.native`); the arithmetic is the same.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.custom_derivatives import SymbolicZero

from resize_jax.ops import native
from resize_jax.ops.checks import check_choice, check_images, check_positive_int
from resize_jax.ops.native.calls import batch_partitioned, map_when_vmapped, on_cpu, placed_on_cpu

PADDING_MODES = ("border", "zeros")

# The flat pixel index is int32.
_MAX_PIXELS = 2**31 - 1


def identity_grid(batch: int, height: int, width: int, dtype=jnp.float32) -> jnp.ndarray:
    """The grid that reproduces a `height`×`width` image: f[batch, height, width, 2] (x, y).

    An axis of length 1 gets the coordinate 0 (every coordinate lands on its only pixel).
    """
    for name, value in (("batch", batch), ("height", height), ("width", width)):
        check_positive_int(value, name)
    # Built in NumPy: the shapes are static, so the grid is a trace-time constant.
    xs = np.linspace(-1.0, 1.0, width) if width > 1 else np.zeros(1)
    ys = np.linspace(-1.0, 1.0, height) if height > 1 else np.zeros(1)
    grid = np.stack(np.meshgrid(xs, ys, indexing="xy"), axis=-1)
    return jnp.broadcast_to(jnp.asarray(grid, dtype), (batch, height, width, 2))


def check_grid(grid, name: str = "grid") -> None:
    """Checks `grid` is a floating f[B, h, w, 2] array."""
    check_images(grid, name)
    if grid.shape[-1] != 2:
        raise ValueError(
            f"`{name}` must have a last dimension of 2 (x, y), got shape {tuple(grid.shape)}."
        )


def clamp(x: jnp.ndarray, low, high) -> jnp.ndarray:
    """`clip` whose derivative is 1 on the closed interval [low, high] (as PyTorch's clamp).

    `jnp.clip` gives 1/2 at the bounds, and coordinates sit exactly on them all the time
    (the identity grid, the saliency grid's clamped border).
    """
    return jnp.where(x < low, low, jnp.where(x > high, high, x))


def linear_taps(coord: jnp.ndarray, n: int, padding_mode: str):
    """Bilinear taps along one axis of `n` pixels for normalised coordinates `coord`.

    Returns `(i0, i1, w0, w1)`: int32 pixel indices (always inside [0, n-1]) and their
    weights (zero for taps outside the image with "zeros" padding). The weights are linear in
    the fractional position, so their derivative is the one-sided finite difference of the
    two pixels, as in PyTorch.
    """
    if n == 1:
        # (coord + 1) / 2 * 0: every coordinate lands on the only pixel.
        zero = jnp.zeros(coord.shape, jnp.int32)
        return zero, zero, jnp.ones_like(coord), jnp.zeros_like(coord)
    pos = (coord + 1.0) * (0.5 * (n - 1))
    if padding_mode == "border":
        pos = clamp(pos, 0.0, n - 1.0)
        i0 = jnp.clip(jnp.floor(pos), 0, n - 2)
        frac = pos - i0
        i0 = i0.astype(jnp.int32)
        return i0, i0 + 1, 1.0 - frac, frac
    # "zeros": taps outside the image read zero. Positions more than a pixel outside only
    # ever read zeros, so clipping them keeps the int conversion in range.
    pos = jnp.clip(pos, -2.0, n + 1.0)
    floor = jnp.floor(pos)
    frac = pos - floor
    i0 = floor.astype(jnp.int32)
    i1 = i0 + 1
    w0 = jnp.where((i0 >= 0) & (i0 <= n - 1), 1.0 - frac, 0.0)
    w1 = jnp.where((i1 >= 0) & (i1 <= n - 1), frac, 0.0)
    return jnp.clip(i0, 0, n - 1), jnp.clip(i1, 0, n - 1), w0, w1


def grid_sample(
    images: jnp.ndarray, grid: jnp.ndarray, *, padding_mode: str = "border"
) -> jnp.ndarray:
    """Bilinearly samples `images` at the points of `grid` (convention: module docstring).

    Args:
      images: f[B, H, W, C], any floating dtype (the result has the same dtype).
      grid: f[B, h, w, 2], (x, y) in [-1, 1]; positions are computed in at least float32.
      padding_mode: what points outside [-1, 1] read: "border" (the nearest edge pixel,
        i.e. the coordinate is clamped) or "zeros" (zero outside the image, interpolated
        towards zero within one pixel of the edge).

    Returns:
      f[B, h, w, C]. Differentiable with respect to both `images` and `grid`.

    Raises:
      ValueError: naming the argument, for wrong ranks or dtypes, a grid whose last
        dimension is not 2, mismatched batch sizes, an unknown padding mode, or images with
        2**31 pixels or more (larger than the int32 flat index supports).
    """
    check_images(images)
    check_grid(grid)
    check_choice(padding_mode, "padding_mode", PADDING_MODES)
    batch, height, width, _ = images.shape
    if grid.shape[0] != batch:
        raise ValueError(
            f"`grid` must have the batch size of `images` ({batch}), got shape {tuple(grid.shape)}."
        )
    if height * width > _MAX_PIXELS:
        raise ValueError(
            f"`images` of {height}×{width} pixels is larger than supported (the flat int32 "
            f"pixel index allows fewer than 2**31 pixels per image)."
        )
    return _grid_sample(images, grid, padding_mode)


# Jitted apart from the checks: an eager call compiles once instead of op by op; inside an
# outer jit it is inlined. Vmapped over the batch, so a batch axis sharded over devices
# (explicit sharding) never enters the reshapes.
@native.jit(static_argnames="padding_mode")
def _grid_sample(images: jnp.ndarray, grid: jnp.ndarray, padding_mode: str) -> jnp.ndarray:
    return _sample_batch(images, grid, padding_mode)


def _xla_samples(images, grid, padding_mode: str) -> jnp.ndarray:
    return jax.vmap(functools.partial(_sample_one, padding_mode=padding_mode))(images, grid)


def _xla_samples_and_slopes(images, grid, padding_mode: str):
    return jax.vmap(functools.partial(_sample_and_slopes_one, padding_mode=padding_mode))(
        images, grid
    )


# On CPU, the samples (and, for the derivative with respect to the grid, their slopes) come
# from one native pass over the points (resize_jax.ops.native, grid_sample_kernels.cc) that
# reads each point's four corners once, instead of XLA's gathers. Batch 16, 224×224 samples
# of 800×800 images with a saliency grid, on 2 quiet cores, 7 paired rounds each (median,
# range): the saliency grid + sampling forward 1.19× (1.01-1.49×) and 1.33× (1.00-1.46×)
# the XLA version, forward + backward to the grid 1.19× (1.06-1.35×). Same arithmetic; where
# a caller differentiates these values again (second order), the derivatives are the XLA
# version's.
def _native_eligible(images: jnp.ndarray, grid: jnp.ndarray) -> bool:
    return (
        images.dtype == jnp.float32
        and grid.dtype in (jnp.float32, jnp.bfloat16, jnp.float16)
        and placed_on_cpu()
        and native.available()
    )


@functools.cache
def _native_op(with_slopes: bool, padding_mode: str):
    """(images, grid) -> samples, or (samples, slope_x, slope_y): the native kernel on CPU,
    the XLA version elsewhere and for its derivatives."""
    xla_fn = functools.partial(
        _xla_samples_and_slopes if with_slopes else _xla_samples, padding_mode=padding_mode
    )
    target = "resize_jax_grid_sample_slopes" if with_slopes else "resize_jax_grid_sample"
    zeros = np.int32(padding_mode == "zeros")

    def ffi(images, grid):
        result = jax.ShapeDtypeStruct((*grid.shape[:3], images.shape[-1]), jnp.float32)
        call = jax.ffi.ffi_call(target, (result,) * 3 if with_slopes else result)
        return call(images, grid, zeros=zeros)

    rule = "b h w c, b i j t -> " + ("b i j c, b i j c, b i j c" if with_slopes else "b i j c")
    native_fn = map_when_vmapped(batch_partitioned(ffi, rule, 2), fold=2)

    @jax.custom_jvp
    def op(images, grid):
        return on_cpu(native_fn, xla_fn, images, grid)

    op.defjvp(lambda primals, tangents: jax.jvp(xla_fn, primals, tangents))
    return op


def _sample_plain(images, grid, padding_mode: str) -> jnp.ndarray:
    if _native_eligible(images, grid):
        return _native_op(False, padding_mode)(images, grid.astype(jnp.float32))
    return _xla_samples(images, grid, padding_mode)


def _sample_and_slopes(images, grid, padding_mode: str):
    if _native_eligible(images, grid):
        return _native_op(True, padding_mode)(images, grid.astype(jnp.float32))
    return _xla_samples_and_slopes(images, grid, padding_mode)


# The derivative with respect to the grid is written by hand, as a JVP whose tangent is
# assembled channel by channel: its transpose (the gradient) then sums over the channels with
# a few adds. Autodiff's version reduces over the minor channel axis (3 for images) and
# recomputes the gathered corners in every fusion that uses them, ~3x slower on CPU (batch
# 16, 224×224 from 800×800, gradient to the grid: 58 ms → 20 ms measured). A JVP rule (not a
# VJP) keeps forward mode (`jax.linearize`, used by `invert_grid`) working. The images'
# derivative stays autodiff's (a gather, transposed to a scatter-add); symbolic zeros skip
# whichever part is not needed.
@functools.partial(jax.custom_jvp, nondiff_argnums=(2,))
def _sample_batch(images, grid, padding_mode: str) -> jnp.ndarray:
    return _sample_plain(images, grid, padding_mode)


@functools.partial(_sample_batch.defjvp, symbolic_zeros=True)
def _sample_batch_jvp(padding_mode: str, primals, tangents):
    images, grid = primals
    d_images, d_grid = tangents
    if isinstance(d_grid, SymbolicZero):
        out = _sample_plain(images, grid, padding_mode)
        tangent = None
    else:
        out, slope_x, slope_y = _sample_and_slopes(images, grid, padding_mode)
        d_x = d_grid[..., 0].astype(slope_x.dtype)
        d_y = d_grid[..., 1].astype(slope_y.dtype)
        channels = [slope_x[..., c] * d_x + slope_y[..., c] * d_y for c in range(out.shape[-1])]
        tangent = jnp.stack(channels, axis=-1).astype(out.dtype)
    if not isinstance(d_images, SymbolicZero):
        # XLA's gather: reverse mode transposes this tangent into a scatter-add, and a custom
        # call has no transpose.
        from_images = _xla_samples(d_images, grid, padding_mode)
        tangent = from_images if tangent is None else tangent + from_images
    if tangent is None:
        tangent = jnp.zeros_like(out)
    return out, tangent


def _taps_slopes(coord: jnp.ndarray, n: int, padding_mode: str):
    """d(w0)/d(coord) and d(w1)/d(coord) of `linear_taps` (the indices are piecewise constant)."""
    if n == 1:
        zero = jnp.zeros_like(coord)
        return zero, zero
    scale = 0.5 * (n - 1)
    raw = (coord + 1.0) * scale
    if padding_mode == "border":
        # `clamp` passes the derivative on the closed interval [0, n-1].
        slope = jnp.where((raw >= 0.0) & (raw <= n - 1.0), scale, 0.0)
        return -slope, slope
    slope = jnp.where((raw > -2.0) & (raw < n + 1.0), scale, 0.0)
    floor = jnp.floor(jnp.clip(raw, -2.0, n + 1.0)).astype(jnp.int32)
    inside0 = (floor >= 0) & (floor <= n - 1)
    inside1 = (floor + 1 >= 0) & (floor + 1 <= n - 1)
    return jnp.where(inside0, -slope, 0.0), jnp.where(inside1, slope, 0.0)


def _sample_and_slopes_one(image, grid, padding_mode: str):
    """image f[H, W, C], grid f[h, w, 2] → (samples f[h, w, C], d samples/d x, d samples/d y)."""
    height, width, channels = image.shape
    coords = grid.astype(jnp.promote_types(grid.dtype, jnp.float32))
    x0, x1, wx0, wx1 = linear_taps(coords[..., 0], width, padding_mode)
    y0, y1, wy0, wy1 = linear_taps(coords[..., 1], height, padding_mode)
    dx0, dx1 = _taps_slopes(coords[..., 0], width, padding_mode)
    dy0, dy1 = _taps_slopes(coords[..., 1], height, padding_mode)
    flat = image.reshape(height * width, channels)

    def corner(yi, xi):
        return flat.at[yi * width + xi].get(mode="promise_in_bounds").astype(coords.dtype)

    def e(weights):  # broadcast a per-point weight over the channels
        return weights[..., None]

    c00, c01, c10, c11 = corner(y0, x0), corner(y0, x1), corner(y1, x0), corner(y1, x1)
    top, bottom = e(wx0) * c00 + e(wx1) * c01, e(wx0) * c10 + e(wx1) * c11
    samples = (e(wy0) * top + e(wy1) * bottom).astype(image.dtype)
    slope_x = e(wy0) * (e(dx0) * c00 + e(dx1) * c01) + e(wy1) * (e(dx0) * c10 + e(dx1) * c11)
    slope_y = e(dy0) * top + e(dy1) * bottom
    return samples, slope_x, slope_y


def _sample_one(image: jnp.ndarray, grid: jnp.ndarray, padding_mode: str) -> jnp.ndarray:
    """image: f[H, W, C], grid: f[h, w, 2] → f[h, w, C]."""
    height, width, channels = image.shape
    dtype = image.dtype
    coords = grid.astype(jnp.promote_types(grid.dtype, jnp.float32))
    x0, x1, wx0, wx1 = linear_taps(coords[..., 0], width, padding_mode)
    y0, y1, wy0, wy1 = linear_taps(coords[..., 1], height, padding_mode)
    flat = image.reshape(height * width, channels)

    def corner(yi, xi):
        # Indices are in range by construction: skip the bounds handling.
        return flat.at[yi * width + xi].get(mode="promise_in_bounds")

    def weight(w):
        return w.astype(dtype)[..., None]

    top = weight(wx0) * corner(y0, x0) + weight(wx1) * corner(y0, x1)
    bottom = weight(wx0) * corner(y1, x0) + weight(wx1) * corner(y1, x1)
    return weight(wy0) * top + weight(wy1) * bottom
