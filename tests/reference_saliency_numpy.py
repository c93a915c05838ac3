"""Independent NumPy oracle of the saliency sampler's equations (Recasens et al., ECCV 2018).

Written from the paper and its public code, sharing no code with resize_jax: the dense 2-D
Gaussian kernel, explicit `np.pad`, loops over the grid cells, an explicit align-corners
bilinear upsampling, float64 throughout.
"""

from __future__ import annotations

import math

import numpy as np


def make_gaussian(size: int, *, fwhm: float | None = None, sigma: float | None = None):
    """The paper code's `makeGaussian(size, fwhm)`: a dense [size, size] kernel, peak 1."""
    if sigma is not None:
        fwhm = sigma * 2.0 * math.sqrt(2.0 * math.log(2.0))
    centre = size // 2
    y, x = np.mgrid[0:size, 0:size]
    return np.exp(-4.0 * math.log(2.0) * ((x - centre) ** 2 + (y - centre) ** 2) / fwhm**2)


def upsample_align_corners(coarse: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """Bilinear upsampling with align_corners=True. coarse: [B, g_h, g_w, K]."""
    _, g_h, g_w, _ = coarse.shape
    out = np.zeros((coarse.shape[0], out_h, out_w, coarse.shape[-1]))
    for i in range(out_h):
        py = i * (g_h - 1) / (out_h - 1) if out_h > 1 else 0.0
        y0 = min(math.floor(py), g_h - 2)
        fy = py - y0
        for j in range(out_w):
            px = j * (g_w - 1) / (out_w - 1) if out_w > 1 else 0.0
            x0 = min(math.floor(px), g_w - 2)
            fx = px - x0
            out[:, i, j] = (
                coarse[:, y0, x0] * (1 - fy) * (1 - fx)
                + coarse[:, y0, x0 + 1] * (1 - fy) * fx
                + coarse[:, y0 + 1, x0] * fy * (1 - fx)
                + coarse[:, y0 + 1, x0 + 1] * fy * fx
            )
    return out


def saliency_grid(saliency, out_hw, *, pad=30, fwhm=13.0, sigma=None, pad_mode="edge"):
    """saliency: [B, g_h, g_w] → grid [B, out_h, out_w, 2] (x, y) in [-1, 1]."""
    saliency = np.asarray(saliency, np.float64)
    b, g_h, g_w = saliency.shape
    kernel = make_gaussian(2 * pad + 1, fwhm=None if sigma is not None else fwhm, sigma=sigma)
    padded = np.pad(saliency, ((0, 0), (pad, pad), (pad, pad)), mode=pad_mode)
    coarse = np.zeros((b, g_h, g_w, 2))
    for i in range(g_h):
        for j in range(g_w):
            window = padded[:, i : i + 2 * pad + 1, j : j + 2 * pad + 1] * kernel
            # Coordinates of the window's cells, running past [0, 1] in the padding.
            xs = (np.arange(j, j + 2 * pad + 1) - pad) / (g_w - 1)
            ys = (np.arange(i, i + 2 * pad + 1) - pad) / (g_h - 1)
            total = window.sum(axis=(1, 2))
            u = (window * xs[None, None, :]).sum(axis=(1, 2)) / total
            v = (window * ys[None, :, None]).sum(axis=(1, 2)) / total
            coarse[:, i, j, 0] = np.clip(2 * u - 1, -1, 1)
            coarse[:, i, j, 1] = np.clip(2 * v - 1, -1, 1)
    return upsample_align_corners(coarse, *out_hw)


def separable_saliency_grid(saliency, out_hw, *, pad=30, fwhm=13.0, sigma=None, pad_mode="edge"):
    """FOVEA-style separable grid: 1-D means over the marginals → (x [B, out_w], y [B, out_h])."""
    saliency = np.asarray(saliency, np.float64)
    kernel_2d = make_gaussian(2 * pad + 1, fwhm=None if sigma is not None else fwhm, sigma=sigma)
    kernel = kernel_2d[pad]  # The middle row: the 1-D Gaussian with peak 1.
    axes = []
    for marginal, out in ((saliency.sum(axis=1), out_hw[1]), (saliency.sum(axis=2), out_hw[0])):
        b, cells = marginal.shape
        padded = np.pad(marginal, ((0, 0), (pad, pad)), mode=pad_mode)
        coarse = np.zeros((b, cells))
        for j in range(cells):
            window = padded[:, j : j + 2 * pad + 1] * kernel
            coords = (np.arange(j, j + 2 * pad + 1) - pad) / (cells - 1)
            coarse[:, j] = np.clip(2 * (window * coords).sum(1) / window.sum(1) - 1, -1, 1)
        # 1-D align-corners upsampling: a [B, 2, cells, 1] image upsampled along its width.
        fine = upsample_align_corners(np.stack([coarse, coarse], 1)[..., None], 2, out)
        axes.append(fine[:, 0, :, 0])
    return axes[0], axes[1]
