"""Params and FLOPs of every backbone with a fixed resize, the learned resizer, and the fixed
input size of comparable FLOPs (the learned-resizer paper's two baselines).

    python -m resize_jax.tools.summary                     # all backbones, 448 → 224
    python -m resize_jax.tools.summary --models resnet50 --input-size 448 --output-size 224

FLOPs are XLA's cost analysis of the compiled forward pass at batch 1 (see
`resize_jax.models.flops`); nothing is executed and no weights are allocated. Every pairing
starts from the same `input_size` images: "fixed" = bilinear resize (no antialiasing, as the
paper's baseline) to `output_size`; "learned" = LearnedResizer (n=16, r=1) to `output_size`;
"matched" = bilinear resize to the size whose total FLOPs come closest to the learned pairing.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp

from resize_jax.frontends import FixedResizer, LearnedResizer
from resize_jax.models.accounting import count_params, flops
from resize_jax.models.frontend_model import FrontEndModel
from resize_jax.models.registry import get_model, model_names


def gflops_per_image(model, input_shape: Sequence[int]) -> float:
    """GFLOPs of one forward pass of `model` per example of a batch of `input_shape`."""
    x = jax.ShapeDtypeStruct(tuple(input_shape), jnp.float32)
    variables = jax.eval_shape(model.init, jax.random.key(0), x)
    return flops(model.apply, variables, input_shape) / input_shape[0] / 1e9


def match_size(
    cost_at: Callable[[int], float], target: float, start: int, minimum: int = 1
) -> tuple[int, float]:
    """The integer size s >= `minimum` whose `cost_at(s)` is closest to `target`.

    Cost grows about as s², so s ← s·sqrt(target / cost(s)) converges in a few steps; the
    neighbours of the best size are then checked because cost is only roughly quadratic.
    """
    costs: dict[int, float] = {}
    size = max(start, minimum)
    for _ in range(8):
        costs[size] = cost_at(size)
        size = max(minimum, round(size * math.sqrt(target / costs[size])))
        if size in costs:
            break
    best = min(costs, key=lambda s: abs(costs[s] - target))
    for size in (best - 1, best + 1):
        if size >= minimum and size not in costs:
            costs[size] = cost_at(size)
    best = min(costs, key=lambda s: abs(costs[s] - target))
    return best, costs[best]


def frontend_costs(input_size: int = 448, output_size: int = 224, channels: int = 3) -> dict:
    """GFLOPs/image of the front-ends alone, and the learned resizer's parameter count."""
    shape = (1, input_size, input_size, channels)
    out = (output_size, output_size)
    learned = LearnedResizer(out)
    x = jax.ShapeDtypeStruct(shape, jnp.float32)
    # The learned resizer resizes the image (C channels) and its n=16 features.
    features_shape = (1, input_size, input_size, learned.num_filters)
    return {
        "fixed": gflops_per_image(FixedResizer(out), shape),
        "learned": gflops_per_image(learned, shape),
        "learned_resizes": gflops_per_image(FixedResizer(out), shape)
        + gflops_per_image(FixedResizer(out), features_shape),
        "learned_params": count_params(jax.eval_shape(learned.init, jax.random.key(0), x))[
            "trainable"
        ],
    }


def build_table(
    names: Sequence[str] | None = None,
    *,
    input_size: int = 448,
    output_size: int = 224,
    num_classes: int = 1000,
    channels: int = 3,
) -> list[dict]:
    """One row per backbone: params, and GFLOPs/image of the backbone alone at `output_size`
    and of the three pairings from `input_size` images."""
    rows = []
    shape = (1, input_size, input_size, channels)
    for name in names if names is not None else classifier_names():
        backbone = get_model(name, num_classes=num_classes)
        x = jax.ShapeDtypeStruct((1, output_size, output_size, channels), jnp.float32)
        params = count_params(jax.eval_shape(backbone.init, jax.random.key(0), x))["trainable"]
        fixed_at = lambda s, b=backbone: gflops_per_image(
            FrontEndModel(FixedResizer((s, s)), b), shape
        )
        alone = gflops_per_image(backbone, (1, output_size, output_size, channels))
        fixed = fixed_at(output_size)
        learned = gflops_per_image(
            FrontEndModel(LearnedResizer((output_size,) * 2), backbone), shape
        )
        size, matched = match_size(
            fixed_at, learned, start=output_size, minimum=backbone.min_input_size
        )
        rows.append(
            {
                "model": name,
                "params": params,
                "backbone_gflops": alone,
                "fixed_gflops": fixed,
                "learned_gflops": learned,
                "matched_size": size,
                "matched_gflops": matched,
            }
        )
    return rows


def format_table(rows: Sequence[dict], input_size: int = 448, output_size: int = 224) -> str:
    """A Markdown table of `build_table`'s rows."""
    lines = [
        f"| model | params | backbone alone at {output_size} | fixed {input_size}→{output_size} "
        f"| learned {input_size}→{output_size} | comparable-FLOPs fixed size | its GFLOPs |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['params']:,} | {r['backbone_gflops']:.2f} | "
            f"{r['fixed_gflops']:.2f} | "
            f"{r['learned_gflops']:.2f} | {r['matched_size']}×{r['matched_size']} | "
            f"{r['matched_gflops']:.2f} |"
        )
    return "\n".join(lines)


def classifier_names() -> list[str]:
    """The registered backbones that classify (logits f[B, K]); dense predictors such as ENet,
    whose inputs must also be multiples of 8, are not part of the paper's comparison, nor are
    Vision Transformers (inputs in multiples of the patch size, so no matched size)."""
    x = jax.ShapeDtypeStruct((1, 224, 224, 3), jnp.float32)
    names = []
    for name in model_names():
        model = get_model(name, num_classes=10)
        if hasattr(model, "patch_size"):
            continue
        variables = jax.eval_shape(model.init, jax.random.key(0), x)
        logits, _ = jax.eval_shape(model.apply, variables, x)
        if logits.ndim == 2:
            names.append(name)
    return names


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="*", default=None, help=f"of {model_names()}")
    # Underscores as in the other commands; the dashed spellings still parse.
    parser.add_argument(
        "--input_size", "--input-size", type=int, default=448, help="side of the input images"
    )
    parser.add_argument(
        "--output_size",
        "--output-size",
        type=int,
        default=224,
        help="side of the front-ends' output (the backbone's input)",
    )
    parser.add_argument(
        "--num_classes", "--num-classes", type=int, default=1000, help="classifier outputs"
    )
    args = parser.parse_args(argv)
    front = frontend_costs(args.input_size, args.output_size)
    print(
        f"GFLOPs/image (XLA cost analysis, multiply-add = 2), from {args.input_size}×"
        f"{args.input_size}×3 images, {args.num_classes} classes; params = backbone's "
        f"trainable parameters (the learned resizer adds {front['learned_params']:,})."
    )
    print(
        f"Front-ends alone: fixed bilinear {front['fixed']:.2f}; learned resizer "
        f"{front['learned']:.2f}, of which {front['learned_resizes']:.2f} are its two "
        "resizes (resize_jax.ops.resize) and the rest its convolutions.\n"
    )
    rows = build_table(
        args.models,
        input_size=args.input_size,
        output_size=args.output_size,
        num_classes=args.num_classes,
    )
    print(format_table(rows, args.input_size, args.output_size))


if __name__ == "__main__":
    main()
