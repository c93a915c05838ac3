"""Cats vs Dogs at 300 → 150 with DenseNet-121: the setting of the Keras example of the
learned resizer ("Learning to Resize in Computer Vision", keras.io), as written there.

  python train.py --config configs/cats_vs_dogs.py:frontend=learned --workdir runs/cvd_learned
  python train.py --config configs/cats_vs_dogs.py:frontend=fixed --workdir runs/cvd_fixed
  # Variant: DenseNet-121 from a Keras ImageNet weights file (a fresh 2-class head); e.g.
  # keras.applications.DenseNet121(weights="imagenet").save_weights("d121.weights.h5"):
  python train.py --config configs/cats_vs_dogs.py:weights=d121.weights.h5 \\
      --workdir runs/cvd_pretrained

The example: `train[:40%]` for training and `train[40%:50%]` for validation, batch 64,
5 epochs, plain SGD (Keras's defaults: learning rate 0.01, no momentum), cross-entropy with
label smoothing 0.1, DenseNet-121 from `weights=None` (so that is the default here too),
a learned resizer with 16 filters and one residual block on bilinear resizing.
`cats_vs_dogs` must be prepared for TFDS (`tfds build cats_vs_dogs --data_dir=...` on a
machine with network access). `runlocal` swaps in the generated `small_details` set at
64 → 32, the small CNN and 30 steps.
"""

from resize_jax import data
from resize_jax.config_args import (
    apply_runlocal,
    frontend_section,
    model_section,
    parse_arg,
    training_defaults,
)

TRAIN_EXAMPLES = 9_305  # 40 % of TFDS cats_vs_dogs' 23,262 images.


def get_config(arg=None):
    arg = parse_arg(arg, frontend="learned", weights="", weights_source="keras", runlocal=False)
    config = training_defaults()
    config.data = data.default_config()
    config.data.name = "cats_vs_dogs"
    config.data.train_split = "train[:40%]"
    config.data.eval_split = "train[40%:50%]"
    config.data.image_size = (300, 300)
    config.data.augment = False  # The example resizes the images; no augmentation.
    config.frontend = frontend_section(arg.frontend, (150, 150))
    config.model = model_section("densenet121")
    if arg.weights:
        config.model.weights = arg.weights
        config.model.weights_source = arg.weights_source
    config.task.label_smoothing = 0.1

    config.batch_size = 64
    config.eval_batch_size = 128
    config.num_train_steps = 5 * TRAIN_EXAMPLES // config.batch_size
    config.optimizer.name = "sgd"
    config.optimizer.learning_rate = 0.01
    config.optimizer.momentum = 0.0
    config.optimizer.schedule = "constant"
    config.optimizer.warmup_steps = 0
    config.log_every_steps = 50
    config.eval_every_steps = TRAIN_EXAMPLES // config.batch_size  # Once per epoch.
    config.checkpoint_every_steps = TRAIN_EXAMPLES // config.batch_size

    if arg.runlocal:
        # DenseNet-121 takes minutes to compile on a CPU: the small CNN stands in.
        apply_runlocal(
            config,
            steps=30,
            warmup_steps=3,
            learning_rate=0.05,  # plain SGD, as the Keras example
            log_every_steps=5,
            backbone="small_cnn",
        )
    return config
