"""Cats vs Dogs at 300 → 150 with DenseNet-121: the setting of the well-known Keras example
of the learned resizer.

  python train.py --config configs/cats_vs_dogs.py:frontend=learned --workdir runs/cvd_learned
  python train.py --config configs/cats_vs_dogs.py:frontend=fixed --workdir runs/cvd_fixed

`cats_vs_dogs` must be prepared for TFDS (`tfds build cats_vs_dogs --data_dir=...` on a
machine with network access). Its TFDS release has only a "train" split: the first 90 % train,
the rest evaluates. `runlocal` swaps in the generated `small_details` set at 64 → 32.
"""

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
    config.data.name = "cats_vs_dogs"
    config.data.train_split = "train[:90%]"
    config.data.eval_split = "train[90%:]"
    config.data.image_size = (300, 300)
    config.data.augment = True
    config.frontend = frontend_section(arg.frontend, (150, 150))
    config.model = model_section("densenet121")

    # The Keras example: Adam, 10 epochs, batch 64 (about 23k images).
    config.batch_size = 64
    config.eval_batch_size = 128
    config.num_train_steps = 10 * 20_935 // config.batch_size
    config.optimizer.name = "adamw"
    config.optimizer.learning_rate = 1e-3
    config.optimizer.warmup_steps = 100
    config.log_every_steps = 50
    config.eval_every_steps = 1000
    config.checkpoint_every_steps = 1000

    if arg.runlocal:
        apply_runlocal(config)
    return config
