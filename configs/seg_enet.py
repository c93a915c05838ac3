"""Semantic segmentation with ENet behind a front-end; mIoU at the original resolution.

  python train.py --config configs/seg_enet.py:frontend=saliency --workdir runs/seg_sal \\
      --config.data.root=/data/cityscapes_pairs
  python train.py --config configs/seg_enet.py:frontend=fixed --workdir runs/seg_fixed \\
      --config.data.root=/data/cityscapes_pairs
  # On the generated `small_objects` set, a couple of minutes on a CPU:
  python train.py --config configs/seg_enet.py:runlocal --workdir /tmp/seg

Data: a folder of pairs (`segmentation_folder`: root/<split>/images/<name>.png and
root/<split>/masks/<name>.png, mask values = class ids, 255 = void), delivered at
1024×2048 (Cityscapes' resolution); the front-end reduces it to 512×1024, the resolution the
ENet paper trains at, and ENet predicts there. The logits then return to 1024×2048, by a
bilinear resize for the fixed and learned resizers, by `ops.unwarp` through the sampling grid
for the saliency sampler; the per-pixel cross-entropy and the metrics (mIoU, pixel accuracy,
per-class IoU) are computed there (`resize_jax.tasks.segmentation`), void pixels excluded.

Optimisation as in the ENet paper: Adam, learning rate 5e-4 (here with decoupled weight
decay 1e-4 and a cosine schedule). ENet's class weighting 1 / ln(1.02 + p_k) is available as
`--config.task.class_weights='(w0, w1, ...)'` from the training set's class frequencies p_k.

Arguments (comma-separated after the colon):
  frontend: fixed | learned | saliency | none (none = ENet on the full input; its sides must
    be multiples of 8, as must the front-end's output_shape);
  runlocal: the generated `small_objects` set (128×128, objects a few pixels wide, void
    edges) → 64×64 → ENet, a few steps.
"""

import ml_collections

from resize_jax import data
from resize_jax.config_args import (
    apply_runlocal,
    frontend_section,
    model_section,
    parse_arg,
    training_defaults,
)


def get_config(arg=None):
    arg = parse_arg(arg, frontend="learned", runlocal=False)
    config = training_defaults()
    config.data = data.default_config()
    config.data.name = "segmentation_folder"
    config.data.train_split, config.data.eval_split = "train", "val"
    config.data.image_size = (1024, 2048)
    config.data.augment = True
    config.data.ignore_label = 255

    overrides = {}
    if arg.frontend == "saliency":
        overrides = {"saliency_input_shape": (256, 512)}
    config.frontend = frontend_section(arg.frontend, (512, 1024), **overrides)
    config.model = model_section("enet")
    config.task = ml_collections.ConfigDict(
        {
            "name": "segmentation",
            # A reference: overriding --config.data.ignore_label updates the task too.
            "ignore_label": config.data.get_ref("ignore_label"),
            "class_weights": (),
        }
    )

    config.batch_size = 16
    config.eval_batch_size = 16
    config.num_train_steps = 60_000
    config.optimizer.name = "adamw"
    config.optimizer.learning_rate = 5e-4
    config.optimizer.warmup_steps = 500
    config.optimizer.weight_decay = 1e-4
    config.log_every_steps = 100
    config.eval_every_steps = 5000
    config.checkpoint_every_steps = 2000

    if arg.runlocal:
        apply_runlocal(
            config,
            dataset="small_objects",
            image_size=(128, 128),
            output_shape=(64, 64),
            saliency_input_shape=(32, 32),
            steps=20,
            batch_size=8,
            eval_batch_size=32,
            learning_rate=2e-3,
            warmup_steps=2,
            log_every_steps=5,
        )
    return config
