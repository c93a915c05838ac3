"""Logit parity with torchvision and timm through golden fixtures.

`tests/golden/make_pretrained_golden.py` (run where torchvision and timm are installed)
stored each model's tensor names and shapes and the source framework's eval-mode logits for
NumPy-drawn weights. Here the same weights are drawn again, written in the source's file
format, imported with `pretrained.load`, and the logits compared.
"""

import functools
import json
import pathlib
import tempfile

import jax
import numpy as np
import pytest

from resize_jax.models import pretrained
from tests.golden.make_pretrained_golden import draw_input, draw_weights, fixture_path

torch = pytest.importorskip("torch")  # The `test` extra installs the CPU build.

TOLERANCE = 1e-4  # Of the largest |logit|; float32 convolutions agree to ~1e-6 here.


@functools.cache
def _fixture(source, name):
    with open(fixture_path(source, name)) as f:
        record = json.load(f)
    weights = draw_weights(record["manifest"], record["seed"])
    images = draw_input(tuple(record["input_shape"]), record["seed"]).transpose(0, 2, 3, 1)
    return weights, images, np.asarray(record["logits"], np.float32)


@functools.partial(jax.jit, static_argnums=0)
def _logits(model, variables, images):
    return model.apply(variables, images, train=False)[0]


def _write_pth(weights, path):
    torch.save({k: torch.from_numpy(v) for k, v in weights.items()}, str(path))
    return str(path)


def _relative_error(model, variables, images, expected):
    got = np.asarray(_logits(model, variables, images))
    return np.abs(got - expected).max() / np.abs(expected).max()


@functools.cache
def _from_torchvision(name):
    """`pretrained.load` of the torchvision fixture's weights, written as a .pth file."""
    weights, _, _ = _fixture("torchvision", name)
    with tempfile.TemporaryDirectory() as folder:
        path = _write_pth(weights, pathlib.Path(folder) / "w.pth")
        return pretrained.load(name, path, source="torchvision")


@pytest.mark.parametrize(
    "name", ["resnet18", "resnet50", "densenet121", "mobilenet_v2", "efficientnet_b0"]
)
def test_torchvision_logits_match(name):
    _, images, expected = _fixture("torchvision", name)
    model, variables = _from_torchvision(name)
    assert model.num_classes == 1000
    assert _relative_error(model, variables, images, expected) < TOLERANCE


@pytest.mark.parametrize("name", ["resnet50", "efficientnet_b0"])
def test_timm_safetensors_give_torchvisions_variables(name, tmp_path):
    # The fixtures hold the same drawn values under each framework's names, and timm's and
    # torchvision's logits for them are identical; so identical imported variables mean
    # timm's logits are reproduced (the torchvision test checks those).
    from safetensors.numpy import save_file

    timm_weights, _, timm_logits = _fixture("timm", name)
    _, _, tv_logits = _fixture("torchvision", name)
    np.testing.assert_array_equal(timm_logits, tv_logits)
    path = tmp_path / "model.safetensors"
    save_file(timm_weights, str(path))
    _, from_timm = pretrained.load(name, str(path), source="timm")
    jax.tree.map(np.testing.assert_array_equal, from_timm, _from_torchvision(name)[1])


def _resnet18(tmp_path, edit=None, **fields):
    weights, images, expected = _fixture("torchvision", "resnet18")
    weights = dict(weights)
    if edit is not None:
        edit(weights)
    path = _write_pth(weights, tmp_path / "w.pth")
    model, variables = pretrained.load("resnet18", path, source="torchvision", **fields)
    return _relative_error(model, variables, images, expected)


def _transpose_hw(name):
    def edit(weights):
        weights[name] = np.ascontiguousarray(weights[name].transpose(0, 1, 3, 2))

    return edit


def _identity_norm(prefix):
    def edit(weights):
        weights[f"{prefix}.running_mean"] = np.zeros_like(weights[f"{prefix}.running_mean"])
        weights[f"{prefix}.running_var"] = np.ones_like(weights[f"{prefix}.running_var"])

    return edit


@pytest.mark.parametrize(
    ("edit", "fields"),
    [
        (None, {"bn_epsilon": 1e-3}),  # TensorFlow's epsilon instead of PyTorch's.
        (_transpose_hw("layer3.1.conv2.weight"), {}),  # One 3×3 kernel transposed.
        (_identity_norm("layer4.1.bn2"), {}),  # One BatchNorm's statistics skipped.
        (_identity_norm("layer1.0.bn1"), {}),
    ],
)
def test_parity_check_catches_one_wrong_layer(tmp_path, edit, fields):
    assert _resnet18(tmp_path) < TOLERANCE
    assert _resnet18(tmp_path, edit, **fields) > 10 * TOLERANCE
