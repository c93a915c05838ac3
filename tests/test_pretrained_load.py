"""`pretrained.load`: strict name/shape checks, fresh heads, trunks, and every kind of bad
file. Shape-only (nothing here runs a network except the trunk check on a tiny input)."""

import logging
import pathlib
import pickle
import sys

import jax
import numpy as np
import pytest

from resize_jax.models import get_model, pretrained
from tests.golden.make_pretrained_golden import draw_weights

torch = pytest.importorskip("torch")  # The `test` extra installs the CPU build.

MANIFEST = [
    ("conv1.weight", [64, 3, 7, 7], "float32"),
    ("bn1.weight", [64], "float32"),
    ("bn1.bias", [64], "float32"),
    ("bn1.running_mean", [64], "float32"),
    ("bn1.running_var", [64], "float32"),
    ("bn1.num_batches_tracked", [], "int64"),
]


def _resnet18_manifest():
    """torchvision resnet18's state-dict names and shapes, from the golden fixture."""
    import json

    from tests.golden.make_pretrained_golden import fixture_path

    with open(fixture_path("torchvision", "resnet18")) as f:
        return json.load(f)["manifest"]


@pytest.fixture(scope="module")
def weights():
    return draw_weights(_resnet18_manifest(), seed=3)


def _pth(weights, path):
    torch.save({k: torch.from_numpy(np.asarray(v)) for k, v in weights.items()}, str(path))
    return str(path)


@pytest.fixture(scope="module")
def resnet18_file(weights, tmp_path_factory):
    return _pth(weights, tmp_path_factory.mktemp("w") / "resnet18.pth")


@pytest.fixture(scope="module")
def loaded(resnet18_file):
    return pretrained.load("resnet18", resnet18_file, source="torchvision")


def test_load_fills_every_variable_from_the_file(weights, loaded):
    model, variables = loaded
    assert model.num_classes == 1000 and model.bn_epsilon == 1e-5
    params, stats = variables["params"], variables["batch_stats"]
    np.testing.assert_array_equal(
        params["stem"]["conv"]["kernel"], weights["conv1.weight"].transpose(2, 3, 1, 0)
    )
    np.testing.assert_array_equal(
        params["stage2_block1"]["shortcut"]["bn"]["scale"], weights["layer2.0.downsample.1.weight"]
    )
    np.testing.assert_array_equal(
        stats["stage4_block2"]["conv2"]["bn"]["var"], weights["layer4.1.bn2.running_var"]
    )
    np.testing.assert_array_equal(params["head"]["kernel"], weights["fc.weight"].T)
    # As many numbers as the file holds, apart from the BatchNorm counters.
    file_size = sum(v.size for k, v in weights.items() if "num_batches" not in k)
    assert sum(x.size for x in jax.tree.leaves(variables)) == file_size


def test_another_num_classes_keeps_a_fresh_head_and_says_so(resnet18_file, loaded, caplog):
    _, full = loaded
    with caplog.at_level(logging.WARNING):
        model, variables = pretrained.load(
            "resnet18", resnet18_file, source="torchvision", num_classes=10
        )
    assert "head is freshly initialised" in caplog.text
    assert model.num_classes == 10
    assert variables["params"]["head"]["kernel"].shape == (512, 10)
    rest = {k: v for k, v in variables["params"].items() if k != "head"}
    jax.tree.map(
        np.testing.assert_array_equal,
        rest,
        {k: v for k, v in full["params"].items() if k != "head"},
    )
    jax.tree.map(np.testing.assert_array_equal, variables["batch_stats"], full["batch_stats"])


def test_trunk_loads_up_to_layer3_and_computes_the_full_models_features(resnet18_file, loaded):
    trunk, variables = pretrained.load(
        "resnet18", resnet18_file, source="torchvision", trunk="layer3"
    )
    assert set(variables["params"]) == {
        "stem",
        *(f"stage{i}_block{j}" for i in (1, 2, 3) for j in (1, 2)),
    }
    model, full = loaded
    images = np.random.default_rng(0).normal(size=(1, 48, 40, 3)).astype(np.float32)
    features, _ = trunk.apply(variables, images)
    _, state = model.apply(full, images, capture_intermediates=True, mutable=["intermediates"])
    expected = state["intermediates"]["stage3_block2"]["__call__"][0]
    assert features.shape == (1, 3, 3, 256)
    np.testing.assert_allclose(features, expected, rtol=1e-5, atol=1e-5)


def test_wrong_architecture_lists_the_names(resnet18_file):
    with pytest.raises(ValueError, match=r"resnet18.pth.*missing.*layer1.0.conv3.weight"):
        pretrained.load("resnet50", resnet18_file, source="torchvision")


def test_missing_unexpected_and_misshaped_tensors_are_named(weights, tmp_path):
    broken = dict(weights)
    del broken["layer3.0.bn1.running_var"]
    broken["extra.weight"] = np.zeros(3, np.float32)
    broken["layer2.1.conv1.weight"] = np.zeros((128, 128, 1, 1), np.float32)
    with pytest.raises(ValueError) as error:
        pretrained.load("resnet18", _pth(broken, tmp_path / "b.pth"), source="torchvision")
    message = str(error.value)
    assert "1 missing: layer3.0.bn1.running_var" in message
    assert "unexpected (unused): extra.weight" in message
    assert "mis-shaped: layer2.1.conv1.weight" in message


def test_truncated_files_are_refused(resnet18_file, weights, tmp_path):
    data = pathlib.Path(resnet18_file).read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"cut.pth.*truncated or corrupt"):
        pretrained.load("resnet18", str(tmp_path / "cut.pth"), source="torchvision")
    from safetensors.numpy import save_file

    save_file(weights, str(tmp_path / "w.safetensors"))
    data = (tmp_path / "w.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"cut.safetensors.*truncated or corrupt"):
        pretrained.load("resnet18", str(tmp_path / "cut.safetensors"), source="timm")


class _Payload:
    """Unpickling this would run code; weights_only loading must refuse it."""

    def __reduce__(self):
        return (print, ("this must never run",))


def test_pickled_objects_are_never_unpickled(tmp_path, capsys):
    torch.save(torch.nn.Linear(2, 2), str(tmp_path / "module.pth"))
    with pytest.raises(ValueError, match=r"module.pth.*not a plain PyTorch state dict"):
        pretrained.load("resnet18", str(tmp_path / "module.pth"), source="torchvision")
    with open(tmp_path / "evil.pth", "wb") as f:
        pickle.dump({"conv1.weight": _Payload()}, f)
    with pytest.raises(ValueError, match=r"evil.pth"):
        pretrained.load("resnet18", str(tmp_path / "evil.pth"), source="torchvision")
    assert "this must never run" not in capsys.readouterr().out
    torch.save([torch.zeros(2)], str(tmp_path / "list.pth"))
    with pytest.raises(ValueError, match=r"list.pth.*holds a list, not a state dict"):
        pretrained.load("resnet18", str(tmp_path / "list.pth"), source="torchvision")


def test_pth_without_torch_names_the_package(resnet18_file, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(ImportError, match=r"resnet18.pth.*pip install torch"):
        pretrained.load("resnet18", resnet18_file, source="torchvision")


def test_bad_source_name_model_or_path(resnet18_file, tmp_path):
    with pytest.raises(ValueError, match=r"`source` must be one of .*got 'pytorch'"):
        pretrained.load("resnet18", resnet18_file, source="pytorch")
    with pytest.raises(ValueError, match=r"No keras weights mapping for model `name`='resnet18'"):
        pretrained.load("resnet18", resnet18_file, source="keras")
    with pytest.raises(ValueError, match=r"does not exist"):
        pretrained.load("resnet18", str(tmp_path / "nothing.pth"), source="torchvision")
    (tmp_path / "w.onnx").write_bytes(b"x")
    with pytest.raises(ValueError, match=r"unknown suffix"):
        pretrained.load("resnet18", str(tmp_path / "w.onnx"), source="torchvision")


def test_npz_and_training_checkpoint_wrappers(weights, loaded, tmp_path):
    _, expected = loaded
    np.savez(tmp_path / "w.npz", **weights)
    _, from_npz = pretrained.load("resnet18", str(tmp_path / "w.npz"), source="torchvision")
    jax.tree.map(np.testing.assert_array_equal, from_npz, expected)
    state = {f"module.{k}": torch.from_numpy(v) for k, v in weights.items()}
    torch.save({"state_dict": state, "epoch": 3}, str(tmp_path / "ckpt.pth"))
    _, from_ckpt = pretrained.load("resnet18", str(tmp_path / "ckpt.pth"), source="torchvision")
    jax.tree.map(np.testing.assert_array_equal, from_ckpt, expected)


def test_preprocessing_and_supported_table():
    norm = pretrained.preprocessing("torchvision", "resnet50")
    assert norm["mean"] == (0.485, 0.456, 0.406) and norm["std"] == (0.229, 0.224, 0.225)
    assert ("keras", "densenet121") in pretrained.supported()
    assert pretrained.model_fields("timm", "efficientnet_b0")["bn_epsilon"] == 1e-5
    assert get_model("efficientnet_b0", num_classes=2).bn_epsilon == 1e-3  # TF's default.
    with pytest.raises(ValueError, match=r"`trunk` must be None or one of"):
        get_model("resnet18", num_classes=2, trunk="layer5")


def test_docs_python_block_runs(resnet18_file, monkeypatch):
    import re

    page = pathlib.Path(__file__).resolve().parents[1] / "docs" / "pretrained.md"
    # The page's example needs a weights file, so it is run here, beside one (```py blocks).
    blocks = re.findall(r"```py\n(.*?)```", page.read_text(), flags=re.S)
    assert blocks
    monkeypatch.chdir(pathlib.Path(resnet18_file).parent)  # Where resnet18.pth lies.
    for block in blocks:
        exec(compile(block, str(page), "exec"), {})


def test_trunk_only_where_it_exists():
    with pytest.raises(ValueError, match=r"model 'densenet121' has no trunk option"):
        get_model("densenet121", num_classes=2, trunk="layer3")
