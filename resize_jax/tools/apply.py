"""Runs a trained front-end on your own images and writes what the network sees.

    python -m resize_jax.tools.apply --workdir runs/demo/saliency_seed0 --out runs/apply \\
        photo.jpg scan.png

The model is rebuilt from the workdir's `config.json` and its newest checkpoint. Images of
any size and format that TensorFlow decodes (PNG, JPEG, GIF, BMP; grey is made RGB) are first
brought to the run's input size (`config.data.image_size`, e.g. 128×128 for the demo) with an
antialiased bilinear resize and mapped to `config.data.value_range`:

- `--view=whole` (default): the whole image, resized to the input size; a different aspect
  ratio is stretched (the printed line says by how much), nothing is cut off;
- `--view=eval`: the run's evaluation view, the central box of the input's aspect ratio
  shrunk by `config.data.eval_crop_fraction` (1.0 for folders and generated sets, 0.875 for
  ImageNet-style sets), as the reported metrics saw their images.

Then, per image `<name>` in `--out`:

- `<name>_input.png`: that input (what the front-end gets);
- `<name>_seen.png`: the front-end's output at its own size, e.g. 32×32 (what the network
  sees; values outside the value range clipped, the panel says how far they went);
- `<name>_panel.png`: both side by side, magnified, plus for a learned resizer the
  difference to its skip path, and for a saliency sampler the saliency map and the sampling
  grid drawn over the input.

One line per image says what was done and the network's prediction: the predicted class
(its name when the workdir has the dataset's class names, else its index) with its
probability, or for a regression run (e.g. gaze) its prediction in the targets' original
units (the normalisation statistics the run recorded in its config.json are undone).
Unreadable files and workdirs without a checkpoint stop the command with an error naming
them, before anything is written.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Sequence

import jax
import numpy as np

from resize_jax import console, ops

if __name__ == "__main__":
    console.import_tensorflow_quietly()

from resize_jax.train import build
from resize_jax.train.workdir import TrainedRun, describe, load_run

VIEWS = ("whole", "eval")


def load_image(path: str, run: TrainedRun, view: str = "eval") -> np.ndarray:
    """The file at `path` as the run's input: f32[H, W, 3] in the data's value range.

    Args:
      path: an image file.
      run: the trained run (its input size and value range).
      view: "whole" (the whole image resized to the input size) or "eval" (the run's
        evaluation view: its central crop).

    Raises:
      ValueError: naming `path` when it cannot be read or decoded as an image.
    """
    import tensorflow as tf

    from resize_jax.data import preprocess
    from resize_jax.data.config import resolve

    try:
        with open(path, "rb") as f:
            encoded = f.read()
    except OSError as error:
        raise ValueError(f"`images`: cannot read {path!r} ({error.strerror}).") from error
    if view not in VIEWS:
        raise ValueError(f"`view` must be one of {VIEWS}, got {view!r}.")
    # The pipeline's own options: only the image is used, its label is a placeholder.
    options = resolve(run.config.data).options(
        run.num_classes,
        task="classification",
        image_size=run.image_size,
        augment="none",
        one_hot=False,
    )
    try:
        if view == "whole":
            decoded = tf.cast(preprocess.decode_image(tf.constant(encoded)), tf.float32)
            image = tf.image.resize(decoded, run.image_size, "bilinear", antialias=True)
            image = preprocess.to_value_range(image, options.value_range)
        else:
            example = {"image": tf.constant(encoded), "label": tf.constant(0, tf.int64)}
            image = preprocess.preprocess(example, None, options, train=False)["image"]
        return np.asarray(image, np.float32)
    except (tf.errors.InvalidArgumentError, ValueError) as error:
        raise ValueError(
            f"`images`: {path!r} is not an image TensorFlow can decode (PNG, JPEG, GIF, BMP): "
            f"{_tf_message(error)}"
        ) from error


def _tf_message(error: Exception) -> str:
    # TF prefixes "{{function_node ...}}" and appends "[Op:DecodeImage]": keep the message.
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    text = re.sub(r"\{\{.*?\}\}\s*", "", text)
    return re.sub(r"\s*\[Op:.*$", "", text).strip()


def image_shape(path: str) -> tuple[int, int]:
    """(H, W) of the image file at `path` (read from its header)."""
    from PIL import Image

    with Image.open(path) as image:
        return image.height, image.width


def what_was_done(path: str, run: TrainedRun, view: str) -> str:
    """One line: the file's size, how it became the run's input, and the front-end."""
    height, width = image_shape(path)
    out_h, out_w = run.image_size
    if view == "whole":
        how = f"whole image resized to {out_h}×{out_w}"
        stretch = (out_w / out_h) / (width / height)
        if abs(stretch - 1.0) > 0.01:
            how += f" (aspect {width / height:.2f} → {out_w / out_h:.2f})"
    else:
        from resize_jax.data.config import resolve

        fraction = resolve(run.config.data).eval_crop_fraction
        how = f"central crop ({fraction:g} of the largest {out_w / out_h:.2f}-aspect box)"
        how += f" resized to {out_h}×{out_w}"
    frontend = run.config.frontend
    seen = ""
    if frontend.name != "none":
        seen = " → " + "×".join(str(v) for v in frontend.output_shape)
    return f"{height}×{width} → {how} → {describe(run.config)}{seen}"


def _names(paths: Sequence[str]) -> list[str]:
    # Output names from the file names; a repeated name gets its position appended.
    stems = [os.path.splitext(os.path.basename(p))[0] for p in paths]
    return [s if stems.count(s) == 1 else f"{s}_{i}" for i, s in enumerate(stems)]


def _save_png(path: str, image: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(np.round(image * 255).astype(np.uint8)).save(path)


def apply(workdir: str, paths: Sequence[str], out: str, view: str = "whole") -> list[dict]:
    """Runs `workdir`'s front-end (and network) on the images at `paths`; writes into `out`.

    Returns, per image, {"name", "files": [written paths], "done": what was done (one line),
    "class": int, "class_name": str or None, "probability"}, or for a regression run
    {"name", "files", "done", "prediction": [D floats in the targets' units]}. Raises
    ValueError naming the workdir, the view or the file that cannot be used.
    """
    from resize_jax.tools import figures

    if not paths:
        raise ValueError("`images`: give at least one image file.")
    run = load_run(workdir)
    # All checked before any write.
    images = np.stack([load_image(p, run, view) for p in paths])
    os.makedirs(out, exist_ok=True)
    logits, aux = jax.jit(lambda v, x: run.model.apply(v, x, train=False))(run.variables, images)
    task = build.build_task(run.config)
    # A regression task maps the outputs back to the targets' units (its `predictions`).
    predictions = np.asarray(task.predictions(logits)) if hasattr(task, "predictions") else None
    probabilities = np.asarray(jax.nn.softmax(logits.reshape(len(paths), -1), axis=-1))
    value_range = tuple(run.config.data.value_range)
    low, high = value_range
    shown = figures.to_display(images, value_range)
    seen = figures.to_display(np.asarray(aux["resized"]), value_range)
    frontend_aux = aux["frontend"]
    grid = frontend_aux.get("grid")
    if isinstance(grid, ops.SeparableGrid):
        grid = ops.separable_to_grid(grid)
    results = []
    for i, name in enumerate(_names(paths)):
        files = [os.path.join(out, f"{name}_{kind}.png") for kind in ("input", "seen", "panel")]
        _save_png(files[0], shown[i])
        _save_png(files[1], seen[i])
        h, w = seen.shape[1:3]
        panels = [(f"input {images.shape[1]}×{images.shape[2]}", shown[i])]
        values = np.asarray(aux["resized"][i])
        note = ""
        if values.min() < low or values.max() > high:
            note = f"\n(values {values.min():.2f}..{values.max():.2f}, "
            note += f"shown clipped to [{low:g}, {high:g}])"
        panels.append((f"what the network sees {h}×{w}{note}", seen[i]))
        title = f"{os.path.basename(paths[i])} through {describe(run.config)} ({workdir})"
        if "skip" in frontend_aux:
            skip = np.asarray(frontend_aux["skip"][i])
            difference = (np.asarray(aux["resized"][i]) - skip) / (high - low)
            gain = 0.5 / (float(np.max(np.abs(difference))) or 1.0)
            panels.append(
                (f"minus skip path (×{gain:.2g})", np.clip(0.5 + gain * difference, 0, 1))
            )
        if grid is not None and "saliency" in frontend_aux:
            figures.saliency(
                files[2],
                shown[i : i + 1],
                np.asarray(frontend_aux["saliency"][i : i + 1]),
                np.asarray(grid[i : i + 1]),
                seen[i : i + 1],
                title=title,
            )
        else:
            figures.panel(files[2], panels, title=title)
        done = what_was_done(paths[i], run, view)
        if predictions is not None:
            prediction = predictions[i].tolist()
            results.append({"name": name, "files": files, "done": done, "prediction": prediction})
            continue
        top = int(np.argmax(probabilities[i]))
        names = run.class_names
        results.append(
            {
                "name": name,
                "files": files,
                "class": top,
                "class_name": names[top] if names and top < len(names) else None,
                "probability": float(probabilities[i, top]),
                "done": done,
            }
        )
    return results


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m resize_jax.tools.apply", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--workdir", required=True, help="a trained run's workdir")
    parser.add_argument("--out", required=True, help="directory for the PNGs")
    parser.add_argument(
        "--view",
        choices=VIEWS,
        default="whole",
        help="whole: the whole image resized to the run's input size (default); "
        "eval: the run's evaluation crop",
    )
    parser.add_argument("images", nargs="+", help="image files (any size)")
    console.add_verbosity_argument(parser)
    args = parser.parse_args(argv)
    console.quiet_logging(args.verbosity)
    try:
        results = apply(args.workdir, args.images, args.out, args.view)
    except ValueError as error:
        parser.exit(2, f"error: {error}\n")
    for path, result in zip(args.images, results, strict=True):
        if "prediction" in result:
            said = "prediction " + ", ".join(f"{v:.4g}" for v in result["prediction"])
        else:
            label = result["class_name"] or f"class {result['class']}"
            said = f"{label!r} (p={result['probability']:.2f})"
        print(f"{path}: {result['done']}: {said}")
    print(f"wrote {len(results) * 3} PNGs to {args.out} (<name>_input, _seen, _panel)")


if __name__ == "__main__":
    main(sys.argv[1:])
