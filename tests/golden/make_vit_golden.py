"""Golden logits of a small timm Vision Transformer for the ViT weight-import test.

Run where torch and timm are installed (resize_jax itself is not needed):

  python tests/golden/make_vit_golden.py        # writes tests/golden/vit/timm_vit_small.json

The model is timm's own `VisionTransformer` class (the class of `vit_base_patch16_224`, ...)
at a small width and depth, with a class token and `dynamic_img_size=True`, so that timm also
resamples its position embeddings for the second, larger and non-square input. Stored: timm's
tensor names and shapes (the manifest), the seed, the inputs' shapes and timm's eval-mode
logits. The test draws the same weights with NumPy alone (`draw_weights`), imports them with
`resize_jax.models.vit_pretrained.load` and compares the logits.
"""

from __future__ import annotations

import json
import os

import numpy as np

SEED = 0
# timm's constructor arguments; the ViT fields that match them are in `RESIZE_JAX_FIELDS`.
TIMM_KWARGS = {
    "img_size": 32,
    "patch_size": 8,
    "embed_dim": 48,
    "depth": 2,
    "num_heads": 3,
    "mlp_ratio": 4.0,
    "num_classes": 7,
    "dynamic_img_size": True,
}
RESIZE_JAX_FIELDS = {"patch_size": 8, "hidden_size": 48, "depth": 2, "num_heads": 3, "mlp_dim": 192}
# N, C, H, W: the stored grid (4×4), then 6×5 patches (position embeddings resampled).
INPUT_SHAPES = ((2, 3, 32, 32), (2, 3, 48, 40))
PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "vit", "timm_vit_small.json")


def draw_weights(manifest, seed: int) -> dict[str, np.ndarray]:
    """Weights for every (name, shape) of the state dict, from `seed` alone: matrices and
    kernels N(0, 1 / fan_in), LayerNorm scales U(0.5, 1.5), every other vector (biases, class
    token, position embeddings) N(0, 0.2), so each tensor visibly changes the logits."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, shape in manifest:
        shape = tuple(shape)
        if len(shape) >= 2 and name not in ("cls_token", "pos_embed"):
            fan_in = int(np.prod(shape[1:]))
            out[name] = rng.normal(0.0, 1.0 / np.sqrt(fan_in), shape).astype(np.float32)
        elif name.endswith(".weight") and "norm" in name:
            out[name] = rng.uniform(0.5, 1.5, shape).astype(np.float32)
        else:
            out[name] = rng.normal(0.0, 0.2, shape).astype(np.float32)
    return out


def draw_inputs(seed: int = SEED) -> list[np.ndarray]:
    """f32[N, C, H, W] for each of `INPUT_SHAPES`: already-normalised pixels, N(0, 1)."""
    rng = np.random.default_rng(seed + 1)
    return [rng.normal(0.0, 1.0, s).astype(np.float32) for s in INPUT_SHAPES]


def main() -> None:
    import timm
    import torch
    from timm.models.vision_transformer import VisionTransformer

    model = VisionTransformer(**TIMM_KWARGS).eval()
    manifest = [(k, list(v.shape)) for k, v in model.state_dict().items()]
    weights = draw_weights(manifest, SEED)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()}, strict=True)
    with torch.no_grad():
        logits = [model(torch.from_numpy(x)).numpy().tolist() for x in draw_inputs()]
    record = {
        "seed": SEED,
        "timm_kwargs": TIMM_KWARGS,
        "input_shapes": INPUT_SHAPES,
        "versions": {"torch": torch.__version__, "timm": timm.__version__},
        "manifest": manifest,
        "logits": logits,
    }
    os.makedirs(os.path.dirname(PATH), exist_ok=True)
    with open(PATH, "w") as f:
        json.dump(record, f, separators=(",", ":"))
    print(f"wrote {PATH}")


if __name__ == "__main__":
    main()
