"""Blur pretraining for the saliency sampler (Recasens et al., ECCV 2018, section 3.3).

Early in training the task network is fed a *blurred* sampled image, so that details are
only visible where the sampler zooms in: that rewards zooming before the task network has
learnt to use details. The public code blurs (downsamples to a random size and upsamples)
during the first part of training. Here the blur is a Gaussian of random strength
σ ~ Uniform(0, max_sigma) output pixels, one σ per batch, during the first `blur_steps`
steps and none afterwards; shapes stay static, so it is jit-friendly, and the step and the
key are ordinary (traced) arguments. The training loop can call `maybe_blur` itself, or pass
`step` to `SaliencySampler(..., blur_steps=...)`, which calls it in training mode only.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from resize_jax.ops.checks import check_images, check_int, check_number


def check_blur_schedule(blur_steps, max_sigma) -> int:
    """Checks the schedule's arguments; returns the kernel radius ⌈3 max_sigma⌉."""
    check_int(blur_steps, "blur_steps", minimum=0)
    return math.ceil(3.0 * check_number(max_sigma, "max_sigma", low=0))


def blur_sigma(step, *, blur_steps: int, max_sigma: float, rng) -> jnp.ndarray:
    """σ of this step's blur, f32[]: Uniform(0, max_sigma) while `step < blur_steps`, else 0."""
    check_blur_schedule(blur_steps, max_sigma)
    sigma = jax.random.uniform(rng, (), jnp.float32, 0.0, float(max_sigma))
    return jnp.where(jnp.asarray(step) < blur_steps, sigma, 0.0)


def gaussian_blur(images: jnp.ndarray, sigma, *, radius: int) -> jnp.ndarray:
    """Separable Gaussian blur of f[B, H, W, C] with a traced σ (pixels), edge-replicated.

    The kernel has a static `radius` (2·radius + 1 taps) and is normalised to sum 1; σ = 0
    is the identity.
    """
    check_images(images)
    radius = check_int(radius, "radius", minimum=0)
    if radius == 0:
        return images
    dtype = images.dtype
    sigma = jnp.asarray(sigma, jnp.float32)
    offsets = jnp.arange(-radius, radius + 1, dtype=jnp.float32)
    # σ = 0 would divide by zero: the limit is the unit impulse.
    safe = jnp.where(sigma > 0, sigma, 1.0)
    taps = jnp.where(sigma > 0, jnp.exp(-0.5 * jnp.square(offsets / safe)), offsets == 0)
    taps = taps / taps.sum()
    hi = lax.Precision.HIGHEST
    _, height, width, _ = images.shape
    rows, cols = _blur_matrix(taps, height, radius, dtype), _blur_matrix(taps, width, radius, dtype)
    out = jnp.einsum("ih,bhwc->biwc", rows, images, precision=hi)
    return jnp.einsum("jw,biwc->bijc", cols, out, precision=hi)


def _blur_matrix(taps: jnp.ndarray, n: int, radius: int, dtype) -> jnp.ndarray:
    """The 1-D blur with edge replication as a matrix f[n, n] (row i: output pixel i).

    A matrix product rather than a depthwise convolution: XLA:CPU runs the latter ~20×
    slower (600 ms against ~30 ms for 16×224×224×3, radius 9, CPU time).
    """
    # Tap t of output pixel i reads pixel clip(i + t - radius): edge replication.
    source = np.clip(np.arange(n)[:, None] + np.arange(-radius, radius + 1)[None, :], 0, n - 1)
    hits = jnp.asarray(source)[:, :, None] == jnp.arange(n)[None, None, :]
    return jnp.sum(jnp.where(hits, taps[None, :, None], 0.0), axis=1).astype(dtype)


def maybe_blur(images, step, *, blur_steps: int, max_sigma: float, rng) -> jnp.ndarray:
    """Blurs `images: f[B, H, W, C]` with a random σ during the first `blur_steps` steps.

    Args:
      images: the sampled images, f[B, H, W, C].
      step: the training step (int or traced int scalar).
      blur_steps: number of initial steps that are blurred (the paper's code: about the
        first quarter of training); 0 disables the blur.
      max_sigma: the largest σ, in pixels of `images`.
      rng: a `jax.random.key`, consumed for σ.

    Returns:
      f[B, H, W, C]; `images` unchanged from `step >= blur_steps` on (the convolution is
      skipped by a `lax.cond`).
    """
    check_images(images)
    radius = check_blur_schedule(blur_steps, max_sigma)
    if blur_steps == 0 or radius == 0:
        return images
    sigma = blur_sigma(step, blur_steps=blur_steps, max_sigma=max_sigma, rng=rng)
    return lax.cond(
        sigma > 0,
        lambda x: gaussian_blur(x, sigma, radius=radius),
        lambda x: x,
        images,
    )
