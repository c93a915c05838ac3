"""Golden logits of torchvision and timm models for the pretrained-weights tests.

Run where torch, torchvision, timm and numpy are installed (resize_jax itself is not needed):

  python tests/golden/make_pretrained_golden.py            # writes tests/golden/pretrained/

The same at full size, against resize_jax (which needs jax, so in resize_jax's environment):

  python tests/golden/make_pretrained_golden.py --live 224 --dump /tmp/live   # torch side
  python tests/golden/make_pretrained_golden.py --check /tmp/live             # resize_jax side

For each model: the source framework's own tensor names and shapes (the manifest), weights
drawn from a seed with NumPy alone (`draw_weights`, BatchNorm statistics perturbed so that
every layer changes the output), the source model's eval-mode logits for a fixed input
(`draw_input`). The test rebuilds the same weights with NumPy, writes them in the source's
file format, imports them with `resize_jax.models.pretrained.load` and compares the logits.
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np

SEED = 0
INPUT_SHAPE = (2, 3, 72, 88)  # N, C, H, W: small and non-square.
# (source, resize_jax name, the source's constructor name).
MODELS = (
    ("torchvision", "resnet18", "resnet18"),
    ("torchvision", "resnet50", "resnet50"),
    ("torchvision", "densenet121", "densenet121"),
    ("torchvision", "mobilenet_v2", "mobilenet_v2"),
    ("torchvision", "efficientnet_b0", "efficientnet_b0"),
    ("timm", "resnet50", "resnet50"),
    ("timm", "efficientnet_b0", "efficientnet_b0"),
)
OUT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pretrained")


def fixture_path(source: str, name: str) -> str:
    return os.path.join(OUT_DIR, f"{source}_{name}.json")


def draw_weights(manifest: list[tuple[str, list[int], str]], seed: int) -> dict[str, np.ndarray]:
    """Weights for every (name, shape, dtype) of a PyTorch state dict, from `seed` alone.

    Convolutions and linear layers: N(0, 1 / fan_in). BatchNorm (recognised by its
    running_mean): weight U(0.5, 1.5), bias N(0, 0.2), running_mean N(0, 0.2), running_var
    U(0.5, 2), so that a skipped or mis-assigned statistic changes the output. Other
    vectors (biases): N(0, 0.1). Integer counters: 0.
    """
    rng = np.random.default_rng(seed)
    norms = {n[: -len(".running_mean")] for n, _, _ in manifest if n.endswith(".running_mean")}
    out = {}
    for name, shape, dtype in manifest:
        shape = tuple(shape)
        prefix, _, leaf = name.rpartition(".")
        if not dtype.startswith("float"):
            out[name] = np.zeros(shape, np.int64)
        elif prefix in norms:
            draw = {
                "weight": lambda s: rng.uniform(0.5, 1.5, s),
                "bias": lambda s: rng.normal(0.0, 0.2, s),
                "running_mean": lambda s: rng.normal(0.0, 0.2, s),
                "running_var": lambda s: rng.uniform(0.5, 2.0, s),
            }[leaf]
            out[name] = draw(shape).astype(np.float32)
        elif len(shape) >= 2:
            fan_in = int(np.prod(shape[1:]))
            out[name] = rng.normal(0.0, 1.0 / np.sqrt(fan_in), shape).astype(np.float32)
        else:
            out[name] = rng.normal(0.0, 0.1, shape).astype(np.float32)
    return out


def draw_input(shape=INPUT_SHAPE, seed: int = SEED) -> np.ndarray:
    """f32[N, C, H, W]: already-normalised pixels, N(0, 1)."""
    return np.random.default_rng(seed + 1).normal(0.0, 1.0, shape).astype(np.float32)


def source_model(source: str, constructor: str):
    """The source framework's model, randomly initialised, in eval mode."""
    if source == "torchvision":
        import torchvision

        model = getattr(torchvision.models, constructor)(weights=None)
    else:
        import timm

        model = timm.create_model(constructor, pretrained=False)
    return model.eval()


def manifest_of(model) -> list[tuple[str, list[int], str]]:
    return [
        (name, list(t.shape), str(t.dtype).replace("torch.", ""))
        for name, t in model.state_dict().items()
    ]


def source_logits(model, weights: dict[str, np.ndarray], images: np.ndarray) -> np.ndarray:
    import torch

    model.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()}, strict=True)
    with torch.no_grad():
        return model(torch.from_numpy(images)).numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--live", type=int, default=0, help="with --dump: this square size")
    parser.add_argument("--dump", default="", help="write weights, input and logits here")
    parser.add_argument("--check", default="", help="compare resize_jax with a --dump folder")
    args = parser.parse_args()
    if args.check:
        check_dump(args.check)
        return
    import timm
    import torch
    import torchvision

    torch.set_num_threads(2)
    os.makedirs(OUT_DIR, exist_ok=True)
    images = draw_input()
    for source, name, constructor in MODELS:
        model = source_model(source, constructor)
        manifest = manifest_of(model)
        weights = draw_weights(manifest, SEED)
        logits = source_logits(model, weights, images)
        record = {
            "source": source,
            "model": name,
            "constructor": constructor,
            "seed": SEED,
            "input_shape": list(INPUT_SHAPE),
            "versions": {
                "torch": torch.__version__,
                "torchvision": torchvision.__version__,
                "timm": timm.__version__,
            },
            "manifest": manifest,
            "logits": [[float(f"{v:.8g}") for v in row] for row in logits],
        }
        with open(fixture_path(source, name), "w") as f:
            json.dump(record, f, separators=(",", ":"))
        print(f"{source} {name}: {len(manifest)} tensors, max |logit| {np.abs(logits).max():.4g}")
        if args.live and args.dump:
            dump(args.dump, source, name, model, weights, args.live)


def dump(folder: str, source: str, name: str, model, weights, size: int) -> None:
    """Writes the weights as a .pth, a size×size input and the source's logits for it."""
    import torch

    os.makedirs(folder, exist_ok=True)
    images = draw_input((2, 3, size, size))
    stem = os.path.join(folder, f"{source}_{name}")
    torch.save({k: torch.from_numpy(v) for k, v in weights.items()}, stem + ".pth")
    np.savez(stem + ".npz", images=images, logits=source_logits(model, weights, images))


def check_dump(folder: str) -> None:
    """Max |resize_jax - source| / max |source| for every model of a --dump folder."""
    from resize_jax.models import pretrained

    for source, name, _ in MODELS:
        stem = os.path.join(folder, f"{source}_{name}")
        data = np.load(stem + ".npz")
        model, variables = pretrained.load(name, stem + ".pth", source=source)
        got, _ = model.apply(variables, data["images"].transpose(0, 2, 3, 1), train=False)
        diff = float(np.abs(np.asarray(got) - data["logits"]).max())
        scale = float(np.abs(data["logits"]).max())
        size = "x".join(str(s) for s in data["images"].shape[2:])
        print(
            f"{source} {name} {size}: max abs diff {diff:.3g}, max |logit| {scale:.4g}, "
            f"ratio {diff / scale:.3g}"
        )


if __name__ == "__main__":
    main()
