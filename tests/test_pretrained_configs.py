"""The papers' protocol in the configs: pretrained variants, the Keras example's settings,
the saliency trunk; config checks of the weights fields. Nothing here trains."""

import pytest

from resize_jax import data
from resize_jax.train import build
from tests.test_configs import load_config


def test_pretrained_variants_set_the_weights_fields():
    imagenet = load_config("imagenet_resizer", "backbone=resnet50,weights=r50.pth")
    scratch = load_config("imagenet_resizer", "backbone=resnet50")
    assert (imagenet.model.weights, imagenet.model.weights_source) == ("r50.pth", "torchvision")
    assert imagenet.frontend.name == "learned"  # Fine-tuned jointly with the resizer.
    assert imagenet.optimizer.learning_rate == scratch.optimizer.learning_rate / 10
    assert imagenet.num_train_steps < scratch.num_train_steps
    assert scratch.model.weights == ""
    ava = load_config("ava_iqa", "weights=d121.pth")
    assert (ava.model.name, ava.model.weights, ava.task.name) == (
        "densenet121",
        "d121.pth",
        "image_quality",
    )
    cub = load_config("cub_saliency", "saliency_weights=r18.pth,weights=r50.pth")
    assert cub.frontend.saliency_net == "resnet18_layer3"
    assert cub.frontend.saliency_net_weights == "r18.pth"
    assert cub.optimizer.lr_multipliers == "frontend/saliency_net:0.1"
    assert cub.model.weights == "r50.pth"


def test_cats_vs_dogs_follows_the_keras_example():
    config = load_config("cats_vs_dogs", None)
    assert (config.data.train_split, config.data.eval_split) == ("train[:40%]", "train[40%:50%]")
    assert (config.data.image_size, config.frontend.output_shape) == ((300, 300), (150, 150))
    assert config.model.name == "densenet121" and config.model.weights == ""
    assert config.optimizer.name == "sgd" and config.optimizer.momentum == 0.0
    assert config.optimizer.learning_rate == 0.01
    assert config.task.label_smoothing == 0.1
    assert config.num_train_steps == 5 * 9_305 // 64
    pretrained = load_config("cats_vs_dogs", "weights=d121.weights.h5")
    assert pretrained.model.weights_source == "keras"


def _info(config):
    return data.DatasetInfo(
        task="classification",
        num_classes=3,
        num_train=8,
        num_eval=8,
        image_shape=(64, 64, 3),
        ignore_label=None,
    )


def test_weights_source_sets_conventions_and_normalisation():
    config = load_config("default", "runlocal")
    config.model = load_config("imagenet_resizer", "backbone=efficientnet_b0").model
    model = build.build_model(config, _info(config))
    assert model.backbone.bn_epsilon == 1e-3 and model.input_mean is None  # TF's defaults.
    config.model.weights_source = "torchvision"
    model = build.build_model(config, _info(config))
    assert model.backbone.bn_epsilon == 1e-5 and model.backbone.bn_momentum == 0.9
    assert model.input_std == (0.229, 0.224, 0.225)


def test_bad_weights_fields_are_named():
    config = load_config("imagenet_resizer", "backbone=resnet50,weights=r50.pth,runlocal")
    config.model.weights_source = "pytorch"
    with pytest.raises(ValueError, match=r"`config.model.weights_source` must be one of"):
        build.validate_config(config, _info(config), 1)
    config = load_config("imagenet_resizer", "backbone=inception_v2,weights=x.pth")
    with pytest.raises(ValueError, match=r"No torchvision weights mapping for model"):
        build.validate_config(config, _info(config), 1)
    config = load_config("cub_saliency", "runlocal")
    config.frontend.saliency_net = "resnet34_layer3"
    with pytest.raises(ValueError, match=r"`saliency_net` must be one of"):
        build.build_model(config, _info(config))
