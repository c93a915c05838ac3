"""Gaze estimation (Recasens et al. 2018's regression application): a gaze point from a face.

  # Your own data: root/train.csv and root/test.csv with rows `image,x,y` (docs/gaze.md):
  python train.py --config configs/gaze.py:frontend=saliency --workdir runs/gaze_saliency \\
      --config.data.root=/data/gaze
  python train.py --config configs/gaze.py:frontend=fixed,antialias=true \\
      --workdir runs/gaze_aa --config.data.root=/data/gaze
  # The generated `synthetic_gaze` set (128×128 → 32×32, small CNN), minutes on a CPU:
  python train.py --config configs/gaze.py:frontend=saliency,runlocal --workdir /tmp/gaze
  # Predictions in the targets' own units (cm) for other images:
  python -m resize_jax.apply --workdir /tmp/gaze --out /tmp/gaze_pred face1.png face2.png

Paper scale: 448×448 frames, a sampled 224×224 image (iTracker's input size) for a
ResNet-18 with a 2-output head, which replaces iTracker's hand-made face and eye crops with
one learned zoom. The saliency network sees a 224×224 copy and predicts the paper's 31×31
map; the sampled image is blurred during the first quarter of training; the saliency
network learns at a tenth of the learning rate. The loss is smooth L1 on targets normalised
per dimension with the train split's statistics (recorded in the workdir's config.json);
eval reports the mean, median and 90th-percentile Euclidean error in the targets' units
(`resize_jax.tasks.regression`). No augmentation: a flip mirrors the gaze, a crop moves
the eyes.

Arguments (comma-separated after the colon):
  frontend: fixed | learned | saliency | none (none = the backbone on the full input);
  method, antialias: the fixed resizer's kernel (default bilinear without antialiasing);
  backbone: any registered backbone (default resnet18; small_cnn with runlocal);
  runlocal: `synthetic_gaze` (128×128, 4000 train / 1000 test) → 32×32 → small CNN,
    1800 steps of 32, the saliency sampler without blur pretraining
    (benchmarks/bench_gaze.py compares the front-ends with it).
"""

import ml_collections

from resize_jax import data
from resize_jax.config_args import frontend_section, model_section, parse_arg, training_defaults


def get_config(arg=None):
    arg = parse_arg(
        arg, frontend="saliency", method="bilinear", antialias=False, backbone="", runlocal=False
    )
    backbone = arg.backbone or ("small_cnn" if arg.runlocal else "resnet18")
    config = training_defaults()
    config.data = data.default_config()
    config.data.name = "csv"  # root/<split>.csv: `--config.data.root=...`.
    config.data.train_split, config.data.eval_split = "train", "test"
    config.data.image_size = (448, 448)
    config.data.augment = False
    config.num_train_steps = 30_000

    task_side, saliency_side = 224, 224
    if arg.runlocal:
        config.data.name = "synthetic_gaze"
        config.data.image_size = (128, 128)
        config.num_train_steps = 1800
        task_side, saliency_side = 32, 64
    overrides = {}
    if arg.frontend == "fixed":
        overrides = {"method": arg.method, "antialias": arg.antialias}
    elif arg.frontend == "saliency":
        overrides = {
            "saliency_input_shape": (saliency_side, saliency_side),
            "grid_shape": (31, 31),
            "blur_steps": config.num_train_steps // 4,
        }
        if arg.runlocal:
            # The paper's plain sampling, no blur pretraining: on synthetic_gaze the sampler
            # then starts zooming on the eyes within a few hundred steps, while with
            # antialiased sampling and blur it never leaves the uniform grid (docs/gaze.md).
            overrides["blur_steps"] = 0
    config.frontend = frontend_section(arg.frontend, (task_side, task_side), **overrides)
    config.model = model_section(backbone)
    config.task = ml_collections.ConfigDict(
        {
            "name": "gaze",
            "loss_type": "smooth_l1",
            "delta": 1.0,
            "normalize": True,
            "target_mean": (),  # Empty: the train split's, recorded in config.json.
            "target_std": (),
            "num_targets": 2,
        }
    )

    config.batch_size = 64
    config.eval_batch_size = 128
    config.optimizer.name = "adamw"
    config.optimizer.learning_rate = 1e-3
    config.optimizer.warmup_steps = 1000
    config.optimizer.weight_decay = 1e-4
    if arg.frontend == "saliency":
        config.optimizer.lr_multipliers = "frontend/saliency_net:0.1"
    config.log_every_steps = 100
    config.eval_every_steps = 5000
    config.checkpoint_every_steps = 5000

    if arg.runlocal:
        config.batch_size = 32
        config.eval_batch_size = 200
        config.optimizer.learning_rate = 3e-3
        config.optimizer.warmup_steps = 30
        config.optimizer.lr_multipliers = ""
        config.log_every_steps = 50
        config.eval_every_steps = 0
        config.checkpoint_every_steps = 0
    return config
