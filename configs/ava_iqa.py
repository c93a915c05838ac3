"""Image quality on AVA with the EMD loss (learned-resizer paper, IQA experiments; NIMA).

  python train.py --config configs/ava_iqa.py:backbone=inception_v2,frontend=learned \\
      --workdir runs/ava_learned --config.data.ratings_file=/data/AVA/AVA.txt \\
      --config.data.image_dir=/data/AVA/images
  # Baseline: the same backbone behind a bilinear resize to 224 (no antialiasing):
  python train.py --config configs/ava_iqa.py:backbone=inception_v2,frontend=fixed \\
      --workdir runs/ava_fixed --config.data.ratings_file=... --config.data.image_dir=...
  # From an ImageNet-pretrained backbone (the paper's IQA protocol), a fresh 10-logit head:
  # (d121.pth: e.g. torchvision's densenet121-a639ec97.pth):
  python train.py --config configs/ava_iqa.py:backbone=densenet121,weights=d121.pth \\
      --workdir runs/ava_ft --config.data.ratings_file=... --config.data.image_dir=...
  # On the generated AVA-format set, a couple of minutes on a CPU:
  python train.py --config configs/ava_iqa.py:runlocal --workdir /tmp/ava

The network's 10 logits go through a softmax to a distribution over the scores 1..10,
trained against the normalised rating histogram with EMD (r = 2 over the CDFs); eval reports
SRCC and PLCC of the mean scores, the binary accuracy at mean score 5, and the mean EMD
(`resize_jax.tasks.iqa`). Sizes: the paper's resizer pairing, 448×448 input → 224×224 for
the backbone; its IQA baselines are ImageNet classifiers (Inception-v2, DenseNet-121,
EfficientNet-B0) fine-tuned on AVA: `weights=FILE` starts the backbone from a torchvision,
timm or Keras file (docs/pretrained.md; the 1000-class head is replaced by a fresh 10-logit
one, everything else is loaded). Without it training starts from scratch, unless
`--config.init_from=<run> --config.init_parts=frontend` (or `backbone,!backbone/head`)
loads parts of another run.

Arguments (comma-separated after the colon):
  backbone: any registered backbone (default inception_v2, densenet121 with `weights`,
    small_cnn with runlocal);
  weights, weights_source: a pretrained backbone file and its framework (torchvision |
    timm | keras);
  frontend: fixed | learned | saliency | none (none = the backbone on the 448×448 input);
  runlocal: the generated `synthetic_ava` set (128×128, ratings follow the blur) → 32×32
    → small CNN, a few steps.
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
    arg = parse_arg(
        arg,
        backbone="",
        frontend="learned",
        weights="",
        weights_source="torchvision",
        runlocal=False,
    )
    default = "densenet121" if arg.weights else "inception_v2"
    backbone = arg.backbone or ("small_cnn" if arg.runlocal else default)
    config = training_defaults()
    config.data = data.default_config()
    config.data.name = "ava"  # ratings_file + image_dir; train[:90%] / train[90%:].
    config.data.image_size = (448, 448)
    config.data.augment = True
    # Mild crops only: the rating is about the whole picture (NIMA crops 224 of 256).
    config.data.crop_area_range = (0.75, 1.0)

    task_side = 224
    overrides = {}
    if arg.frontend == "saliency":
        overrides = {"saliency_input_shape": (224, 224)}
    config.frontend = frontend_section(arg.frontend, (task_side, task_side), **overrides)
    config.model = model_section(backbone)
    if arg.weights:
        config.model.weights = arg.weights
        config.model.weights_source = arg.weights_source
    config.task = ml_collections.ConfigDict({"name": "image_quality", "r": 2.0, "threshold": 5.0})

    config.batch_size = 64
    config.eval_batch_size = 256
    train_examples = 230_000  # About 90% of AVA's 255k rated images.
    config.num_train_steps = 20 * train_examples // config.batch_size  # 20 epochs.
    config.optimizer.name = "adamw"
    config.optimizer.learning_rate = 3e-4
    config.optimizer.warmup_steps = 1000
    config.optimizer.weight_decay = 1e-4
    config.log_every_steps = 100
    config.eval_every_steps = 5000
    config.checkpoint_every_steps = 5000

    if arg.runlocal:
        apply_runlocal(
            config,
            dataset="synthetic_ava",
            image_size=(128, 128),
            output_shape=(32, 32),
            saliency_input_shape=(32, 32),
            steps=40,
            batch_size=32,
            eval_batch_size=64,
            learning_rate=3e-3,
            warmup_steps=4,
            log_every_steps=10,
        )
    return config
