"""A Vision Transformer behind a front-end: ImageNet at 448 → 224, ViT-B/16 by default.

  python train.py --config configs/vit_resizer.py:backbone=vit_b16,frontend=learned \\
      --workdir runs/in_vitb_learned --config.data.data_dir=/path/to/tensorflow_datasets
  # Baseline: the same ViT behind a bilinear resize to 224:
  python train.py --config configs/vit_resizer.py:backbone=vit_b16,frontend=fixed \\
      --workdir runs/in_vitb_fixed
  # ViT-L/16 with its parameters and optimizer state split over the devices (FSDP):
  python train.py --config configs/vit_resizer.py:backbone=vit_l16,sharding=fsdp \\
      --workdir runs/in_vitl_learned
  # On a CPU in a few minutes: ViT-Ti/16 at 64×64 after a 128 → 64 front-end, generated data:
  python train.py --config configs/vit_resizer.py:frontend=learned,runlocal \\
      --workdir /tmp/vit_local

Arguments: backbone (vit_ti16 | vit_s16 | vit_b16 | vit_l16), frontend (fixed | learned |
saliency | none), sharding (replicated | fsdp), runlocal.

The optimizer follows DeiT's recipe for ViTs trained on ImageNet-1k (AdamW, learning rate
5e-4 per 512 images, weight decay 0.05, 5 warmup epochs, cosine decay, label smoothing 0.1)
plus gradient clipping at norm 1, as big_vision does. The library's input pipeline has no
RandAugment, mixup or CutMix, so a ViT trained from scratch here lands below DeiT's accuracy;
the comparison between front-ends is what the config is for. A ViT sees a fixed grid of
16×16 patches, so the front-end's output must be a multiple of 16 (checked when the model
is built).
"""

from resize_jax import data
from resize_jax.config_args import (
    apply_runlocal,
    frontend_section,
    model_section,
    parse_arg,
    training_defaults,
)

BACKBONES = ("vit_ti16", "vit_s16", "vit_b16", "vit_l16")


def get_config(arg=None):
    arg = parse_arg(
        arg, backbone="vit_b16", frontend="learned", sharding="replicated", runlocal=False
    )
    if arg.backbone not in BACKBONES:
        raise ValueError(f"`backbone` must be one of {list(BACKBONES)}, got {arg.backbone!r}.")
    config = training_defaults()
    config.data = data.default_config()
    config.data.name = "imagenet2012"
    config.data.train_split = "train"
    config.data.eval_split = "validation"
    config.data.image_size = (448, 448)
    config.data.augment = True

    overrides = {}
    if arg.frontend == "saliency":
        overrides = {"saliency_input_shape": (224, 224), "grid_shape": (31, 31)}
    config.frontend = frontend_section(arg.frontend, (224, 224), **overrides)
    config.model = model_section(arg.backbone)
    config.task.label_smoothing = 0.1
    config.sharding = arg.sharding

    config.batch_size = 1024
    config.eval_batch_size = 1024
    num_epochs, train_examples = 300, 1_281_167
    steps_per_epoch = train_examples // config.batch_size
    config.num_train_steps = num_epochs * steps_per_epoch
    config.optimizer.name = "adamw"
    config.optimizer.learning_rate = 5e-4 * config.batch_size / 512
    config.optimizer.warmup_steps = 5 * steps_per_epoch
    config.optimizer.weight_decay = 0.05
    config.optimizer.grad_clip_norm = 1.0
    if arg.frontend == "saliency":
        # By reference: `--config.num_train_steps=...` moves the blur pretraining with it.
        config.frontend.blur_steps = config.get_ref("num_train_steps") // 4
        config.optimizer.lr_multipliers = "frontend/saliency_net:0.1"
    config.log_every_steps = 100
    config.eval_every_steps = 5 * steps_per_epoch
    config.checkpoint_every_steps = 1000

    if arg.runlocal:
        config.model = model_section("vit_ti16")
        apply_runlocal(
            config,
            image_size=(128, 128),
            output_shape=(64, 64),
            steps=6,
            saliency_input_shape=(32, 32),
            learning_rate=1e-3,
        )
        if arg.frontend == "saliency":
            config.frontend.blur_steps = 2
    return config
