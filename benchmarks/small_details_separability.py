"""How much of small_details' label survives each way of reaching 32×32: a small CNN trained
on full-resolution images, on bilinear 32×32 (no antialias), on antialiased 32×32, and on
the learned resizer's 32×32 output (trained end to end).

    python benchmarks/small_details_separability.py                      # all four, ~10 min
    python benchmarks/small_details_separability.py --modes full,bilinear --epochs 2

Examples come straight from `small_details.make_example` (train/test seeds as in the TFDS
builder), so no dataset needs building. Prints test accuracy after each epoch.
"""

from __future__ import annotations

import argparse
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from resize_jax import LearnedResizer
from resize_jax.data.generated import small_details as sd
from resize_jax.ops import resize


class Net(nn.Module):
    """The front-end of `mode`, then a 3-layer CNN with global max pooling."""

    mode: str

    @nn.compact
    def __call__(self, x, train: bool = False):
        if self.mode == "bilinear":
            x = resize(x, (32, 32))
        elif self.mode == "antialias":
            x = resize(x, (32, 32), antialias=True)
        elif self.mode == "learned":
            x, _ = LearnedResizer(output_shape=(32, 32))(x, train=train)
        x = nn.relu(nn.Conv(16, (3, 3))(x))
        x = nn.relu(nn.Conv(32, (3, 3), strides=2)(x))
        # At full resolution one more stride keeps the receptive field comparable.
        x = nn.relu(nn.Conv(32, (3, 3), strides=2 if self.mode == "full" else 1)(x))
        return nn.Dense(len(sd.CLASS_NAMES))(jnp.max(x, axis=(1, 2)))


def _examples(split: str, count: int):
    exs = [sd.split_example(split, i) for i in range(count)]
    images = np.stack([e["image"] for e in exs]).astype(np.float32) / 255.0
    return images, np.array([e["label"] for e in exs], np.int32)


def run(mode: str, train, test, epochs: int, batch: int = 32, lr: float = 3e-3) -> list[float]:
    (x_train, y_train), (x_test, y_test) = train, test
    model = Net(mode)
    variables = model.init(jax.random.key(0), x_train[:2])
    params, stats = variables["params"], variables.get("batch_stats", {})
    steps = epochs * (len(x_train) // batch)
    tx = optax.adam(optax.cosine_decay_schedule(lr, steps))
    opt = tx.init(params)

    @jax.jit
    def step(params, stats, opt, x, y):
        def loss_fn(p):
            logits, updates = model.apply(
                {"params": p, "batch_stats": stats}, x, train=True, mutable=["batch_stats"]
            )
            loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
            return loss, updates.get("batch_stats", {})

        (_, stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt = tx.update(grads, opt, params)
        return optax.apply_updates(params, updates), stats, opt

    @jax.jit
    def predict(params, stats, x):
        return model.apply({"params": params, "batch_stats": stats}, x).argmax(-1)

    rng, accuracies, start = np.random.default_rng(0), [], time.time()
    for epoch in range(epochs):
        order = rng.permutation(len(x_train))
        for i in range(len(x_train) // batch):
            ids = order[i * batch : (i + 1) * batch]
            params, stats, opt = step(params, stats, opt, x_train[ids], y_train[ids])
        predictions = np.concatenate(
            [predict(params, stats, x_test[i : i + 250]) for i in range(0, len(x_test), 250)]
        )
        accuracies.append(float(np.mean(predictions == y_test)))
        print(
            f"{mode:>9}  epoch {epoch + 1}: test accuracy {accuracies[-1]:.3f} "
            f"({time.time() - start:.0f} s)",
            flush=True,
        )
    return accuracies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--modes",
        default="full,bilinear,antialias,learned",
        help="comma-separated ways to reach 32×32: full, bilinear, antialias, learned",
    )
    parser.add_argument("--num_train", type=int, default=2000, help="training examples")
    parser.add_argument("--num_test", type=int, default=1000, help="test examples")
    parser.add_argument("--epochs", type=int, default=3, help="passes over the training set")
    args = parser.parse_args()
    train, test = _examples("train", args.num_train), _examples("test", args.num_test)
    results = {m: run(m, train, test, args.epochs) for m in args.modes.split(",")}
    print(f"\nsmall_details, {args.num_train} train / {args.num_test} test, {args.epochs} epochs:")
    for mode, accuracies in results.items():
        print(f"  {mode:>9}: final test accuracy {accuracies[-1]:.3f}")


if __name__ == "__main__":
    main()
