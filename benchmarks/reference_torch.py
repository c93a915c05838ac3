#!/usr/bin/env python3
"""PyTorch reference of the front-ends, for timing beside resize_jax on the same machine.

    python benchmarks/reference_torch.py CASE [--batch 8] [--size 448] [--out 224] \
        [--memory-format channels_last|contiguous] [--compile] [--threads 2] [--reps 5]

CASE is one of bench_frontends.py's cases, written the way a PyTorch user would write them:
  learned        the learned resizer of Talebi & Milanfar (same layers as
                 `resize_jax.LearnedResizer`: 7×7 3→16, LeakyReLU, 1×1, LeakyReLU, BN, bilinear
                 resize without antialiasing, one residual block, 3×3 + BN, 7×7 16→3, skip).
                 Inference, and an SGD train step on mean(out²).
  saliency_grid  softmax over the 31×31 logits → the saliency grid (edge-replicated padding,
                 Gaussian-weighted coordinate means as two separable 1-D convolutions, clamp,
                 bilinear upsampling with aligned corners) → `F.grid_sample` (bilinear, border,
                 aligned corners). Forward, and forward+backward of the sum to the logits.
  saliency       the whole saliency sampler: the low-resolution copy (k×k block means, then an
                 antialiased bilinear resize to `--saliency-side`, default 64, the copy
                 `resize_jax.SaliencySampler` gives its default network), `SaliencyCNN`'s
                 default network (3×3 convolutions 16/16/16, strides 2/1/1, dilations 1/1/2,
                 BatchNorm and ReLU, a 1×1 convolution to one logit), logits resized to the
                 grid, then saliency_grid as above. Inference (BatchNorm's running
                 statistics) and an SGD step (batch statistics).
  fixed          bilinear resize (no antialias). Forward, and forward+backward to the images.
  mean_pool      one k×k mean-pool pass over the input (k = size // out): the memory-bound
                 floor of anything that reads every input pixel once.

Settings: `--memory-format` (default channels_last: what a PyTorch user picks for CPU
convolutions) and `--compile` (`torch.compile`, inductor). `--threads` sets torch's intra-op
threads; the caller pins the CPUs (bench_frontends.py passes its own affinity on).

Peak memory: the growth of the process's peak resident set (VmHWM, reset through
/proc/self/clear_refs, so Linux only) over its resident set after a warm-up on a tiny copy of
the case, before the inputs and the model exist (inference is
measured first, so the train figure is the maximum of both; on CPU torch has no allocator
statistics). With `--compile` it includes the compiler's own memory.

Prints one JSON line: {"case", "infer_s", "train_s", "infer_img_per_s", "train_img_per_s",
"infer_peak_mib", "train_peak_mib", "memory_format", "compile", ...}.
`reference_torch.py --many '[["learned", "--batch", "1"], ...]'` runs a list of them in one
process, one JSON line each.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import statistics
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn


def _leaky(x):
    return F.leaky_relu(x, 0.2)


class ResidualBlock(nn.Module):
    def __init__(self, n):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(n, n, 3, padding=1), nn.BatchNorm2d(n)
        self.conv2, self.bn2 = nn.Conv2d(n, n, 3, padding=1), nn.BatchNorm2d(n)

    def forward(self, x):
        return x + self.bn2(self.conv2(_leaky(self.bn1(self.conv1(x)))))


class LearnedResizer(nn.Module):
    """Talebi & Milanfar (2021), the layers of `resize_jax.LearnedResizer` (n=16, r=1)."""

    def __init__(self, out_hw, channels=3, n=16, num_res_blocks=1):
        super().__init__()
        self.out_hw = out_hw
        self.conv_in = nn.Conv2d(channels, n, 7, padding=3)
        self.conv_mix = nn.Conv2d(n, n, 1)
        self.bn_in = nn.BatchNorm2d(n)
        self.blocks = nn.Sequential(*[ResidualBlock(n) for _ in range(num_res_blocks)])
        self.conv_proj, self.bn_proj = nn.Conv2d(n, n, 3, padding=1), nn.BatchNorm2d(n)
        self.conv_out = nn.Conv2d(n, channels, 7, padding=3)

    def _resize(self, x):
        return F.interpolate(x, size=self.out_hw, mode="bilinear", align_corners=False)

    def forward(self, x):
        skip = self._resize(x)
        y = self._resize(self.bn_in(_leaky(self.conv_mix(_leaky(self.conv_in(x))))))
        z = self.bn_proj(self.conv_proj(self.blocks(y))) + y
        return self.conv_out(z) + skip


def gaussian_1d(pad, fwhm):
    r = torch.arange(-pad, pad + 1, dtype=torch.float64)
    return torch.exp(-4 * math.log(2) * r**2 / fwhm**2).float()


def saliency_grid(saliency, out_hw, pad, fwhm):
    """saliency: (B, 1, g, g), sums to 1 per image → grid (B, H, W, 2) in [-1, 1], (x, y).

    The Gaussian is separable, so each of the three sums (mass, mass·x', mass·y') is two
    1-D convolutions instead of one (2·pad + 1)² convolution.
    """
    g = saliency.shape[-1]
    k = gaussian_1d(pad, fwhm)
    kx, ky = k.view(1, 1, 1, -1).repeat(3, 1, 1, 1), k.view(1, 1, -1, 1).repeat(3, 1, 1, 1)
    s = F.pad(saliency, (pad, pad, pad, pad), mode="replicate")
    n = g + 2 * pad
    coord = (torch.arange(n, dtype=torch.float32) - pad) / (g - 1)
    px, py = coord.view(1, 1, 1, n).expand_as(s), coord.view(1, 1, n, 1).expand_as(s)
    sums = F.conv2d(F.conv2d(torch.cat([s, s * px, s * py], 1), kx, groups=3), ky, groups=3)
    grid = sums[:, 1:] / sums[:, :1]
    grid = (grid * 2 - 1).clamp(-1, 1)
    grid = F.interpolate(grid, size=out_hw, mode="bilinear", align_corners=True)
    return grid.permute(0, 2, 3, 1)


def sample(images, logits, out_hw, pad, fwhm):
    saliency = torch.softmax(logits.flatten(1), -1).view_as(logits)
    grid = saliency_grid(saliency, out_hw, pad, fwhm)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=True)


def low_resolution(images, side):
    """k×k block means (k = the largest integer factor ≤ H/side), then antialiased bilinear."""
    k = max(1, images.shape[-1] // side)
    if k > 1:
        images = F.avg_pool2d(images, k)
    if images.shape[-1] != side:
        images = F.interpolate(images, size=(side, side), mode="bilinear", antialias=True)
    return images


class SaliencySampler(nn.Module):
    """The saliency sampler with `resize_jax.SaliencyCNN`'s default network (31×31 grid, pad 30):
    3×3 convolutions 16/16/16, strides 2/1/1, dilations 1/1/2, each without bias, then
    BatchNorm and ReLU, then a 1×1 convolution to one logit. The strided layer pads as XLA's
    SAME does (nothing before, one row and column after, for an even side), so the same
    weights give the same logits."""

    def __init__(self, out_hw, channels=3, grid=31, pad=30, fwhm=13.0, side=64):
        super().__init__()
        self.out_hw, self.grid, self.pad, self.fwhm, self.side = out_hw, grid, pad, fwhm, side
        widths = (channels, 16, 16, 16)
        layers = ((2, 1), (1, 1), (1, 2))  # (stride, dilation)
        self.convs = nn.ModuleList(
            nn.Conv2d(a, b, 3, stride=s, padding=0 if s > 1 else d, dilation=d, bias=False)
            for (a, b), (s, d) in zip(itertools.pairwise(widths), layers, strict=True)
        )
        self.bns = nn.ModuleList(nn.BatchNorm2d(b, momentum=0.1) for b in widths[1:])
        self.logits = nn.Conv2d(widths[-1], 1, 1)

    def saliency_logits(self, low):
        """low: the low-resolution copy [B, C, side, side] → logits [B, 1, grid, grid]."""
        for conv, bn in zip(self.convs, self.bns, strict=True):
            if conv.stride[0] > 1:
                # XLA's SAME padding of a strided layer: p = (out - 1)·s + K - in in total,
                # ⌊p/2⌋ before.
                total = [
                    max((-(-n // conv.stride[0]) - 1) * conv.stride[0] + 3 - n, 0)
                    for n in low.shape[-2:]
                ]
                low = F.pad(
                    low,
                    (
                        total[1] // 2,
                        total[1] - total[1] // 2,
                        total[0] // 2,
                        total[0] - total[0] // 2,
                    ),
                )
            low = F.relu(bn(conv(low)))
        return F.interpolate(self.logits(low), size=(self.grid,) * 2, mode="bilinear")

    def forward(self, x):
        logits = self.saliency_logits(low_resolution(x, self.side))
        return sample(x, logits, self.out_hw, self.pad, self.fwhm)


def call_times(fn, reps, warmup):
    """Seconds of each of `reps` calls of `fn`, after `warmup` untimed ones."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def _median_seconds(fn, reps, warmup):
    return statistics.median(call_times(fn, reps, warmup))


def _status_mib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def _reset_peak_rss():
    """Sets the process's peak resident set to its current one (Linux >= 4.0); the current
    resident set in MiB, the baseline of the growth."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return _status_mib("VmRSS")


def _peak_rss_mib():
    return _status_mib("VmHWM")


def _model_step(model, x, compiled):
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    forward = torch.compile(model) if compiled else model

    def train():
        opt.zero_grad(set_to_none=True)
        forward(x).square().mean().backward()
        opt.step()

    def infer():
        with torch.no_grad():
            return forward(x)

    return infer, train


def build(args, fmt):
    """(infer, train, eval_first) for the case."""
    out_hw = (args.out, args.out)
    x = torch.randn(args.batch, args.channels, args.size, args.size).contiguous(memory_format=fmt)
    if args.case == "learned":
        model = LearnedResizer(out_hw, args.channels).to(memory_format=fmt)
        return (*_model_step(model, x, args.compile), model)
    if args.case == "saliency":
        model = SaliencySampler(
            out_hw, args.channels, args.grid, args.pad, args.fwhm, args.saliency_side
        )
        return (*_model_step(model.to(memory_format=fmt), x, args.compile), model)
    if args.case == "saliency_grid":
        logits = torch.randn(args.batch, 1, args.grid, args.grid, requires_grad=True)
        fwd = lambda: sample(x, logits, out_hw, args.pad, args.fwhm)
        fwd = torch.compile(fwd) if args.compile else fwd

        def infer():
            with torch.no_grad():
                return fwd()

        return infer, lambda: fwd().sum().backward(), None
    if args.case in ("fixed", "mean_pool"):
        x.requires_grad_(True)
        k = max(1, args.size // args.out)
        if args.case == "fixed":
            fn = lambda t: F.interpolate(t, size=out_hw, mode="bilinear", align_corners=False)
        else:
            fn = lambda t: F.avg_pool2d(t, k)
        fn = torch.compile(fn) if args.compile else fn

        def infer():
            with torch.no_grad():
                return fn(x)

        return infer, lambda: fn(x).square().mean().backward(), None
    raise SystemExit(f"unknown case {args.case!r}")


CASES = ("learned", "saliency_grid", "saliency", "fixed", "mean_pool")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("case", choices=CASES)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--size", type=int, default=448)
    p.add_argument("--out", type=int, default=224)
    p.add_argument("--channels", type=int, default=3)
    p.add_argument("--grid", type=int, default=31)
    p.add_argument("--pad", type=int, default=30)
    p.add_argument("--fwhm", type=float, default=13.0)
    p.add_argument("--saliency-side", type=int, default=64)
    p.add_argument("--memory-format", choices=("channels_last", "contiguous"),
                   default="channels_last")  # fmt: skip
    p.add_argument("--compile", action="store_true")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--skip-train", action="store_true", help="inference only")
    return p.parse_args(argv)


def main(args):
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    channels_last = args.memory_format == "channels_last"
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    # Warm torch up on a tiny eager copy of the case (thread pool, oneDNN, lazily loaded
    # libraries) so that the baseline excludes what any first call costs once per process.
    tiny = argparse.Namespace(**{**vars(args), "batch": 1, "size": 64, "out": 32, "compile": False})
    for fn in build(tiny, fmt)[:2]:
        fn()
    baseline = _reset_peak_rss()
    infer, train, model = build(args, fmt)
    if model is not None:
        model.eval()
    infer_s = _median_seconds(infer, args.reps, args.warmup)
    infer_peak = _peak_rss_mib() - baseline
    train_s = train_peak = float("nan")
    if not args.skip_train:
        if model is not None:
            model.train()
        train_s = _median_seconds(train, args.reps, args.warmup)
        train_peak = _peak_rss_mib() - baseline
    result = {
        "case": args.case,
        "batch": args.batch,
        "size": args.size,
        "out": args.out,
        "threads": torch.get_num_threads(),
        "memory_format": args.memory_format,
        "compile": args.compile,
        "torch": torch.__version__,
        "infer_s": infer_s,
        "train_s": train_s,
        "infer_img_per_s": args.batch / infer_s,
        "train_img_per_s": args.batch / train_s,
        "infer_peak_mib": infer_peak,
        "train_peak_mib": train_peak,
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    if sys.argv[1:2] == ["--many"]:
        # One process for a list of runs (a JSON list of argument lists): torch starts once.
        for job in json.loads(sys.argv[2]):
            main(parse_args(job))
    else:
        main(parse_args())
