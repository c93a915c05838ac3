"""The saliency sampler's grid (Recasens et al., "Learning to Zoom", ECCV 2018).

For a saliency map S on a coarse g_h×g_w grid, the sampling grid is the Gaussian-weighted
mean of the coordinates under the saliency mass:

    u(x, y) = Σ S(x', y') k((x, y), (x', y')) x' / Σ S(x', y') k((x, y), (x', y'))

and v likewise with y'. Before that, S is padded by `pad` cells on every side (edge-
replicated in the paper's code) and the coordinates of the padded cells run past [0, 1]
(`x' = (j - pad) / (g_w - 1)`), so the borders are not pulled towards the centre; the result
is mapped to [-1, 1] and clamped (`grid = clamp(2u - 1, -1, 1)`). Both sums are "valid"
convolutions of the padded map with the (2·pad + 1)² Gaussian kernel; here the Gaussian is
applied as two 1-D passes (it is separable: equal to the dense 2-D kernel), and the three
maps S·x', S·y' and S go through each pass together, as the channels of one call.

Each 1-D pass is a "valid" correlation of the padded map. By default
(`implementation="matmul"`) the padding is folded into the pass: padding is a linear map P
for every mode, so a pass is a product with the g×g matrix G·P (G·diag(x')·P for the
coordinate channel), formed in float64 when traced, and the padded map is never built (31×31
products instead of 31×91 ones behind a pad, for the paper's setting). `implementation="conv"`
pads the map and runs each pass as a depthwise `lax.conv_general_dilated`
(feature_group_count=3). Both give the same sums (tested); on CPU, XLA's depthwise
convolution of these tiny maps is 20–100× slower than the products, forward and backward.

The coarse grid is then upsampled to the output size bilinearly with align-corners
semantics (as the paper's `nn.Upsample` and the reference's `F.interpolate(...,
align_corners=True)`).

The Gaussian: the paper's text says σ is one third of the saliency-map width; its public code
uses FWHM = 13 cells (σ = 13 / (2·sqrt(2·ln 2)) ≈ 5.52) on a 61×61 kernel. The default here is
the public code's FWHM 13, because that is the code the reported numbers came from; pass
`sigma=g_w / 3` for the paper's text. The kernel always spans 2·pad + 1 cells.

The separable variant (FOVEA-style, Thavamani et al. 2021) builds one 1-D grid per axis from
the saliency marginals, so x depends only on the output column and y only on the row; such a
grid is sampled with two interpolation-matrix products (`sample_separable`, no gather).
"""

from __future__ import annotations

import functools
import math
import warnings
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from resize_jax.ops import banded_resize as banded
from resize_jax.ops.checks import (
    check_bool,
    check_choice,
    check_images,
    check_int,
    check_number,
    check_positive_int,
    check_size_pair,
    renamed,
)
from resize_jax.ops.grid_sample import PADDING_MODES, clamp, linear_taps

# Padding of the saliency map before the Gaussian passes (NumPy's `np.pad` modes).
MAP_PAD_MODES = ("edge", "reflect", "constant")


def __getattr__(name: str):
    if name == "PAD_MODES":  # The old name, kept for one release.
        warnings.warn(
            "`PAD_MODES` is deprecated; use `MAP_PAD_MODES`.", DeprecationWarning, stacklevel=2
        )
        return MAP_PAD_MODES
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


IMPLEMENTATIONS = ("matmul", "conv")
DEFAULT_FWHM = 13.0
# An output side above this is refused: the dense grid alone would take 16384² × 2 × 4 bytes
# = 2 GiB per image, far beyond any front-end's purpose.
MAX_OUTPUT_SIDE = 16384
_FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))


class SeparableGrid(NamedTuple):
    """A separable sampling grid: the dense grid is `(x[b, j], y[b, i])` at output pixel (i, j).

    Attributes:
      x: f[B, out_w], x coordinates (along the width) in [-1, 1] of the output columns.
      y: f[B, out_h], y coordinates (along the height) in [-1, 1] of the output rows.
    """

    x: jnp.ndarray
    y: jnp.ndarray


def resolve_sigma(fwhm=None, sigma=None) -> float:
    """The Gaussian's σ (in cells) from at most one of `fwhm` or `sigma`; default FWHM 13."""
    if fwhm is not None and sigma is not None:
        raise ValueError(
            f"Give at most one of `fwhm` and `sigma`, got fwhm={fwhm!r} and sigma={sigma!r}."
        )
    if sigma is not None:
        return check_number(sigma, "sigma", low=0, low_open=True)
    fwhm = DEFAULT_FWHM if fwhm is None else check_number(fwhm, "fwhm", low=0, low_open=True)
    return fwhm / _FWHM_PER_SIGMA


def gaussian_kernel_1d(size: int, *, fwhm=None, sigma=None) -> np.ndarray:
    """The 1-D Gaussian `f64[size]`, peak 1 at the centre cell `size // 2`.

    `exp(-4 ln2 r² / fwhm²) = exp(-r² / (2σ²))`, the paper code's `makeGaussian` along one
    axis; its outer product with itself is the dense 2-D kernel. Give at most one of `fwhm`
    and `sigma` (in cells); neither means FWHM 13. The scale is irrelevant to the grid (it
    cancels in the ratio), so the kernel is not normalised.
    """
    if check_positive_int(size, "size") % 2 == 0:
        raise ValueError(f"`size` must be a positive odd integer, got {size!r}.")
    s = resolve_sigma(fwhm, sigma)
    r = np.arange(size, dtype=np.float64) - size // 2
    return np.exp(-(r**2) / (2.0 * s**2))


@functools.lru_cache(maxsize=256)
def align_corners_matrix(in_size: int, out_size: int) -> np.ndarray:
    """Bilinear upsampling weights `f64[out_size, in_size]` with align-corners semantics.

    Output sample `o` reads input position `o (in_size - 1) / (out_size - 1)`, so the first
    and last samples of both sides coincide (PyTorch's `align_corners=True`).
    """
    if out_size == 1 or in_size == 1:
        pos = np.zeros(out_size)
    else:
        pos = np.arange(out_size) * ((in_size - 1) / (out_size - 1))
    weights = np.maximum(0.0, 1.0 - np.abs(np.arange(in_size)[None, :] - pos[:, None]))
    weights.setflags(write=False)  # Shared through the cache.
    return weights


def _check_saliency(saliency, rank: int = 3) -> None:
    check_images(saliency, "saliency", rank=rank)
    small = [int(d) for d in saliency.shape[1:] if int(d) < 2]
    if small:
        raise ValueError(
            f"`saliency` must be at least 2×2 cells [B, g_h >= 2, g_w >= 2], got shape "
            f"{tuple(saliency.shape)}."
        )
    if isinstance(saliency, jax.core.Tracer):
        return  # Values are unknown under tracing; bad maps then give a NaN grid instead.
    values = np.asarray(saliency, dtype=np.float64)
    if not np.all(np.isfinite(values)):
        raise ValueError("`saliency` must be finite, got NaN or infinite values.")
    if np.any(values < 0):
        raise ValueError(f"`saliency` must be non-negative, got a minimum of {values.min()!r}.")


def _check_arguments(output_shape, pad, map_pad_mode) -> tuple[int, int]:
    out_h, out_w = check_size_pair(output_shape, "output_shape")
    if max(out_h, out_w) > MAX_OUTPUT_SIDE:
        raise ValueError(
            f"`output_shape` {(out_h, out_w)} is larger than supported (sides up to "
            f"{MAX_OUTPUT_SIDE})."
        )
    check_int(pad, "pad", minimum=0)
    check_choice(map_pad_mode, "map_pad_mode", MAP_PAD_MODES)
    return out_h, out_w


def _banded_matrix(kernel: np.ndarray, cells: int) -> np.ndarray:
    """The valid 1-D correlation with `kernel` as a matrix f64[cells, cells + size - 1]."""
    size = kernel.size
    band = np.zeros((cells, cells + size - 1))
    for j in range(cells):
        band[j, j : j + size] = kernel
    return band


def _gaussian_mean(stacked: jnp.ndarray, kernel: np.ndarray):
    """Valid Gaussian filtering of `stacked: f[B, *padded, K]` along each spatial axis.

    One depthwise `conv_general_dilated` (feature_group_count=K) per spatial axis: the 1-D
    passes of the separable kernel, all K channels at once.
    """
    ndim = stacked.ndim - 2
    size = kernel.size
    hi = lax.Precision.HIGHEST
    out = stacked
    channels = stacked.shape[-1]
    letters = "HW"[-ndim:]
    numbers_ = lax.conv_dimension_numbers(
        stacked.shape,
        (*([1] * ndim), 1, channels),
        (f"N{letters}C", f"{letters}IO", f"N{letters}C"),
    )
    taps = jnp.asarray(kernel, stacked.dtype)
    for axis in range(ndim):
        shape = [1] * ndim
        shape[axis] = size
        rhs = jnp.broadcast_to(taps.reshape(*shape, 1, 1), (*shape, 1, channels))
        out = lax.conv_general_dilated(
            out,
            rhs,
            window_strides=(1,) * ndim,
            padding="VALID",
            dimension_numbers=numbers_,
            feature_group_count=channels,
            precision=hi,
        )
    return out


def _pad(values: jnp.ndarray, pad: int, pad_mode: str, ndim: int) -> jnp.ndarray:
    """Pads the `ndim` spatial axes of f[B, *cells]."""
    widths = ((0, 0),) + ((pad, pad),) * ndim
    kwargs = {"constant_values": 0} if pad_mode == "constant" else {}
    return jnp.pad(values, widths, mode=pad_mode, **kwargs)


def _coordinates(cells: int, pad: int) -> np.ndarray:
    # Padded cells continue the coordinate ramp past [0, 1].
    return (np.arange(cells + 2 * pad, dtype=np.float64) - pad) / (cells - 1)


def _means(sums, identity, ndim):
    """Gaussian-weighted coordinate means from `sums: f[B, *cells, ndim + 1]` (the weighted
    coordinates, then the weights' total), clamped into [-1, 1]: f[B, *cells, ndim]."""
    numerators, denominator = sums[..., :ndim], sums[..., ndim:]
    # No saliency mass within the kernel's reach (possible with zero maps or constant
    # padding): sample uniformly there instead of dividing by zero.
    safe = jnp.where(denominator > 0, denominator, 1.0)
    means = jnp.where(denominator > 0, numerators / safe, identity)
    return clamp(2.0 * means - 1.0, -1.0, 1.0)


def _padded_sums(padded, coords, sigma, pad):
    """The sums of `_means` by depthwise convolutions of the padded map ("conv")."""
    mass = padded[..., None]
    stacked = jnp.concatenate([mass * c for c in coords] + [mass], axis=-1)
    return _gaussian_mean(stacked, gaussian_kernel_1d(2 * pad + 1, sigma=sigma))


@functools.lru_cache(maxsize=256)
def _folded_passes(cells: int, pad: int, sigma: float, pad_mode: str):
    """One axis's Gaussian pass over the padded map, with the padding folded in: `(plain,
    weighted)`, each f64[cells, cells], `G·P` and `G·diag(coords)·P` for the padding P
    (f[cells + 2·pad, cells], linear for every mode), the valid correlation G with the kernel
    and the padded cells' coordinates. The padded map is never built: each pass is a
    cells×cells product instead of a cells×(cells + 2·pad) one behind a pad (31×31 instead
    of 31×91 for the paper's map), and the coordinate channel needs no product of its own
    on the other axis."""
    kernel = gaussian_kernel_1d(2 * pad + 1, sigma=sigma)
    padding = np.pad(np.eye(cells), ((pad, pad), (0, 0)), mode=pad_mode)
    correlation = _banded_matrix(kernel, cells)
    plain = correlation @ padding
    weighted = correlation @ (_coordinates(cells, pad)[:, None] * padding)
    for m in (plain, weighted):
        m.setflags(write=False)  # Shared through the cache.
    return plain, weighted


def _folded_sums(values, pad, sigma, pad_mode):
    """values: f[B, g_h, g_w] → the sums of `_means`, f[B, g_h, g_w, 3] (x, y, total)."""
    _, g_h, g_w = values.shape
    plain_h, weighted_h = _folded_passes(g_h, pad, sigma, pad_mode)
    plain_w, weighted_w = _folded_passes(g_w, pad, sigma, pad_mode)
    hi = lax.Precision.HIGHEST
    # Along the width: the x-weighted pass (for x) and the plain one (for y and the total).
    cols = jnp.asarray(np.stack([weighted_w, plain_w]), values.dtype)
    across = jnp.einsum("bhw,kjw->bkhj", values, cols, precision=hi)
    # Along the height: plain for x and the total, y-weighted for y.
    rows = jnp.asarray(np.stack([plain_h, weighted_h, plain_h]), values.dtype)
    return jnp.einsum("kih,bkhj->bijk", rows, across[:, np.array([0, 1, 1])], precision=hi)


def _nan_if_invalid(saliency: jnp.ndarray, grid, axes: tuple[int, ...]):
    """Marks grids of maps with negative or non-finite values (only seen under tracing)."""
    bad = jnp.any((saliency < 0) | ~jnp.isfinite(saliency), axis=axes)
    return jnp.where(bad.reshape(bad.shape + (1,) * (grid.ndim - 1)), jnp.nan, grid)


def saliency_grid(
    saliency: jnp.ndarray,
    output_shape: tuple[int, int],
    *,
    pad: int = 30,
    fwhm: float | None = None,
    sigma: float | None = None,
    map_pad_mode: str = "edge",
    separable: bool = False,
    implementation: str = "matmul",
    pad_mode: str | None = None,
):
    """The saliency sampler's sampling grid (equations: module docstring).

    Args:
      saliency: f[B, g_h, g_w], non-negative (usually a softmax over the cells; any positive
        scale gives the same grid), g_h, g_w >= 2.
      output_shape: (out_h, out_w) of the grid, sides up to `MAX_OUTPUT_SIDE`.
      pad: cells of padding on each side; the Gaussian kernel spans 2·pad + 1 cells.
      fwhm, sigma: the Gaussian's width in cells, at most one of them; neither means FWHM 13
        (the paper's public code). The paper's text corresponds to `sigma=g_w / 3`.
      map_pad_mode: how the map is padded: "edge" (the paper's replication), "reflect" or
        "constant" (zeros).
      separable: build one 1-D grid per axis from the saliency marginals (FOVEA-style).
      implementation: how the 1-D Gaussian passes run: "matmul" (products with the padding
        folded in, the default) or "conv" (depthwise `lax.conv_general_dilated` of the padded
        map); equal results, see the module docstring for why matmul is the default.
      pad_mode: the deprecated name of `map_pad_mode` (kept for one release).

    Returns:
      f[B, out_h, out_w, 2] in the grid convention of `grid_sample` (x, y in [-1, 1]), or
      with `separable=True` a `SeparableGrid(x: f[B, out_w], y: f[B, out_h])`. The dtype is
      the saliency's, promoted to at least float32. Under `jit`, where values cannot be
      checked, the grid of a map with negative or non-finite values is NaN.

    Raises:
      ValueError: naming the argument, for a wrong rank, dtype or size of `saliency`,
        negative or non-finite values (checked when not traced), a bad or too large
        `output_shape`, a negative `pad`, both `fwhm` and `sigma`, an unknown `map_pad_mode`,
        or a non-bool `separable`.
    """
    _check_saliency(saliency)
    map_pad_mode = renamed(map_pad_mode, "map_pad_mode", "edge", pad_mode, "pad_mode")
    out_h, out_w = _check_arguments(output_shape, pad, map_pad_mode)
    check_choice(implementation, "implementation", IMPLEMENTATIONS)
    return _saliency_grid(
        saliency,
        (out_h, out_w),
        int(pad),
        resolve_sigma(fwhm, sigma),
        map_pad_mode,
        check_bool(separable, "separable"),
        implementation,
    )


# Jitted apart from the checks (which need concrete values): an eager call compiles once
# instead of op by op; inside an outer jit it is inlined.
@functools.partial(jax.jit, static_argnums=(1, 2, 3, 4, 5, 6))
def _saliency_grid(saliency, *static):
    # Vmapped over the batch: the helpers below see a batch of one, so a batch axis sharded
    # over devices (explicit sharding) never enters their pads, products and reshapes.
    one = functools.partial(_saliency_grid_batch, *static)
    return jax.vmap(lambda s: jax.tree.map(lambda a: a[0], one(s[None])))(saliency)


def _saliency_grid_batch(output_shape, pad, sigma, pad_mode, separable, implementation, saliency):
    out_h, out_w = output_shape
    dtype = jnp.promote_types(saliency.dtype, jnp.float32)
    values = saliency.astype(dtype)
    _, g_h, g_w = values.shape
    rows = align_corners_matrix(g_h, out_h)
    cols = align_corners_matrix(g_w, out_w)
    hi = lax.Precision.HIGHEST

    if separable:
        axes = []
        for marginal, cells, upsample in ((values.sum(1), g_w, cols), (values.sum(2), g_h, rows)):
            identity = jnp.asarray(np.arange(cells) / (cells - 1), dtype)[None, :, None]
            if implementation == "matmul":
                plain, weighted = (
                    jnp.asarray(m, dtype) for m in _folded_passes(cells, pad, sigma, pad_mode)
                )
                sums = jnp.stack(
                    [jnp.einsum("ic,bc->bi", m, marginal, precision=hi) for m in (weighted, plain)],
                    axis=-1,
                )
            else:
                coords = jnp.asarray(_coordinates(cells, pad), dtype)[None, :, None]
                sums = _padded_sums(_pad(marginal, pad, pad_mode, ndim=1), [coords], sigma, pad)
            coarse = _means(sums, identity, ndim=1)[..., 0]
            fine = jnp.einsum("og,bg->bo", jnp.asarray(upsample, dtype), coarse, precision=hi)
            axes.append(_nan_if_invalid(values, fine, axes=(1, 2)))
        return SeparableGrid(x=axes[0], y=axes[1])

    identity = jnp.stack(
        jnp.meshgrid(
            jnp.asarray(np.arange(g_w) / (g_w - 1), dtype),
            jnp.asarray(np.arange(g_h) / (g_h - 1), dtype),
            indexing="xy",
        ),
        axis=-1,
    )[None]
    if implementation == "matmul":
        sums = _folded_sums(values, pad, sigma, pad_mode)
    else:
        xs = jnp.asarray(_coordinates(g_w, pad), dtype)[None, None, :, None]
        ys = jnp.asarray(_coordinates(g_h, pad), dtype)[None, :, None, None]
        sums = _padded_sums(_pad(values, pad, pad_mode, ndim=2), [xs, ys], sigma, pad)
    # Marked before the upsampling, which carries a NaN cell into every output it reaches
    # (all of them, as the whole coarse grid is marked): one pass fewer over the output.
    coarse = _nan_if_invalid(values, _means(sums, identity, ndim=2), axes=(1, 2))
    return _upsample(coarse, rows, cols)


def _upsample(coarse: jnp.ndarray, rows: np.ndarray, cols: np.ndarray) -> jnp.ndarray:
    """coarse: f[B, g_h, g_w, 2] → f[B, out_h, out_w, 2], the products `rows · coarse · colsᵀ`.

    Each output reads 2×2 cells: on CPU one native banded pass (`banded_resize`) writes the
    grid directly, where the dense products cost 31 multiply-adds per output for the paper's
    map, behind a transposing copy (batch 16, 31² → 224²: ~1.8 ms of a ~3.5 ms grid).
    """
    if banded.eligible(coarse):
        return banded.banded_resize(coarse, rows, cols)
    hi = lax.Precision.HIGHEST
    fine = jnp.einsum("oh,bhwk->bowk", jnp.asarray(rows, coarse.dtype), coarse, precision=hi)
    return jnp.einsum("pw,bowk->bopk", jnp.asarray(cols, coarse.dtype), fine, precision=hi)


def check_separable_grid(sep_grid, name: str = "sep_grid") -> None:
    """Checks `sep_grid` is a `SeparableGrid` of floating f[B, out_w] and f[B, out_h]."""
    if not isinstance(sep_grid, SeparableGrid):
        raise ValueError(f"`{name}` must be a SeparableGrid, got {type(sep_grid).__name__}.")
    check_images(sep_grid.x, f"{name}.x", rank=2)
    check_images(sep_grid.y, f"{name}.y", rank=2)
    if sep_grid.x.shape[0] != sep_grid.y.shape[0]:
        raise ValueError(
            f"`{name}.x` and `{name}.y` must have the same batch size, got shapes "
            f"{tuple(sep_grid.x.shape)} and {tuple(sep_grid.y.shape)}."
        )


def separable_to_grid(sep_grid: SeparableGrid) -> jnp.ndarray:
    """The dense grid f[B, out_h, out_w, 2] of a `SeparableGrid` (its outer product)."""
    check_separable_grid(sep_grid)
    dtype = jnp.promote_types(sep_grid.x.dtype, sep_grid.y.dtype)
    out_w, out_h = sep_grid.x.shape[1], sep_grid.y.shape[1]
    batch = sep_grid.x.shape[0]
    gx = jnp.broadcast_to(sep_grid.x.astype(dtype)[:, None, :], (batch, out_h, out_w))
    gy = jnp.broadcast_to(sep_grid.y.astype(dtype)[:, :, None], (batch, out_h, out_w))
    return jnp.stack([gx, gy], axis=-1)


def interpolation_weights(coords: jnp.ndarray, n: int, padding_mode: str, dtype) -> jnp.ndarray:
    """Bilinear weights f[..., m, n] of `coords: f[..., m]` (grid convention) over `n` pixels."""
    i0, i1, w0, w1 = linear_taps(
        coords.astype(jnp.promote_types(coords.dtype, jnp.float32)), n, padding_mode
    )
    pixels = jnp.arange(n, dtype=jnp.int32)
    weights = jnp.where(i0[..., None] == pixels, w0[..., None], 0.0)
    # `+=`: with one pixel both taps are the same index.
    weights = weights + jnp.where(i1[..., None] == pixels, w1[..., None], 0.0)
    return weights.astype(dtype)


def sample_separable(
    images: jnp.ndarray, sep_grid: SeparableGrid, *, padding_mode: str = "border"
) -> jnp.ndarray:
    """Samples `images` on a separable grid as two interpolation-matrix products (no gather).

    Equal to `grid_sample(images, separable_to_grid(sep_grid), padding_mode=...)`; dense
    matrix products are the fast path on TPU and GPU. The matrices are f[B, out_h, H] and
    f[B, out_w, W]; the cheaper contraction order is picked from the static shapes.

    Args:
      images: f[B, H, W, C].
      sep_grid: `SeparableGrid(x: f[B, out_w], y: f[B, out_h])`.
      padding_mode: "border" or "zeros", as in `grid_sample`.

    Returns:
      f[B, out_h, out_w, C], the dtype of `images`.
    """
    check_images(images)
    check_separable_grid(sep_grid)
    check_choice(padding_mode, "padding_mode", PADDING_MODES)
    batch = images.shape[0]
    if sep_grid.x.shape[0] != batch:
        raise ValueError(
            f"`sep_grid` must have the batch size of `images` ({batch}), got x of shape "
            f"{tuple(sep_grid.x.shape)}."
        )
    return _sample_separable(images, sep_grid, padding_mode)


@functools.partial(jax.jit, static_argnames="padding_mode")
def _sample_separable(images, sep_grid: SeparableGrid, padding_mode: str) -> jnp.ndarray:
    # Vmapped over the batch (a sharded batch axis never enters the products' layouts).
    return jax.vmap(functools.partial(_sample_separable_one, padding_mode=padding_mode))(
        images, sep_grid.x, sep_grid.y
    )


def _sample_separable_one(image, x, y, padding_mode: str) -> jnp.ndarray:
    """image: f[H, W, C], x: f[out_w], y: f[out_h] → f[out_h, out_w, C]."""
    height, width, _ = image.shape
    out_w, out_h = x.shape[0], y.shape[0]
    rows = interpolation_weights(y, height, padding_mode, image.dtype)
    cols = interpolation_weights(x, width, padding_mode, image.dtype)
    hi = lax.Precision.HIGHEST
    # The cheaper contraction order, from the static shapes.
    if out_h * width * (height + out_w) <= out_w * height * (width + out_h):
        out = jnp.einsum("oh,hwc->owc", rows, image, precision=hi)
        return jnp.einsum("pw,owc->opc", cols, out, precision=hi)
    out = jnp.einsum("pw,hwc->hpc", cols, image, precision=hi)
    return jnp.einsum("oh,hpc->opc", rows, out, precision=hi)
