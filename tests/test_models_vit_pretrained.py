"""ViT weights from timm (logit parity through a golden fixture) and big_vision files."""

import functools
import json

import jax
import numpy as np
import pytest

from resize_jax.models import vit_pretrained
from tests.golden.make_vit_golden import PATH, RESIZE_JAX_FIELDS, draw_inputs, draw_weights

TOLERANCE = 1e-4  # Of the largest |logit|.


@functools.cache
def _fixture():
    with open(PATH) as f:
        record = json.load(f)
    weights = draw_weights(record["manifest"], record["seed"])
    inputs = [x.transpose(0, 2, 3, 1) for x in draw_inputs(record["seed"])]
    return weights, inputs, [np.asarray(v, np.float32) for v in record["logits"]]


@functools.partial(jax.jit, static_argnums=0)
def _logits(model, variables, images):
    return model.apply(variables, images)[0]


def _relative_error(model, variables, images, expected):
    got = np.asarray(_logits(model, variables, images))
    return np.abs(got - expected).max() / np.abs(expected).max()


@pytest.fixture(scope="module")
def timm_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("timm") / "vit.npz"
    np.savez(path, **_fixture()[0])
    return str(path)


def test_timm_logits_match_at_the_stored_and_at_another_size(timm_file):
    _, inputs, expected = _fixture()
    model, variables = vit_pretrained.load(
        "vit_ti16", timm_file, source="timm", **RESIZE_JAX_FIELDS
    )
    assert model.num_classes == 7 and model.posemb_grid == (4, 4)
    assert _relative_error(model, variables, inputs[0], expected[0]) < TOLERANCE
    # 48×40: timm resamples its position embeddings on the fly (dynamic_img_size), so do we.
    assert _relative_error(model, variables, inputs[1], expected[1]) < TOLERANCE
    # The same resampling done once at load time.
    model, variables = vit_pretrained.load(
        "vit_ti16", timm_file, source="timm", image_size=(48, 40), **RESIZE_JAX_FIELDS
    )
    assert variables["params"]["pos_embedding"].shape == (1, 1 + 6 * 5, 48)
    assert _relative_error(model, variables, inputs[1], expected[1]) < TOLERANCE


def test_a_wrong_tensor_changes_the_logits(timm_file, tmp_path):
    # The fixture's weights reach the output: the parity above is not vacuous.
    weights, inputs, expected = _fixture()
    broken = dict(weights)
    broken["blocks.1.attn.qkv.weight"] = weights["blocks.1.attn.qkv.weight"][::-1].copy()
    np.savez(tmp_path / "broken.npz", **broken)
    model, variables = vit_pretrained.load(
        "vit_ti16", str(tmp_path / "broken.npz"), source="timm", **RESIZE_JAX_FIELDS
    )
    assert _relative_error(model, variables, inputs[0], expected[0]) > 1e-2


def _big_vision_npz(params, path, *, scanned, vit_jax):
    flat = {}
    for keys, value in jax.tree_util.tree_flatten_with_path(params)[0]:
        flat["/".join(k.key for k in keys)] = np.asarray(value)
    if vit_jax:  # The older layout: position embeddings inside the Transformer.
        flat["Transformer/posembed_input/pos_embedding"] = flat.pop("pos_embedding")
        flat = {k.replace("MlpBlock_0", "MlpBlock_3"): v for k, v in flat.items()}
    if scanned:
        blocks = sorted({k.split("/")[1] for k in flat if k.startswith("Transformer/encoderb")})
        stacked = {}
        for key in [k for k in flat if k.startswith(f"Transformer/{blocks[0]}/")]:
            leaf = key.split("/", 2)[2]
            stacked[f"Transformer/encoderblock/{leaf}"] = np.stack(
                [flat.pop(f"Transformer/{b}/{leaf}") for b in blocks]
            )
        flat.update(stacked)
    np.savez(path, **{f"params/{k}": v for k, v in flat.items()})
    return str(path)


@pytest.mark.parametrize(("scanned", "vit_jax"), [(False, True), (True, False)])
def test_big_vision_layouts_load(timm_file, tmp_path, scanned, vit_jax):
    _, inputs, expected = _fixture()
    _, variables = vit_pretrained.load("vit_ti16", timm_file, source="timm", **RESIZE_JAX_FIELDS)
    path = _big_vision_npz(
        variables["params"], tmp_path / "bv.npz", scanned=scanned, vit_jax=vit_jax
    )
    # timm's exact GELU for these weights; big_vision's own files default to the tanh one.
    model, loaded = vit_pretrained.load(
        "vit_ti16", path, source="big_vision", gelu_approximate=False, **RESIZE_JAX_FIELDS
    )
    assert _relative_error(model, loaded, inputs[0], expected[0]) < TOLERANCE


def test_big_vision_grid_only_position_embeddings_get_a_zero_class_row(tmp_path):
    rng = np.random.default_rng(0)
    _, variables = vit_pretrained.load(
        "vit_ti16", _timm_path(tmp_path), source="timm", **RESIZE_JAX_FIELDS
    )
    params = jax.tree.map(np.asarray, variables["params"])
    params["pos_embedding"] = rng.normal(size=(1, 16, 48)).astype(np.float32)
    path = _big_vision_npz(params, tmp_path / "bv.npz", scanned=False, vit_jax=False)
    _, loaded = vit_pretrained.load("vit_ti16", path, source="big_vision", **RESIZE_JAX_FIELDS)
    posemb = np.asarray(loaded["params"]["pos_embedding"])
    np.testing.assert_array_equal(posemb[:, 0], 0.0)
    np.testing.assert_array_equal(posemb[:, 1:], params["pos_embedding"])


def _timm_path(tmp_path):
    path = tmp_path / "timm.npz"
    np.savez(path, **_fixture()[0])
    return str(path)


def test_new_head_size_and_patch_size(timm_file):
    model, variables = vit_pretrained.load(
        "vit_ti16",
        timm_file,
        source="timm",
        num_classes=3,
        **{**RESIZE_JAX_FIELDS, "patch_size": 4},
    )
    params = variables["params"]
    assert params["head"]["kernel"].shape == (48, 3) and not np.any(params["head"]["kernel"])
    assert params["embedding"]["kernel"].shape == (4, 4, 3, 48)  # FlexiViT-resampled 8 → 4.
    assert model.posemb_grid == (4, 4)  # The file's grid; 32×32 inputs now make 8×8.
    assert _logits(model, variables, np.zeros((1, 32, 32, 3), np.float32)).shape == (1, 3)


def test_bad_files_and_arguments_are_refused(timm_file, tmp_path):
    weights = _fixture()[0]
    load = functools.partial(vit_pretrained.load, "vit_ti16", source="timm", **RESIZE_JAX_FIELDS)
    missing = {k: v for k, v in weights.items() if k != "blocks.1.mlp.fc2.bias"}
    np.savez(tmp_path / "missing.npz", **missing)
    with pytest.raises(ValueError, match=r"no tensor 'blocks.1.mlp.fc2.bias'"):
        load(str(tmp_path / "missing.npz"))
    np.savez(tmp_path / "extra.npz", **weights, **{"blocks.0.ls1.gamma": np.ones(48)})
    with pytest.raises(ValueError, match=r"no place for: \['blocks.0.ls1.gamma'\]"):
        load(str(tmp_path / "extra.npz"))
    non_square = {**weights, "pos_embed": np.zeros((1, 1 + 4 * 3, 48), np.float32)}
    np.savez(tmp_path / "grid.npz", **non_square)
    with pytest.raises(ValueError, match="12 grid embeddings, not a square grid"):
        load(str(tmp_path / "grid.npz"))
    model, _ = load(str(tmp_path / "grid.npz"), posemb_grid=(4, 3))
    assert model.posemb_grid == (4, 3)
    with pytest.raises(ValueError, match=r"mis-shaped \['Transformer/encoderblock_0/MlpBlock_0"):
        load(timm_file, mlp_dim=96)
    with pytest.raises(ValueError, match=r"`image_size`=\(30, 32\) must be a multiple"):
        load(timm_file, image_size=(30, 32))
    with pytest.raises(ValueError, match="`source` must be one of"):
        vit_pretrained.load("vit_ti16", timm_file, source="torchvision")
    with pytest.raises(ValueError, match="`name` must be one of"):
        vit_pretrained.load("resnet50", timm_file, source="timm")
    with pytest.raises(ValueError, match="does not exist"):
        load(str(tmp_path / "nothing.npz"))


def test_through_the_pretrained_package(timm_file):
    from resize_jax import models
    from resize_jax.models import pretrained

    _, inputs, expected = _fixture()
    model, variables = pretrained.load("vit_ti16", timm_file, source="timm", **RESIZE_JAX_FIELDS)
    assert _relative_error(model, variables, inputs[1], expected[1]) < TOLERANCE
    assert pretrained.preprocessing("timm", "vit_b16")["mean"] == (0.5, 0.5, 0.5)
    assert pretrained.model_fields("big_vision", "vit_b16") == {"gelu_approximate": True}
    # What `config.model.weights` does in training: import into an initialised state's
    # params, here a model at 48×48 (6×6 grid) with 3 classes.
    vit = models.get_model("vit_ti16", num_classes=3, **RESIZE_JAX_FIELDS)
    target = jax.jit(vit.init)(jax.random.key(0), np.zeros((1, 48, 48, 3), np.float32))
    tensors = pretrained.read_source(timm_file, "timm", "vit_ti16")
    conversion = pretrained.import_variables(
        tensors, vit, pretrained.recipe("timm", "vit_ti16"), where="test", target=target
    )
    params = conversion.variables["params"]
    assert conversion.fresh == ["head"]
    np.testing.assert_array_equal(params["head"]["kernel"], target["params"]["head"]["kernel"])
    assert params["pos_embedding"].shape == (1, 1 + 36, 48)
    # Resampled from the file's 4×4 grid as the loader does at load time for 48×48.
    _, at_48 = vit_pretrained.load(
        "vit_ti16", timm_file, source="timm", image_size=(48, 48), **RESIZE_JAX_FIELDS
    )
    np.testing.assert_allclose(params["pos_embedding"], at_48["params"]["pos_embedding"])


def test_weights_file_into_a_training_state_under_fsdp(timm_file):
    # `config.model.weights`: a front-end + ViT state (no BatchNorm anywhere), split by FSDP.
    from resize_jax import frontends, models
    from resize_jax.config_args import training_defaults
    from resize_jax.train import init_from, init_training, sharding

    config = training_defaults()
    config.sharding, config.fsdp_min_size_mb = "fsdp", 0.0
    vit = models.get_model("vit_ti16", num_classes=7, **RESIZE_JAX_FIELDS)
    model = models.FrontEndModel(frontends.get_frontend("fixed", output_shape=(48, 48)), vit)
    sample = np.zeros((1, 96, 96, 3), np.float32)
    state, _, _ = init_training(config, model, sample, sharding.make_mesh(2))  # 2: cheaper.
    loaded = init_from.load_pretrained(
        state, ("backbone",), "vit_ti16", vit, timm_file, "timm", "model"
    )
    _, at_48 = vit_pretrained.load(
        "vit_ti16", timm_file, source="timm", image_size=(48, 48), **RESIZE_JAX_FIELDS
    )
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(np.asarray(a), np.asarray(b)),
        loaded.params["backbone"],
        at_48["params"],
    )
    kernel = loaded.params["backbone"]["embedding"]["kernel"]
    assert kernel.sharding == state.params["backbone"]["embedding"]["kernel"].sharding
    assert not kernel.sharding.is_fully_replicated and loaded.batch_stats == state.batch_stats
