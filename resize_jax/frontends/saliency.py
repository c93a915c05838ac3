"""SaliencySampler: Recasens et al., "Learning to Zoom: a Saliency-Based Sampling Layer for
Neural Networks", ECCV 2018.

    low = downsample(images, saliency_input_shape)       # area-like averaging
    logits = saliency_net(low)  → 1 channel, resized to grid_shape
    saliency = softmax(logits over all grid cells)
    grid = saliency_grid(saliency, output_shape, ...)    # Gaussian-weighted coordinate means
    out = grid_sample(images, grid)                      # the full-resolution input

Layer names are the checkpoint format: do not rename them.
"""

from __future__ import annotations

import inspect
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from resize_jax import ops
from resize_jax.frontends.base import FrontEnd, keep_checked, resolve_renamed_fields
from resize_jax.frontends.registry import register_frontend
from resize_jax.frontends.saliency_net import SaliencyCNN
from resize_jax.ops.block_mean import block_mean
from resize_jax.ops.blur import check_blur_schedule, maybe_blur
from resize_jax.ops.checks import (
    check_bool,
    check_choice,
    check_finite,
    check_images,
    check_int,
    check_number,
    check_size_pair,
    warn_if_nchw,
)
from resize_jax.ops.grid_sample import PADDING_MODES, grid_sample
from resize_jax.ops.mipmap import grid_sample_antialiased
from resize_jax.ops.saliency import (
    MAP_PAD_MODES,
    resolve_sigma,
    saliency_grid,
    sample_separable,
    separable_to_grid,
)
from resize_jax.ops.zoom import zoom_summary

# The low-resolution copy's default size: the default SaliencyCNN's design size, and the
# paper's (with its ResNet-18 trunk) for any other saliency network.
DEFAULT_CNN_INPUT_SHAPE = (64, 64)
PAPER_INPUT_SHAPE = (224, 224)


def _accepts_train(module: nn.Module) -> bool:
    try:
        parameters = inspect.signature(type(module).__call__).parameters
    except (TypeError, ValueError):
        return False
    return "train" in parameters or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()
    )


def _low_resolution(images: jnp.ndarray, shape: tuple[int, int]) -> jnp.ndarray:
    """Area-like downsampling f[B, H, W, C] → f[B, h, w, C] for the saliency network.

    The paper's code averages (`AdaptiveAvgPool2d`), it never skips pixels. Here: the mean of
    k×k blocks for the largest integer factor k <= H/h (cost linear in the input; the centred
    remainder of fewer than k rows/columns is dropped), then an antialiased bilinear resize
    of the small image. A dense antialiased resize of the full image alone would cost ~h
    multiply-adds per input pixel (~0.5 s of CPU for 16 images 800² → 224²).
    """
    _, height, width, _ = images.shape
    k_h, k_w = max(1, height // shape[0]), max(1, width // shape[1])
    images = block_mean(images, k_h, k_w)  # the centred remainder dropped
    return ops.resize(images, shape, antialias=True)


def unwarp_dense(dense, grid, input_shape: tuple[int, int], *, iterations: int = 4):
    """dense: f[B, h, w, K] on an image sampled on `grid` (f[B, h', w', 2] or
    `ops.SeparableGrid`) → f32[B, H, W, K] on the input's pixel grid (`ops.unwarp`); a dense
    output smaller than the sampled image is first resized to it."""
    check_images(dense, "dense")
    if isinstance(grid, ops.SeparableGrid):
        sampled_shape = (int(grid.y.shape[1]), int(grid.x.shape[1]))
    else:
        sampled_shape = (int(grid.shape[1]), int(grid.shape[2]))
    dense = dense.astype(jnp.float32)
    if tuple(dense.shape[1:3]) != sampled_shape:
        dense = ops.resize(dense, sampled_shape)
    input_shape = check_size_pair(input_shape, "input_shape")
    return ops.unwarp(dense, grid, input_shape, iterations=iterations)


def _check_gaussian_width(fwhm, sigma_fraction) -> None:
    """At most one of `fwhm` and `sigma_fraction`, each a positive finite number."""
    if fwhm is not None and sigma_fraction is not None:
        raise ValueError(
            f"Give at most one of `fwhm` and `sigma_fraction`, got fwhm={fwhm!r} and "
            f"sigma_fraction={sigma_fraction!r} (set fwhm=None to use sigma_fraction)."
        )
    if fwhm is not None:
        check_number(fwhm, "fwhm", low=0, low_open=True)
    if sigma_fraction is not None:
        check_number(sigma_fraction, "sigma_fraction", low=0, low_open=True)


@register_frontend("saliency")
class SaliencySampler(FrontEnd):
    """The saliency sampler: zooms into what a small network finds salient.

    Attributes:
      output_shape: (out_h, out_w) of the sampled images.
      saliency_net: any linen module mapping f[B, h, w, C] to f[B, h', w', F] (or a tuple
        whose first element is that, e.g. a backbone returning `(features, aux)`); called
        with `train=` when its `__call__` takes it. F > 1 features go through ReLU and a 1×1
        convolution ("saliency_head") to one logit, as in the paper's code. None: the small
        `SaliencyCNN`. Its parameters live under "saliency_net" either way.
      saliency_input_shape: (h, w) of the low-resolution copy the network sees. None: 64×64
        for the default `SaliencyCNN`, whose layers are sized for it (a 32×32 map, about the
        grid; on a 224×224 copy the same layers cost 12× as much and see 1/15 of the side),
        and the paper's 224×224 for any other network (its ResNet-18 trunk).
      grid_shape: (g_h, g_w) cells of the saliency map, both >= 2 (paper: 31×31); the logits
        are bilinearly resized to it when the network's output differs.
      pad: cells of padding of the map; the Gaussian kernel spans 2·pad + 1 cells (paper: 30).
      fwhm: the Gaussian's full width at half maximum in cells. Default 13, the paper's
        public code (61×61 kernel, σ ≈ 5.52), which is what the reported numbers came from.
      sigma_fraction: alternatively σ as a fraction of the map width, the paper's text
        (1/3: σ ≈ 10.3 cells for 31). Set `fwhm=None` to use it; giving both is an error.
      saliency_floor: the fraction f of the saliency mass spread evenly over the cells,
        `(1 - f) * softmax(logits) + f / cells`, in [0, 1). It bounds the magnification: a
        map peaked on one cell pulls the grid toward it against a floor of weight f instead
        of collapsing the whole grid onto one point. 0 (the paper) leaves the softmax as it is.
      map_pad_mode: padding of the map: "edge" (paper), "reflect" or "constant".
      separable: FOVEA-style separable warp from the saliency marginals, sampled with two
        matrix products; `aux["grid"]` is then a `SeparableGrid`.
      padding_mode: what samples outside the image read, see `resize_jax.ops.grid_sample`.
      pad_mode: the deprecated name of `map_pad_mode` (kept for one release).
      antialias: sample through an image pyramid at the level matching the grid's local
        spacing (`resize_jax.ops.grid_sample_antialiased`, trilinear mip-mapping) instead of
        reading the 4 nearest pixels. Default False: the paper's code samples the raw image,
        which aliases wherever the grid shrinks. With True, details the uniform starting grid
        would skip still reach the task network as a local average, so the gradient rewards
        zooming on them from the first steps (the README's Demo section measures the
        difference). A separable grid is then sampled as the dense grid it describes.
      blur_steps, blur_max_sigma: blur pretraining (`resize_jax.ops.maybe_blur`): in
        training, when `step` is passed and `step < blur_steps`, the sampled images are
        blurred with σ ~ Uniform(0, blur_max_sigma) output pixels, σ drawn from the "blur"
        RNG stream (`rngs={"blur": key}`; the train step provides it). 0 disables it.
      unwarp_iterations: Newton iterations of the grid's inverse in `to_input` (dense
        outputs back to the input image, `ops.unwarp`).
      dtype: computation dtype of the network and the sampled images (the grid is computed
        in float32); param_dtype: parameter dtype.

    `__call__(images, *, train=False, step=None)` takes `images: f[B, H, W, C]` and returns
    `(sampled: f[B, out_h, out_w, C], aux)` with `aux["saliency"]: f32[B, g_h, g_w]` (sums
    to 1) and `aux["grid"]: f32[B, out_h, out_w, 2]` (or a `SeparableGrid`). `to_input`
    unwarps dense outputs through that grid (LZU-style "unzoom").
    """

    rng_streams: ClassVar[tuple[str, ...]] = ("blur",)
    label: ClassVar[str] = "saliency sampler"
    renamed_fields: ClassVar[dict[str, str]] = {"pad_mode": "map_pad_mode"}

    output_shape: tuple[int, int]
    saliency_net: nn.Module | None = None
    saliency_input_shape: tuple[int, int] | None = None
    grid_shape: tuple[int, int] = (31, 31)
    pad: int = 30
    fwhm: float | None = 13.0
    sigma_fraction: float | None = None
    saliency_floor: float = 0.0
    map_pad_mode: str = "edge"
    separable: bool = False
    padding_mode: str = "border"
    antialias: bool = False
    blur_steps: int = 0
    blur_max_sigma: float = 3.0
    unwarp_iterations: int = 4
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32
    pad_mode: str | None = None  # Deprecated name of `map_pad_mode`.

    def __post_init__(self):
        resolve_renamed_fields(self)
        keep_checked(
            self,
            output_shape=check_size_pair(self.output_shape, "output_shape"),
            saliency_input_shape=None
            if self.saliency_input_shape is None
            else check_size_pair(self.saliency_input_shape, "saliency_input_shape"),
            grid_shape=check_size_pair(self.grid_shape, "grid_shape"),
            pad=check_int(self.pad, "pad", minimum=0),
        )
        if min(self.grid_shape) < 2:
            raise ValueError(f"`grid_shape` must be at least (2, 2), got {self.grid_shape!r}.")
        _check_gaussian_width(self.fwhm, self.sigma_fraction)
        check_number(self.saliency_floor, "saliency_floor", low=0, high=1, high_open=True)
        check_choice(self.map_pad_mode, "map_pad_mode", MAP_PAD_MODES)
        check_choice(self.padding_mode, "padding_mode", PADDING_MODES)
        check_blur_schedule(self.blur_steps, self.blur_max_sigma)
        check_int(self.unwarp_iterations, "unwarp_iterations", minimum=0)
        for name in ("separable", "antialias"):
            check_bool(getattr(self, name), name)
        super().__post_init__()

    @property
    def low_resolution_shape(self) -> tuple[int, int]:
        """(h, w) of the copy the saliency network sees (`saliency_input_shape` resolved)."""
        if self.saliency_input_shape is not None:
            return tuple(self.saliency_input_shape)
        return DEFAULT_CNN_INPUT_SHAPE if self.saliency_net is None else PAPER_INPUT_SHAPE

    @property
    def sigma(self) -> float:
        """σ of the Gaussian kernel in map cells, from `fwhm` or `sigma_fraction`."""
        if self.sigma_fraction is None:
            return resolve_sigma(fwhm=self.fwhm)
        return resolve_sigma(sigma=float(self.sigma_fraction) * self.grid_shape[1])

    def _logits(self, images: jnp.ndarray, train: bool) -> jnp.ndarray:
        """The saliency logits on the grid: f32[B, g_h, g_w]."""
        low = _low_resolution(
            images.astype(jnp.float32),
            self.low_resolution_shape,
        ).astype(self.dtype)
        net = self.saliency_net
        if net is None:
            net = SaliencyCNN(dtype=self.dtype, param_dtype=self.param_dtype, name="saliency_net")
        features = net(low, train=train) if _accepts_train(net) else net(low)
        if isinstance(features, tuple | list):
            features = features[0]
        shape = getattr(features, "shape", None)
        if shape is None or len(shape) not in (3, 4) or shape[0] != images.shape[0]:
            raise ValueError(
                f"`saliency_net` must return f[B, h, w, F] (or f[B, h, w]) for B = "
                f"{images.shape[0]}, got {shape if shape is not None else type(features)}."
            )
        if len(shape) == 3:
            features = features[..., None]
        if features.shape[-1] != 1:
            features = nn.Conv(
                1,
                (1, 1),
                dtype=self.dtype,
                param_dtype=self.param_dtype,
                name="saliency_head",
            )(nn.relu(features))
        logits = features.astype(jnp.float32)
        grid_shape = tuple(self.grid_shape)
        if tuple(logits.shape[1:3]) != grid_shape:
            logits = ops.resize(logits, grid_shape)
        return logits[..., 0]

    @nn.compact
    def __call__(self, images: jnp.ndarray, *, train: bool = False, step=None):
        """images: f[B, H, W, C] → (f[B, out_h, out_w, C], {"saliency", "grid"})."""
        check_images(images)
        warn_if_nchw(images)
        check_bool(train, "train")
        # Checked here when concrete: a NaN pixel would otherwise surface as a NaN in the
        # internal saliency map and be blamed on it.
        check_finite(images, "images")
        logits = self._logits(images, train)
        batch, g_h, g_w = logits.shape
        saliency = jax.nn.softmax(logits.reshape(batch, g_h * g_w), axis=-1)
        if self.saliency_floor:
            floor = float(self.saliency_floor)
            saliency = (1.0 - floor) * saliency + floor / (g_h * g_w)
        saliency = saliency.reshape(batch, g_h, g_w)
        grid = saliency_grid(
            saliency,
            self.output_shape,
            pad=self.pad,
            sigma=self.sigma,
            map_pad_mode=self.map_pad_mode,
            separable=self.separable,
        )
        dense = separable_to_grid(grid) if self.separable else grid
        # Whether it zooms at all, for the training log (train/frontend/zoom_spread): a
        # sampler that never leaves the uniform grid is a plain resize.
        if self.is_mutable_collection("metrics") and not self.is_initializing():
            for name, value in zoom_summary(dense).items():
                self.sow("metrics", name, value, reduce_fn=lambda _, new: new, init_fn=lambda: 0)
        pixels = images.astype(self.dtype)
        if self.antialias:
            sampled = grid_sample_antialiased(pixels, dense, padding_mode=self.padding_mode)
        elif self.separable:
            sampled = sample_separable(pixels, grid, padding_mode=self.padding_mode)
        else:
            sampled = grid_sample(pixels, grid, padding_mode=self.padding_mode)
        if train and step is not None and self.blur_steps > 0:
            if not self.has_rng("blur"):
                raise ValueError(
                    f"Blur pretraining (`blur_steps`={self.blur_steps}) at `step` needs the "
                    '"blur" RNG stream: apply with rngs={"blur": key}.'
                )
            sampled = maybe_blur(
                sampled,
                step,
                blur_steps=self.blur_steps,
                max_sigma=self.blur_max_sigma,
                rng=self.make_rng("blur"),
            )
        return sampled, {"saliency": saliency, "grid": grid}

    @nn.nowrap
    def to_input(self, dense, aux, input_shape):
        """dense: f[B, h, w, K] on the sampled image → f32[B, H, W, K] on the input's grid,
        through the inverse of `aux["grid"]` (`ops.unwarp`). A dense output smaller than the
        sampled image (a network predicting at a fraction of its input) is first resized to
        the sampled image's size."""
        return unwarp_dense(dense, aux["grid"], input_shape, iterations=self.unwarp_iterations)
