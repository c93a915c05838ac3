"""FSDP sharding of the train state: the rule, memory per device, checkpoints across settings,
and a training run resumed under the other setting."""

import logging

import chex
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from resize_jax import models
from resize_jax.config_args import model_section, training_defaults
from resize_jax.train import checkpoint, init_training, optim, sharding, train_and_evaluate
from resize_jax.train.state import TrainState
from resize_jax.train.writer import read_metrics
from tests import train_fakes

TINY_VIT = {"patch_size": 4, "hidden_size": 32, "depth": 1, "num_heads": 2, "mlp_dim": 64}
MIB = 2**20


def _config(name="fsdp", min_size_mb=0.0):
    return ml_collections.ConfigDict({"sharding": name, "fsdp_min_size_mb": min_size_mb})


def test_rule_splits_the_largest_divisible_dimension_of_large_arrays(caplog):
    spec = sharding.fsdp_spec
    assert spec((768, 3072), np.float32, 8, MIB) == P(None, "data")
    assert spec((3072, 768), np.float32, 8, MIB) == P("data")
    # 1000 classes: the largest dimension is not divisible by 8... but 768 is.
    assert spec((768, 1001), np.float32, 8, MIB) == P("data")
    assert spec((768,), np.float32, 8, MIB) == P()  # Below the threshold.
    assert spec((768, 3072), np.float32, 1, MIB) == P()  # One device: nothing to split.
    # The absl logger's own level: an earlier quiet command may have raised it.
    with caplog.at_level(logging.DEBUG, logger="absl"):
        assert spec((1001, 999), np.float32, 8, 0, "params/head/kernel") == P()
    assert "params/head/kernel" in caplog.text and "stays replicated" in caplog.text


def test_bad_sharding_config_is_refused():
    with pytest.raises(ValueError, match=r"`config.sharding` must be one of .*got 'zero3'"):
        sharding.check_sharding_config(_config("zero3"))
    with pytest.raises(ValueError, match=r"`config.fsdp_min_size_mb` must be a non-negative"):
        sharding.check_sharding_config(_config(min_size_mb=-1))


def _abstract_state(model, size):
    sample = jax.ShapeDtypeStruct((1, size, size, 3), jnp.float32)
    params = jax.eval_shape(model.init, jax.random.key(0), sample)["params"]
    tx, _ = optim.make_optimizer(training_defaults().optimizer, params, 10)
    return TrainState(
        step=jax.ShapeDtypeStruct((), jnp.int32),
        params=params,
        batch_stats={},
        opt_state=jax.eval_shape(tx.init, params),
    )


def _placed(abstract, shardings):
    return jax.tree.map(
        lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract, shardings
    )


def test_vit_b16_state_per_device_falls_as_one_over_devices():
    chex.assert_equal(jax.device_count(), 8)
    abstract = _abstract_state(models.get_model("vit_b16", num_classes=1000), 224)
    config = _config(min_size_mb=training_defaults().fsdp_min_size_mb)  # 1 MiB
    per_device = {}
    for devices in (1, 2, 4, 8):
        mesh = sharding.make_mesh(devices)
        per_device[devices] = sharding.bytes_per_device(
            _placed(abstract, sharding.state_sharding(abstract, mesh, config))
        )
    total = per_device[1]
    assert total == pytest.approx(3 * 86_567_656 * 4, rel=1e-6)  # Params + Adam's mu and nu.
    for devices in (2, 4, 8):
        # Only the small arrays (biases, LayerNorms, the 0.6 MiB position embeddings) stay
        # whole: 2.2% above 1/8 on 8 devices.
        assert total / devices <= per_device[devices] <= 1.03 * total / devices
    replicated = sharding.state_sharding(abstract, sharding.make_mesh(8), _config("replicated"))
    assert sharding.bytes_per_device(_placed(abstract, replicated)) == total


@pytest.fixture(scope="module")
def tiny_vit_config():
    config = train_fakes.tiny_config("fixed")
    config.model = model_section("vit_ti16", **TINY_VIT)
    config.sharding = "fsdp"
    config.fsdp_min_size_mb = 0.0
    return config


def test_initialised_state_is_split_on_the_devices(tiny_vit_config):
    mesh = sharding.make_mesh(8)
    model = models.get_model("vit_ti16", num_classes=4, **TINY_VIT)
    state, _, _ = init_training(tiny_vit_config, model, np.zeros((1, 16, 16, 3), np.float32), mesh)
    kernel = state.params["Transformer"]["encoderblock_0"]["MlpBlock_0"]["Dense_0"]["kernel"]
    assert kernel.sharding.spec == P(None, "data")  # (32, 64): 64 is split.
    assert kernel.addressable_shards[0].data.shape == (32, 8)
    moments = [x for x in jax.tree.leaves(state.opt_state) if x.shape == kernel.shape]
    assert len(moments) == 2  # Adam's mu and nu, split as the parameter.
    assert all(m.sharding == kernel.sharding for m in moments)
    # What device 0 really holds, against the whole state.
    held = sum(
        shard.data.nbytes
        for leaf in jax.tree.leaves(state)
        for shard in leaf.addressable_shards
        if shard.device == mesh.devices.flat[0]
    )
    whole = sum(leaf.nbytes for leaf in jax.tree.leaves(state))
    assert held == sharding.bytes_per_device(state) < whole / 4


@pytest.mark.parametrize(
    ("saved", "restored"), [(("fsdp", 8), ("replicated", 1)), (("replicated", 1), ("fsdp", 8))]
)
def test_checkpoint_restores_across_sharding_settings(tmp_path, tiny_vit_config, saved, restored):
    model = models.get_model("vit_ti16", num_classes=4, **TINY_VIT)
    sample = np.zeros((1, 16, 16, 3), np.float32)

    def state_for(name, devices):
        config = ml_collections.ConfigDict(tiny_vit_config.to_dict())
        config.sharding = name
        return init_training(config, model, sample, sharding.make_mesh(devices))[0]

    source = state_for(*saved)
    source = source.replace(params=jax.tree.map(lambda x: x + 1.0, source.params))
    with checkpoint.CheckpointStore(str(tmp_path)) as store:
        store.save(source, force=True)
    target = state_for(*restored)
    with checkpoint.CheckpointStore(str(tmp_path)) as store:
        loaded = store.restore_latest(target)
    jax.tree.map(
        lambda a, b: np.testing.assert_array_equal(np.asarray(a), np.asarray(b)), source, loaded
    )
    jax.tree.map(lambda a, b: chex.assert_equal(a.sharding, b.sharding), loaded, target)


def _losses(workdir):
    return np.array([r["train/loss"] for r in read_metrics(workdir) if "train/loss" in r])


def test_fsdp_run_resumes_replicated_on_one_device(tmp_path, monkeypatch, tiny_vit_config):
    train_fakes.install(monkeypatch)

    def config(**overrides):
        result = ml_collections.ConfigDict(tiny_vit_config.to_dict())
        for key, value in overrides.items():
            result[key] = value
        return result

    straight = train_and_evaluate(config(sharding="replicated", num_devices=1), str(tmp_path / "a"))
    workdir = str(tmp_path / "b")
    # Stopped by a real SIGTERM while batch 4 is read (the schedule still spans 8 steps).
    stopped = config(num_devices=8, preemption_check_every_steps=1)
    stopped.data.fake_sigterm_at_batch = 4
    half = train_and_evaluate(stopped, workdir)
    assert half.preempted and int(half.state.step) == 4
    kernel = half.state.params["backbone"]["embedding"]["kernel"]
    assert kernel.sharding.spec == P(None, None, None, "data")
    # The sharding may change on resume without `resume_changes`; the fake SIGTERM may not.
    resumed = train_and_evaluate(
        config(sharding="replicated", num_devices=1, resume_changes="data.fake_sigterm_at_batch"),
        workdir,
    )
    assert int(resumed.state.step) == 8
    assert resumed.state.params["backbone"]["embedding"]["kernel"].sharding.num_devices == 1
    # Same tolerance as the 1-vs-8-device test: sharded sums round differently.
    np.testing.assert_allclose(_losses(workdir), _losses(str(tmp_path / "a")), atol=2e-4, rtol=2e-4)
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, atol=2e-4, rtol=2e-3),
        straight.state.params,
        resumed.state.params,
    )
