"""Pure array functions (no Flax): jit-, vmap- and grad-safe, batch-first NHWC."""

from resize_jax.ops.block_mean import block_mean
from resize_jax.ops.blur import blur_sigma, gaussian_blur, maybe_blur
from resize_jax.ops.conv_resized import Resize, ResizedFeatures
from resize_jax.ops.grid_sample import PADDING_MODES, grid_sample, identity_grid
from resize_jax.ops.mipmap import grid_sample_antialiased, image_pyramid
from resize_jax.ops.points import grid_to_pixels, pixels_to_grid, unwarp_points, warp_points
from resize_jax.ops.resample_embeddings import resample_patch_kernel, resample_posemb
from resize_jax.ops.resize import METHODS, interpolation_matrix, resize
from resize_jax.ops.saliency import (
    MAP_PAD_MODES,
    SeparableGrid,
    gaussian_kernel_1d,
    saliency_grid,
    sample_separable,
    separable_to_grid,
)
from resize_jax.ops.warp import invert_grid, unwarp

__all__ = [
    "MAP_PAD_MODES",
    "METHODS",
    "PADDING_MODES",
    "Resize",
    "ResizedFeatures",
    "SeparableGrid",
    "block_mean",
    "blur_sigma",
    "gaussian_blur",
    "gaussian_kernel_1d",
    "grid_sample",
    "grid_sample_antialiased",
    "grid_to_pixels",
    "identity_grid",
    "image_pyramid",
    "interpolation_matrix",
    "invert_grid",
    "maybe_blur",
    "pixels_to_grid",
    "resample_patch_kernel",
    "resample_posemb",
    "resize",
    "saliency_grid",
    "sample_separable",
    "separable_to_grid",
    "unwarp",
    "unwarp_points",
    "warp_points",
]


def __getattr__(name: str):
    if name == "PAD_MODES":  # The old name of `MAP_PAD_MODES`, kept for one release.
        from resize_jax.ops import saliency

        return saliency.__getattr__(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
