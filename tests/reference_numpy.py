"""Independent NumPy implementations written from the papers, used as test oracles.

They share no code with resize_jax: loops and explicit formulas, float64 throughout.
"""

from __future__ import annotations

import numpy as np


def bilinear_resize(x: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """Half-pixel-centre bilinear resize with clamped coordinates. x: [B, H, W, C]."""
    b, h, w, c = x.shape

    def taps(n_in, n_out):
        pos = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
        lo = np.floor(pos).astype(int)
        hi = np.minimum(lo + 1, n_in - 1)
        return lo, hi, pos - lo

    y0, y1, fy = taps(h, out_h)
    x0, x1, fx = taps(w, out_w)
    out = np.zeros((b, out_h, out_w, c))
    for i in range(out_h):
        for j in range(out_w):
            top = x[:, y0[i], x0[j]] * (1 - fx[j]) + x[:, y0[i], x1[j]] * fx[j]
            bottom = x[:, y1[i], x0[j]] * (1 - fx[j]) + x[:, y1[i], x1[j]] * fx[j]
            out[:, i, j] = top * (1 - fy[i]) + bottom * fy[i]
    return out


def conv2d_same(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Stride-1 'SAME' convolution (cross-correlation) for odd kernels. kernel: [kh, kw, I, O]."""
    kh, kw, _, o = kernel.shape
    ph, pw = kh // 2, kw // 2
    padded = np.pad(x, ((0, 0), (ph, ph), (pw, pw), (0, 0)))
    b, h, w, _ = x.shape
    out = np.zeros((b, h, w, o))
    for dy in range(kh):
        for dx in range(kw):
            out += padded[:, dy : dy + h, dx : dx + w, :] @ kernel[dy, dx]
    return out + bias


def leaky_relu(x: np.ndarray, slope: float = 0.2) -> np.ndarray:
    return np.where(x >= 0, x, slope * x)


def batch_norm(x, scale, bias, mean, var, *, train: bool, eps: float = 1e-5):
    """BatchNorm over [B, H, W]; in training the batch's biased variance normalises."""
    if train:
        mean, var = x.mean(axis=(0, 1, 2)), x.var(axis=(0, 1, 2))
    return (x - mean) / np.sqrt(var + eps) * scale + bias


def learned_resizer(x, params, stats, out_hw, *, train: bool, chain_blocks: bool = True):
    """Talebi & Milanfar (2021), Fig. 3, from the paper's description.

    `chain_blocks=False` is the known porting bug (every block reads the bottleneck); the
    tests use it to show that they would catch it.
    """
    p = {k: jax_tree_to_numpy(v) for k, v in params.items()}
    s = {k: jax_tree_to_numpy(v) for k, v in stats.items()}

    def conv(name, inp, tree=p):
        return conv2d_same(inp, tree[name]["kernel"], tree[name]["bias"])

    def bn(name, inp, ptree=p, stree=s):
        return batch_norm(
            inp,
            ptree[name]["scale"],
            ptree[name]["bias"],
            stree[name]["mean"],
            stree[name]["var"],
            train=train,
        )

    skip = bilinear_resize(x, *out_hw)
    y = leaky_relu(conv("conv_in", x))
    y = bn("bn_in", leaky_relu(conv("conv_mix", y)))
    y = bilinear_resize(y, *out_hw)
    z = y
    blocks = sorted(k for k in p if k.startswith("res_block_"))
    for name in blocks:
        inp = z if chain_blocks else y
        bp, bs = p[name], s[name]
        h = leaky_relu(bn("bn1", conv("conv1", inp, bp), bp, bs))
        z = inp + bn("bn2", conv("conv2", h, bp), bp, bs)
    z = bn("bn_proj", conv("conv_proj", z)) + y
    return conv("conv_out", z) + skip


def jax_tree_to_numpy(tree):
    if isinstance(tree, dict):
        return {k: jax_tree_to_numpy(v) for k, v in tree.items()}
    return np.asarray(tree, dtype=np.float64)
