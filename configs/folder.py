"""Your own images: a folder `root/<split>/<class>/<image>` → front-end → backbone.

  python train.py --config configs/folder.py --workdir runs/mine \\
      --config.data.root=/path/to/photos
  python train.py --config configs/folder.py:frontend=fixed,antialias=true --workdir runs/mine_aa \\
      --config.data.root=/path/to/photos            # the classical baseline to compare with

`root` holds one directory per split ("train" and "test" by default; set
`--config.data.train_split` / `--config.data.eval_split` for other names), each with one
directory per class (the class names are kept in the workdir). Images may have any size and
format TensorFlow decodes. They are brought to `image_size` (default 256×256; the largest
central box of that aspect, nothing cut off), then the front-end reduces them to `task_size`
(default 64×64) for the backbone. Training crops keep at least half of each image (ImageNet's
default crop, 8-100 % of the area, would often cut a small detail away) and flip it.

Arguments (comma-separated after the colon):
  frontend: learned | saliency | fixed | none (none: the backbone sees `image_size`);
    method / antialias set the fixed resizer's kernel;
  backbone: any name of `resize_jax.models.model_names()` (default resnet18, from scratch);
  image_size, task_size: sides of the delivered image and of the backbone's input;
  runlocal: a few steps with a small CNN, for trying the set-up on a CPU.
Any field can then be overridden, e.g. `--config.num_train_steps=20000`.
"""

from resize_jax import data
from resize_jax.config_args import frontend_section, model_section, parse_arg, training_defaults


def get_config(arg=None):
    arg = parse_arg(
        arg,
        frontend="learned",
        method="bilinear",
        antialias=False,
        backbone="resnet18",
        image_size=256,
        task_size=64,
        runlocal=False,
    )
    config = training_defaults()
    config.data = data.default_config()
    config.data.name = "folder"
    config.data.image_size = (arg.image_size, arg.image_size)

    config.num_train_steps = 5000
    overrides = {}
    if arg.frontend == "fixed":
        overrides = {"method": arg.method, "antialias": arg.antialias}
    elif arg.frontend == "saliency":
        # Antialiased sampling and blur pretraining over the first quarter (see configs/default.py).
        overrides = {
            "saliency_input_shape": (64, 64),
            "antialias": True,
            "blur_steps": config.num_train_steps // 4,
        }
    task = (arg.task_size, arg.task_size)
    config.frontend = frontend_section(arg.frontend, task, **overrides)
    config.model = model_section("small_cnn" if arg.runlocal else arg.backbone)

    config.batch_size = 32
    config.eval_batch_size = 64
    config.log_every_steps = 50
    config.eval_every_steps = 1000
    config.checkpoint_every_steps = 1000
    config.optimizer.name = "adamw"
    config.optimizer.learning_rate = 1e-3
    config.optimizer.warmup_steps = 200
    config.optimizer.weight_decay = 1e-4
    config.task.label_smoothing = 0.1

    if arg.runlocal:
        config.num_train_steps = 100
        config.batch_size = 16
        config.eval_batch_size = 32
        config.optimizer.warmup_steps = 10
        config.log_every_steps = 10
        config.eval_every_steps = 0
        config.checkpoint_every_steps = 0
        if arg.frontend == "saliency":
            config.frontend.blur_steps = 25
    return config
