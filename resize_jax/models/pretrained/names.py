"""Where each layer of a resize_jax backbone lives in another framework's weights.

A mapping takes the '/'-joined path of a resize_jax module that holds variables
("stage2_block1/shortcut/conv", "head") and returns the source framework's name for the same
layer ("layer2.0.downsample.0", "fc"), or None when the source has no such layer. The
variables inside a layer (kernel, scale, running mean, ...) are matched by `assign`.
"""

from __future__ import annotations

import re
from collections.abc import Callable

Mapping = Callable[[str], "str | None"]


def _rules(*rules: tuple[str, Callable[..., str]]) -> Mapping:
    """A mapping from (regex over the resize_jax path, function of its groups) pairs."""
    compiled = [(re.compile(pattern), build) for pattern, build in rules]

    def mapping(path: str) -> str | None:
        for pattern, build in compiled:
            match = pattern.fullmatch(path)
            if match:
                return build(*(int(g) if g.isdigit() else g for g in match.groups()))
        return None

    return mapping


torchvision_resnet = _rules(
    ("stem/conv", lambda: "conv1"),
    ("stem/bn", lambda: "bn1"),
    (r"stage(\d+)_block(\d+)/conv(\d)/conv", lambda i, j, k: f"layer{i}.{j - 1}.conv{k}"),
    (r"stage(\d+)_block(\d+)/conv(\d)/bn", lambda i, j, k: f"layer{i}.{j - 1}.bn{k}"),
    (r"stage(\d+)_block(\d+)/shortcut/conv", lambda i, j: f"layer{i}.{j - 1}.downsample.0"),
    (r"stage(\d+)_block(\d+)/shortcut/bn", lambda i, j: f"layer{i}.{j - 1}.downsample.1"),
    ("head", lambda: "fc"),
)

# The four layers of a dense layer: BN → 1×1 conv ("reduce"), BN → 3×3 conv ("conv").
_DENSE_PARTS = ("reduce/bn", "reduce/conv", "conv/bn", "conv/conv")


def _densenet(
    stem: tuple[str, str], layer: Callable, transition: Callable, final: tuple
) -> Mapping:
    """A DenseNet mapping: the stem's (conv, bn) names, `layer(i, j, part)` for part "reduce/bn",
    "reduce/conv", "conv/bn" or "conv/conv" of dense layer j of block i, `transition(i, part)`
    for part "bn" or "conv", and the (final BatchNorm, classifier) names."""
    return _rules(
        ("stem/conv", lambda: stem[0]),
        ("stem/bn", lambda: stem[1]),
        (rf"block(\d+)_layer(\d+)_({'|'.join(_DENSE_PARTS)})", layer),
        (r"transition(\d+)/(bn|conv)", transition),
        ("final_bn", lambda: final[0]),
        ("head", lambda: final[1]),
    )


_DENSE_LAYER = dict(zip(_DENSE_PARTS, ("norm1", "conv1", "norm2", "conv2"), strict=True))

torchvision_densenet = _densenet(
    ("features.conv0", "features.norm0"),
    lambda i, j, part: f"features.denseblock{i}.denselayer{j}.{_DENSE_LAYER[part]}",
    lambda i, part: f"features.transition{i}.{'norm' if part == 'bn' else part}",
    ("features.norm5", "classifier"),
)

# MobileNetV2's 17 inverted residual blocks are features.1 ... features.17, stage by stage.
_MOBILENET_V2_REPEATS = (1, 2, 3, 4, 3, 3, 1)


def _mobilenet_v2_block(stage: int, block: int, part: str, layer: str) -> str:
    index = 1 + sum(_MOBILENET_V2_REPEATS[: stage - 1]) + block - 1
    # The first block has no expansion: its depthwise convolution comes first.
    parts = ("depthwise", "project") if index == 1 else ("expand", "depthwise", "project")
    position = parts.index(part)
    if part == "project":
        return (
            f"features.{index}.conv.{position}"
            if layer == "conv"
            else (f"features.{index}.conv.{position + 1}")
        )
    return f"features.{index}.conv.{position}.{0 if layer == 'conv' else 1}"


torchvision_mobilenet_v2 = _rules(
    (r"stem/(conv|bn)", lambda layer: f"features.0.{0 if layer == 'conv' else 1}"),
    (r"stage(\d+)_block(\d+)/(expand|depthwise|project)/(conv|bn)", _mobilenet_v2_block),
    (r"final_conv/(conv|bn)", lambda layer: f"features.18.{0 if layer == 'conv' else 1}"),
    ("head", lambda: "classifier.1"),
)


def _torchvision_mbconv(stage: int, block: int, part: str, *rest) -> str:
    prefix = f"features.{stage}.{block - 1}.block"
    # Stage 1 has no expansion convolution: its depthwise convolution is block.0.
    parts = (
        ("depthwise", "se", "project") if stage == 1 else ("expand", "depthwise", "se", "project")
    )
    position = parts.index(part)
    if part == "se":
        return f"{prefix}.{position}.{ {'reduce': 'fc1', 'expand': 'fc2'}[rest[0]] }"
    return f"{prefix}.{position}.{0 if rest[0] == 'conv' else 1}"


torchvision_efficientnet = _rules(
    (r"stem/(conv|bn)", lambda layer: f"features.0.{0 if layer == 'conv' else 1}"),
    (r"stage(\d+)_block(\d+)/(expand|depthwise|project)/(conv|bn)", _torchvision_mbconv),
    (r"stage(\d+)_block(\d+)/(se)/(reduce|expand)", _torchvision_mbconv),
    (r"final_conv/(conv|bn)", lambda layer: f"features.8.{0 if layer == 'conv' else 1}"),
    ("head", lambda: "classifier.1"),
)


def _timm_mbconv(stage: int, block: int, part: str, layer: str) -> str:
    prefix = f"blocks.{stage - 1}.{block - 1}"
    if part == "se":
        return f"{prefix}.se.conv_{layer}"
    if stage == 1:  # timm's DepthwiseSeparableConv: conv_dw, bn1, se, conv_pw, bn2.
        names = {"depthwise": ("conv_dw", "bn1"), "project": ("conv_pw", "bn2")}
    else:  # timm's InvertedResidual: conv_pw, bn1, conv_dw, bn2, se, conv_pwl, bn3.
        names = {
            "expand": ("conv_pw", "bn1"),
            "depthwise": ("conv_dw", "bn2"),
            "project": ("conv_pwl", "bn3"),
        }
    conv, bn = names[part]
    return f"{prefix}.{conv if layer == 'conv' else bn}"


timm_efficientnet = _rules(
    ("stem/conv", lambda: "conv_stem"),
    ("stem/bn", lambda: "bn1"),
    (r"stage(\d+)_block(\d+)/(expand|depthwise|project|se)/(conv|bn|reduce|expand)", _timm_mbconv),
    ("final_conv/conv", lambda: "conv_head"),
    ("final_conv/bn", lambda: "bn2"),
    ("head", lambda: "classifier"),
)

_KERAS_DENSE_LAYER = dict(zip(_DENSE_PARTS, ("0_bn", "1_conv", "1_bn", "2_conv"), strict=True))

keras_densenet = _densenet(
    ("conv1_conv", "conv1_bn"),
    lambda i, j, part: f"conv{i + 1}_block{j}_{_KERAS_DENSE_LAYER[part]}",
    lambda i, part: f"pool{i + 1}_{part}",
    ("bn", "predictions"),
)


def keras_densenet_layers(block_sizes=(6, 12, 24, 16)) -> list[tuple[str, str]]:
    """(layer name, Keras class in snake case) of every weighted layer of
    `keras.applications.DenseNet121` (with its top), in the order of `model.layers`."""
    layers = [("conv1_conv", "conv2d"), ("conv1_bn", "batch_normalization")]
    for i, size in enumerate(block_sizes):
        for j in range(1, size + 1):
            name = f"conv{i + 2}_block{j}"
            layers += [
                (f"{name}_0_bn", "batch_normalization"),
                (f"{name}_1_conv", "conv2d"),
                (f"{name}_1_bn", "batch_normalization"),
                (f"{name}_2_conv", "conv2d"),
            ]
        if i < len(block_sizes) - 1:
            layers += [(f"pool{i + 2}_bn", "batch_normalization"), (f"pool{i + 2}_conv", "conv2d")]
    return [*layers, ("bn", "batch_normalization"), ("predictions", "dense")]
