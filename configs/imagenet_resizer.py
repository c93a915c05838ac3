"""The learned-resizer paper's ImageNet setting (Talebi & Milanfar 2021): 448 → 224.

  python train.py --config configs/imagenet_resizer.py:backbone=resnet50,frontend=learned \\
      --workdir runs/in_r50_learned --config.data.data_dir=/path/to/tensorflow_datasets
  # Baselines: the same backbone behind a bilinear resize to 224 ...
  python train.py --config configs/imagenet_resizer.py:backbone=resnet50,frontend=fixed \\
      --workdir runs/in_r50_fixed
  # ... and behind a bilinear resize to the size of comparable FLOPs:
  python train.py \\
      --config configs/imagenet_resizer.py:backbone=resnet50,frontend=fixed,comparable_flops \\
      --workdir runs/in_r50_flops
  # Two stages (paper): train the baseline, then add the resizer and fine-tune both:
  python train.py --config configs/imagenet_resizer.py:backbone=resnet50,frontend=learned \\
      --workdir runs/in_r50_stage2 --config.init_from=runs/in_r50_fixed \\
      --config.init_parts=backbone
  # ... or start the second stage from a pretrained baseline's file (docs/pretrained.md;
  # r50.pth: e.g. torchvision's resnet50-11ad3fa6.pth; weights_source=timm|keras for others):
  python train.py --config configs/imagenet_resizer.py:backbone=resnet50,weights=r50.pth \\
      --workdir runs/in_r50_ft
  # The resizer moves to another baseline (the paper's transfer study): front-end from one
  # run, backbone from another (or from a file, as above):
  python train.py --config configs/imagenet_resizer.py:backbone=densenet121,frontend=learned \\
      --workdir runs/in_d121_transfer \\
      --config.init_rules="runs/in_r50_ft:frontend; runs/in_d121_fixed:backbone"

ImageNet must be prepared for TFDS beforehand (manual download; see `resize_jax.data`).
`runlocal` swaps in the generated `small_details` set at 64 → 32, the small CNN and 30 steps,
to check the whole path on a CPU.

With `weights=FILE` the backbone starts from that file (its BatchNorm settings and input
normalisation follow `weights_source`) and is fine-tuned jointly with the front-end for
`finetune_epochs` (default 10) at a tenth of the from-scratch learning rate: a starting
point of ours, not a schedule the paper states.
"""

from resize_jax import data
from resize_jax.config_args import (
    apply_runlocal,
    frontend_section,
    model_section,
    parse_arg,
    training_defaults,
)

# The fixed input side whose total FLOPs come closest to the learned 448→224 pairing, from
# `python -m resize_jax.tools.summary` (XLA cost analysis; see the README's table).
COMPARABLE_FLOPS_SIZE = {
    "densenet121": 253,
    "efficientnet_b0": 355,
    "inception_v2": 257,
    "mobilenet_v2": 384,
    "resnet18": 260,
    "resnet50": 240,
}


def get_config(arg=None):
    arg = parse_arg(
        arg,
        backbone="resnet50",
        frontend="learned",
        comparable_flops=False,
        weights="",
        weights_source="torchvision",
        finetune_epochs=10,
        runlocal=False,
    )
    config = training_defaults()
    config.data = data.default_config()
    config.data.name = "imagenet2012"
    config.data.train_split = "train"
    config.data.eval_split = "validation"
    config.data.image_size = (448, 448)
    config.data.augment = True

    task_side = 224
    if arg.comparable_flops:
        if arg.frontend != "fixed":
            raise ValueError("`comparable_flops` is a baseline of the fixed front-end.")
        task_side = COMPARABLE_FLOPS_SIZE[arg.backbone]
    config.frontend = frontend_section(arg.frontend, (task_side, task_side))
    config.model = model_section(arg.backbone)
    if arg.weights:
        config.model.weights = arg.weights
        config.model.weights_source = arg.weights_source
    config.task.label_smoothing = 0.1

    # SGD + momentum, linear warmup and cosine decay, the usual ImageNet recipe for these
    # backbones; the learning rate follows the global batch (0.1 per 256).
    config.batch_size = 1024
    config.eval_batch_size = 1024
    num_epochs, train_examples = 90, 1_281_167
    if arg.weights:
        num_epochs = arg.finetune_epochs
    steps_per_epoch = train_examples // config.batch_size
    config.num_train_steps = num_epochs * steps_per_epoch
    config.optimizer.name = "sgd"
    config.optimizer.momentum = 0.9
    config.optimizer.nesterov = True
    config.optimizer.learning_rate = 0.1 * config.batch_size / 256
    config.optimizer.warmup_steps = 5 * steps_per_epoch
    if arg.weights:  # Fine-tuning a trained baseline: smaller steps, a short warmup.
        config.optimizer.learning_rate /= 10
        config.optimizer.warmup_steps = steps_per_epoch // 2
    config.optimizer.weight_decay = 5e-5
    config.log_every_steps = 100
    config.eval_every_steps = steps_per_epoch
    config.checkpoint_every_steps = 1000

    if arg.runlocal:
        # The paper's backbones take minutes to compile on a CPU: the small CNN stands in.
        apply_runlocal(
            config,
            steps=30,
            warmup_steps=3,
            learning_rate=0.05,
            log_every_steps=5,
            backbone="small_cnn",
        )
    return config
