"""The saliency sampler with a ResNet-50 task network on CUB-200-2011 (Recasens et al. 2018):
high-resolution input, the sampler zooms into the bird.

  python train.py --config configs/cub_saliency.py --workdir runs/cub_saliency
  python train.py --config configs/cub_saliency.py:frontend=fixed --workdir runs/cub_fixed
  # The paper's protocol: ImageNet-pretrained ResNet-18 saliency trunk and ResNet-50:
  # (torchvision's resnet18-f37072fd.pth and resnet50-11ad3fa6.pth):
  python train.py --config configs/cub_saliency.py:saliency_weights=r18.pth,weights=r50.pth \\
      --workdir runs/cub_pretrained

As in the paper: the saliency network sees a 224×224 copy of the 512×512 input and predicts a
31×31 map; the task network gets 224×224 samples; the saliency network learns at a tenth of
the learning rate; the sampled image is blurred during the first quarter of training so the
sampler learns to zoom before the task network relies on fine detail. The saliency network
is the paper's ResNet-18 through layer3 plus a 1×1 convolution (`saliency_net=
"resnet18_layer3"`), loaded from torchvision's ImageNet file with `saliency_weights=FILE`;
`weights=FILE` does the same for the ResNet-50 (a fresh 200-class head). Both files are
torchvision's (`weights_source` / `saliency_net_weights_source` select another framework).
`caltech_birds2011` must be prepared for TFDS. `runlocal` swaps in `small_details` at 64 → 32,
the small saliency CNN, the small CNN as task network and 30 steps, for a quick CPU check.
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
    arg = parse_arg(arg, frontend="saliency", weights="", saliency_weights="", runlocal=False)
    config = training_defaults()
    config.data = data.default_config()
    config.data.name = "caltech_birds2011"
    config.data.train_split = "train"
    config.data.eval_split = "test"
    config.data.image_size = (512, 512)
    config.data.augment = True

    config.num_train_steps = 20_000
    overrides = {}
    if arg.frontend == "saliency":
        overrides = {
            "saliency_input_shape": (224, 224),
            "grid_shape": (31, 31),
            # By reference: follows an override of num_train_steps.
            "blur_steps": config.get_ref("num_train_steps") // 4,
            "saliency_net": "resnet18_layer3",
            "saliency_net_weights": arg.saliency_weights,
            "saliency_net_weights_source": "torchvision",
        }
    config.frontend = frontend_section(arg.frontend, (224, 224), **overrides)
    config.model = model_section("resnet50")
    if arg.weights:
        config.model.weights = arg.weights
        config.model.weights_source = "torchvision"

    config.batch_size = 64
    config.eval_batch_size = 128
    config.optimizer.name = "sgd"
    config.optimizer.momentum = 0.9
    config.optimizer.learning_rate = 0.01
    config.optimizer.warmup_steps = 500
    config.optimizer.weight_decay = 1e-4
    if arg.frontend == "saliency":
        config.optimizer.lr_multipliers = "frontend/saliency_net:0.1"
    config.log_every_steps = 50
    config.eval_every_steps = 2000
    config.checkpoint_every_steps = 1000

    if arg.runlocal:
        # ResNet-50 takes minutes to compile on a CPU: the small CNN stands in.
        apply_runlocal(
            config,
            steps=30,
            warmup_steps=3,
            learning_rate=0.05,
            log_every_steps=5,
            backbone="small_cnn",
        )
        if arg.frontend == "saliency":
            config.frontend.saliency_input_shape = (32, 32)
            config.frontend.blur_steps = 8
            if not arg.saliency_weights:
                config.frontend.saliency_net = ""  # The small CNN compiles in seconds.
    return config
