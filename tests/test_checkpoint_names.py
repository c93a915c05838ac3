"""The variables trees (checkpoint format: every path, shape and dtype) of the backbones and
front-ends, pinned: a refactor of how the modules are built must not change them, or older
checkpoints would stop restoring. The digests were taken from the trees before the backbones
were rebuilt on `conv_bn_def` partials; they change only with a deliberate format change."""

import hashlib

import jax
import jax.numpy as jnp
import pytest

from resize_jax.frontends import get_frontend
from resize_jax.models import get_model

BACKBONES = {
    "resnet18": ("a0e5f5a8d677979d", 102),
    "resnet50": ("cbd61b08c4ec8b29", 267),
    "mobilenet_v2": ("35413f91caf23c21", 262),
    "efficientnet_b0": ("9e89c32f1160f4eb", 311),
    "inception_v2": ("fd9fc58f6659dc59", 416),
    "densenet121": ("13bd44177935e48a", 606),
}
FRONTENDS = {
    "learned": ({"num_res_blocks": 2}, ("358a8b609c875d3d", 40)),
    "saliency": ({"saliency_input_shape": (32, 32)}, ("2bcaa4f7e8d2ad5f", 8)),
}


def tree_digest(variables) -> tuple[str, int]:
    """(sha256 prefix of the sorted "path:shape:dtype" lines, number of leaves)."""
    flat = jax.tree_util.tree_flatten_with_path(variables)[0]
    lines = sorted(f"{jax.tree_util.keystr(p)}:{tuple(x.shape)}:{x.dtype}" for p, x in flat)
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16], len(flat)


def _backbone_tree(name):
    model = get_model(name, num_classes=10)
    keys = {"params": jax.random.key(0), "dropout": jax.random.key(1)}
    return jax.eval_shape(lambda x: model.init(keys, x), jnp.zeros((1, 64, 64, 3)))


def _frontend_tree(name, kwargs):
    frontend = get_frontend(name, output_shape=(16, 16), **kwargs)
    return jax.eval_shape(frontend.init, jax.random.key(0), jnp.zeros((1, 64, 64, 3)))


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_backbone_variables_tree_is_unchanged(name):
    assert tree_digest(_backbone_tree(name)) == BACKBONES[name]


@pytest.mark.parametrize("name", sorted(FRONTENDS))
def test_frontend_variables_tree_is_unchanged(name):
    kwargs, expected = FRONTENDS[name]
    assert tree_digest(_frontend_tree(name, kwargs)) == expected
