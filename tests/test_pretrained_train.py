"""Training from pretrained weights: a torchvision file → train.py on an image folder with a
new head; resuming ignores the file; the convert command's checkpoint; path patterns that
take the front-end from one run and the backbone from another; the saliency trunk."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest
from PIL import Image

from resize_jax.config_args import model_section
from resize_jax.models import get_model, pretrained
from resize_jax.models.pretrained import names
from resize_jax.models.pretrained.loader import abstract_variables
from resize_jax.tools import convert
from resize_jax.train import build, checkpoint, init_from, train_and_evaluate
from resize_jax.train.state import TrainState
from resize_jax.train.writer import read_metrics
from tests import train_fakes
from tests.golden.make_pretrained_golden import draw_weights, fixture_path

torch = pytest.importorskip("torch")  # The `test` extra installs the CPU build.


TINY = {"stage_sizes": (1, 1, 1, 1), "num_filters": 8}  # A ResNet that compiles quickly.


def _torchvision_file(model, path, seed):
    """A torchvision-format state dict (names, OIHW kernels, counters) for `model`, with
    weights drawn like the golden fixtures'. The names come from the loader's own mapping,
    which the golden tests check against torchvision itself."""
    variables = abstract_variables(model)
    manifest = []
    for collection in ("params", "batch_stats"):
        flat = jax.tree_util.tree_flatten_with_path(variables[collection])[0]
        for key_path, leaf in flat:
            keys = [k.key for k in key_path]
            layer = names.torchvision_resnet("/".join(keys[:-1]))
            shape = list(leaf.shape)
            if keys[-1] == "kernel":
                shape = shape[::-1] if len(shape) == 2 else [shape[3], shape[2], *shape[:2]]
            leaf_name = {"kernel": "weight", "scale": "weight", "mean": "running_mean"}
            leaf_name = leaf_name.get(keys[-1], {"var": "running_var"}.get(keys[-1], keys[-1]))
            manifest.append((f"{layer}.{leaf_name}", shape, "float32"))
            if keys[-1] == "mean":
                manifest.append((f"{layer}.num_batches_tracked", [], "int64"))
    weights = draw_weights(manifest, seed)
    torch.save({k: torch.from_numpy(v) for k, v in weights.items()}, str(path))
    return str(path)


@pytest.fixture(scope="module")
def tiny_file(tmp_path_factory):
    model = get_model("resnet18", num_classes=1000, **TINY)
    return _torchvision_file(model, tmp_path_factory.mktemp("w") / "tiny.pth", seed=5)


@pytest.fixture(scope="module")
def resnet18_file(tmp_path_factory):
    with open(fixture_path("torchvision", "resnet18")) as f:
        weights = draw_weights(json.load(f)["manifest"], seed=5)
    path = tmp_path_factory.mktemp("weights") / "resnet18.pth"
    torch.save({k: torch.from_numpy(v) for k, v in weights.items()}, str(path))
    return str(path)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """root/<split>/<label>/<n>.png: "red" and "blue" noisy squares."""
    root = tmp_path_factory.mktemp("folder")
    rng = np.random.default_rng(0)
    for split, count in (("train", 8), ("test", 2)):
        for label, channel in (("blue", 2), ("red", 0)):
            (root / split / label).mkdir(parents=True)
            for i in range(count):
                pixels = rng.integers(0, 100, (40, 40, 3))
                pixels[..., channel] += 150
                Image.fromarray(pixels.astype(np.uint8)).save(root / split / label / f"{i}.png")
    return str(root)


def _assert_equal(a, b):
    jax.tree.map(np.testing.assert_array_equal, a, b)


def _without_head(tree):
    return {k: v for k, v in tree.items() if k != "head"}


def test_torchvision_file_trains_a_new_head_and_resume_ignores_the_file(
    tiny_file, folder, tmp_path
):
    config = train_fakes.tiny_config("fixed", num_train_steps=6, checkpoint_every_steps=3)
    config.data.name, config.data.root = "folder", folder
    config.data.train_split, config.data.eval_split = "train", "test"
    config.data.image_size, config.data.augment = (40, 40), False
    config.frontend.output_shape = (32, 32)
    config.model = model_section(
        "resnet18", weights=tiny_file, weights_source="torchvision", **TINY
    )
    config.batch_size = config.eval_batch_size = 8
    config.optimizer.name, config.optimizer.learning_rate = "sgd", 0.05
    config.optimizer.warmup_steps = 0
    workdir = str(tmp_path / "run")
    result = train_and_evaluate(config, workdir)
    losses = [r["train/loss"] for r in read_metrics(workdir) if "train/loss" in r]
    assert len(losses) == 6 and losses[-1] < losses[0], losses
    assert result.state.params["backbone"]["head"]["kernel"].shape == (64, 2)

    # Resuming: the workdir's checkpoint wins, the weights file is not even read (and a
    # moved file does not count as a changed config).
    config.model.weights = str(tmp_path / "no_such_file.pth")
    config.num_train_steps = 7
    config.resume_changes = "num_train_steps"
    resumed = train_and_evaluate(config, workdir)
    assert int(resumed.state.step) == 7


def test_convert_command_checkpoint_starts_a_run_without_the_head(tiny_file, tmp_path, monkeypatch):
    train_fakes.install(monkeypatch)
    out = tmp_path / "converted"
    convert.convert("resnet18", tiny_file, str(out), source="torchvision", **TINY)
    assert checkpoint.verify_step(str(out / "checkpoints" / "0")) is None
    assert (out / "checkpoints" / "0" / checkpoint.MANIFEST).exists()
    record = json.loads((out / "pretrained.json").read_text())
    assert record["num_classes"] == 1000 and record["preprocessing"]["std"][0] == 0.229
    with pytest.raises(ValueError, match="already holds a checkpoint"):
        convert.convert("resnet18", tiny_file, str(out), source="torchvision", **TINY)

    config = train_fakes.tiny_config("none", num_train_steps=0, init_from=str(out))
    config.model = model_section("resnet18", weights_source="torchvision", **TINY)
    config.init_parts = "backbone,!backbone/head"
    result = train_and_evaluate(config, str(tmp_path / "run"))
    _, expected = pretrained.load("resnet18", tiny_file, source="torchvision", **TINY)
    _assert_equal(_without_head(result.state.params["backbone"]), _without_head(expected["params"]))
    _assert_equal(result.state.batch_stats["backbone"], expected["batch_stats"])
    assert result.state.params["backbone"]["head"]["kernel"].shape == (64, train_fakes.NUM_CLASSES)


def _save_run(path, variables):
    """A run's workdir holding `variables` as its latest checkpoint."""
    options = ocp.CheckpointManagerOptions(create=True, enable_async_checkpointing=False)
    with ocp.CheckpointManager(str(path / "checkpoints"), options=options) as manager:
        manager.save(1, args=ocp.args.StandardSave({"step": np.ones((), np.int32), **variables}))


def test_frontend_from_one_run_backbone_from_another(tmp_path):
    # The loop's call of `init_from.initialize` is exercised by the tests above; here the
    # rules themselves, on states made directly (no training step to compile).
    config = train_fakes.tiny_config("learned")
    model = build.build_model(config, train_fakes.get_info(config.data))
    init = jax.jit(lambda seed: model.init(jax.random.key(seed), jnp.zeros((1, 32, 32, 3))))
    a, b, c = init(1), init(2), init(3)
    _save_run(tmp_path / "a", a)
    _save_run(tmp_path / "b", b)
    state = TrainState(step=0, params=c["params"], batch_stats=c["batch_stats"], opt_state=())
    config.init_rules = f"{tmp_path / 'a'}:frontend; {tmp_path / 'b'}:backbone/**,!backbone/head/*"
    new = init_from.initialize(config, state, model)
    _assert_equal(new.params["frontend"], a["params"]["frontend"])
    _assert_equal(new.batch_stats["frontend"], a["batch_stats"]["frontend"])
    _assert_equal(_without_head(new.params["backbone"]), _without_head(b["params"]["backbone"]))
    _assert_equal(new.params["backbone"]["head"], c["params"]["backbone"]["head"])
    assert not np.array_equal(
        c["params"]["backbone"]["head"]["kernel"], b["params"]["backbone"]["head"]["kernel"]
    )
    config.init_rules = f"{tmp_path / 'b'}:backbone,!backbone/hed"
    with pytest.raises(ValueError, match=r"`config.init_rules` pattern 'backbone/hed' matches no"):
        init_from.initialize(config, state, model)
    config.init_rules = f"{tmp_path / 'nowhere'}:backbone"
    with pytest.raises(ValueError, match=r"has no checkpoints/ directory"):
        init_from.initialize(config, state, model)


def test_path_patterns():
    paths = ["backbone/head/kernel", "backbone/stem/conv/kernel", "frontend/conv_in/kernel"]
    select = lambda patterns: init_from.select(paths, patterns, "config.init_parts")
    assert select("backbone,!backbone/head") == ["backbone/stem/conv/kernel"]
    assert select("*/*/kernel") == ["backbone/head/kernel", "frontend/conv_in/kernel"]
    assert select("**/kernel") == paths
    with pytest.raises(ValueError, match=r"pattern 'backbone/stem/bn' matches no variable"):
        select("backbone/stem/bn")
    with pytest.raises(ValueError, match="at least one path pattern"):
        select("!frontend")


def test_saliency_trunk_from_a_config_with_pretrained_weights(resnet18_file, tmp_path, monkeypatch):
    train_fakes.install(monkeypatch)
    config = train_fakes.tiny_config("saliency", num_train_steps=0)
    config.frontend.saliency_input_shape = (32, 32)
    config.frontend.saliency_net = "resnet18_layer3"
    config.frontend.saliency_net_weights = resnet18_file
    result = train_and_evaluate(config, str(tmp_path / "run"))
    _, expected = pretrained.load("resnet18", resnet18_file, source="torchvision", trunk="layer3")
    params = result.state.params["frontend"]
    _assert_equal(params["saliency_net"]["resnet"], expected["params"])
    _assert_equal(
        result.state.batch_stats["frontend"]["saliency_net"]["resnet"], expected["batch_stats"]
    )
    assert params["saliency_head"]["kernel"].shape == (1, 1, 256, 1)
