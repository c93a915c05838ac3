"""FixedResizer and the front-end registry."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import resize_jax
from resize_jax import FixedResizer, LearnedResizer, frontends, get_frontend, ops


@pytest.mark.parametrize("method", list(ops.METHODS))
@pytest.mark.parametrize("antialias", [False, True])
def test_fixed_resizer_is_ops_resize(method, antialias):
    x = jax.random.uniform(jax.random.key(0), (2, 20, 30, 3))
    model = FixedResizer((7, 11), method=method, antialias=antialias)
    variables = model.init(jax.random.key(0), x)
    assert jax.tree.leaves(variables) == []
    out, aux = model.apply(variables, x, train=True)
    assert aux == {}
    np.testing.assert_array_equal(out, ops.resize(x, (7, 11), method=method, antialias=antialias))


def test_fixed_resizer_dtype_and_errors():
    x = jnp.ones((1, 8, 8, 3))
    out, _ = FixedResizer((4, 4), dtype=jnp.bfloat16).apply({}, x)
    assert out.dtype == jnp.bfloat16
    with pytest.raises(ValueError, match="`method` must be one of"):
        FixedResizer((4, 4), method="box")
    with pytest.raises(ValueError, match="`output_shape`"):
        FixedResizer((4, -4))
    with pytest.raises(ValueError, match="`images` must have rank 4"):
        FixedResizer((4, 4)).apply({}, jnp.ones((8, 8, 3)))


def test_registry_builds_each_frontend():
    assert {"fixed", "learned"} <= set(frontends.frontend_names())
    assert isinstance(get_frontend("learned", output_shape=(8, 8)), LearnedResizer)
    fixed = get_frontend("fixed", output_shape=(8, 8), method="bicubic")
    assert isinstance(fixed, FixedResizer) and fixed.method == "bicubic"
    x = jnp.ones((1, 16, 16, 3))
    for name in frontends.frontend_names():
        model = get_frontend(name, output_shape=(8, 8))
        out, aux = model.apply(model.init(jax.random.key(0), x), x)
        chex.assert_shape(out, (1, 8, 8, 3))
        assert isinstance(aux, dict)


def test_registry_unknown_name_lists_known_names():
    with pytest.raises(ValueError, match=r"`name`='bogus'; known names: \[.*'fixed'.*'learned'"):
        get_frontend("bogus", output_shape=(8, 8))


def test_registry_refuses_a_second_class_under_one_name():
    with pytest.raises(ValueError, match="already registered"):
        frontends.register_frontend("fixed")(LearnedResizer)


def test_public_api():
    assert resize_jax.resize is ops.resize
    for name in resize_jax.__all__:
        assert hasattr(resize_jax, name)
