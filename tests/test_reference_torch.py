"""benchmarks/reference_torch.py computes what resize_jax computes (so the timings compare the
same work), and bench_frontends.py picks the fastest reference setting."""

import importlib.util
import pathlib

import jax
import numpy as np
import pytest

from resize_jax import ops
from resize_jax.frontends import LearnedResizer, SaliencySampler

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _load(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bench_frontends = _load("bench_frontends")


def _copy_conv(torch, conv, params):
    conv.weight.data = torch.from_numpy(np.asarray(params["kernel"]).transpose(3, 2, 0, 1).copy())
    conv.bias.data = torch.from_numpy(np.asarray(params["bias"]).copy())


def _copy_bn(torch, bn, params, stats):
    bn.weight.data = torch.from_numpy(np.asarray(params["scale"]).copy())
    bn.bias.data = torch.from_numpy(np.asarray(params["bias"]).copy())
    bn.running_mean = torch.from_numpy(np.asarray(stats["mean"]).copy())
    bn.running_var = torch.from_numpy(np.asarray(stats["var"]).copy())


@pytest.mark.parametrize("memory_format", ["channels_last", "contiguous"])
def test_reference_learned_resizer_matches_ours(memory_format):
    torch = pytest.importorskip("torch")
    reference = _load("reference_torch")
    x = jax.random.normal(jax.random.key(0), (2, 24, 24, 3))
    model = LearnedResizer((12, 12))
    variables = model.init(jax.random.key(1), x)
    # Non-trivial running statistics, so inference-mode BatchNorm is compared too.
    stats = jax.tree.map(
        lambda v: v + 0.3 * jax.random.uniform(jax.random.key(2), v.shape),
        variables["batch_stats"],
    )
    ours = model.apply({"params": variables["params"], "batch_stats": stats}, x)[0]

    p, s = variables["params"], stats
    theirs = reference.LearnedResizer((12, 12)).eval()
    for name in ("conv_in", "conv_mix", "conv_proj", "conv_out"):
        _copy_conv(torch, getattr(theirs, name), p[name])
    _copy_bn(torch, theirs.bn_in, p["bn_in"], s["bn_in"])
    _copy_bn(torch, theirs.bn_proj, p["bn_proj"], s["bn_proj"])
    block = theirs.blocks[0]
    for k in (1, 2):
        _copy_conv(torch, getattr(block, f"conv{k}"), p["res_block_0"][f"conv{k}"])
        _copy_bn(
            torch, getattr(block, f"bn{k}"), p["res_block_0"][f"bn{k}"], s["res_block_0"][f"bn{k}"]
        )
    fmt = torch.channels_last if memory_format == "channels_last" else torch.contiguous_format
    images = torch.from_numpy(np.asarray(x).transpose(0, 3, 1, 2).copy())
    with torch.no_grad():
        out = theirs.to(memory_format=fmt)(images.contiguous(memory_format=fmt))
    np.testing.assert_allclose(out.numpy().transpose(0, 2, 3, 1), ours, atol=2e-4, rtol=1e-4)


def test_reference_saliency_grid_and_sampling_match_ours():
    torch = pytest.importorskip("torch")
    reference = _load("reference_torch")
    images = jax.random.uniform(jax.random.key(3), (2, 40, 48, 3))
    logits = 2 * jax.random.normal(jax.random.key(4), (2, 31, 31))
    saliency = jax.nn.softmax(logits.reshape(2, -1), axis=-1).reshape(logits.shape)
    grid = ops.saliency_grid(saliency, (16, 20), pad=30, fwhm=13.0)
    ours = ops.grid_sample(images, grid)

    torch_logits = torch.from_numpy(np.asarray(logits)[:, None].copy())
    torch_images = torch.from_numpy(np.asarray(images).transpose(0, 3, 1, 2).copy())
    with torch.no_grad():
        theirs_grid = reference.saliency_grid(
            torch.softmax(torch_logits.flatten(1), -1).view_as(torch_logits), (16, 20), 30, 13.0
        )
        theirs = reference.sample(torch_images, torch_logits, (16, 20), 30, 13.0)
    np.testing.assert_allclose(theirs_grid.numpy(), grid, atol=1e-5)
    # Grid rounding (~1e-6) times the image gradient (up to ~50 per unit of grid).
    np.testing.assert_allclose(theirs.numpy().transpose(0, 2, 3, 1), ours, atol=1e-4)


def test_reference_saliency_sampler_has_our_default_network():
    torch = pytest.importorskip("torch")
    reference = _load("reference_torch")
    x = jax.random.uniform(jax.random.key(5), (2, 64, 64, 3))
    model = SaliencySampler((24, 24), saliency_input_shape=(32, 32))
    variables = model.init(jax.random.key(6), x)
    p = variables["params"]["saliency_net"]
    # Random logit weights (they start at zero) and running statistics, so that every layer
    # shows in the saliency.
    key = jax.random.key(7)
    p = {
        **p,
        "logits": {"kernel": jax.random.normal(key, (1, 1, 16, 1)), "bias": p["logits"]["bias"]},
    }
    s = jax.tree.map(
        lambda v: v + 0.3 * jax.random.uniform(jax.random.key(8), v.shape),
        variables["batch_stats"]["saliency_net"],
    )
    ours, aux = model.apply({"params": {"saliency_net": p}, "batch_stats": {"saliency_net": s}}, x)

    theirs = reference.SaliencySampler((24, 24), side=32).eval()
    for k in range(3):
        kernel = np.asarray(p[f"conv{k}"]["kernel"]).transpose(3, 2, 0, 1).copy()
        theirs.convs[k].weight.data = torch.from_numpy(kernel)
        _copy_bn(torch, theirs.bns[k], p[f"bn{k}"], s[f"bn{k}"])
    _copy_conv(torch, theirs.logits, p["logits"])
    images = torch.from_numpy(np.asarray(x).transpose(0, 3, 1, 2).copy())
    with torch.no_grad():
        logits = theirs.saliency_logits(reference.low_resolution(images, 32))
        out = theirs(images)
    saliency = torch.softmax(logits.flatten(1), -1).view(2, 31, 31).numpy()
    assert np.ptp(saliency) > 1e-4  # not flat: the comparison sees the network
    np.testing.assert_allclose(saliency, aux["saliency"], rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(out.numpy().transpose(0, 2, 3, 1), ours, atol=1e-4)


def test_reference_runs_every_case_and_reports_memory():
    pytest.importorskip("torch")
    reference = _load("reference_torch")
    for case in reference.CASES:
        args = reference.parse_args(
            [case, "--batch", "2", "--size", "64", "--out", "16", "--reps", "1", "--warmup", "0"]
        )
        result = reference.main(args)
        assert result["case"] == case and result["memory_format"] == "channels_last"
        for key in ("infer_img_per_s", "train_img_per_s"):
            assert np.isfinite(result[key]) and result[key] > 0, (case, key)
        assert result["train_peak_mib"] >= result["infer_peak_mib"] >= 0


def test_fastest_setting_is_chosen_per_measure():
    per_setting = {
        "channels_last": [
            {
                "infer_img_per_s": 10.0,
                "train_img_per_s": 3.0,
                "infer_peak_mib": 5,
                "train_peak_mib": 9,
            },
            {
                "infer_img_per_s": 12.0,
                "train_img_per_s": 5.0,
                "infer_peak_mib": 7,
                "train_peak_mib": 9,
            },
        ],
        "contiguous": [
            {
                "infer_img_per_s": 8.0,
                "train_img_per_s": 6.0,
                "infer_peak_mib": 4,
                "train_peak_mib": 8,
            },
            {"error": "RuntimeError: compile failed"},
        ],
        "channels_last+compile": [{"error": "RuntimeError: compile failed"}],
    }
    infer = bench_frontends.fastest_reference(per_setting, "infer")
    train = bench_frontends.fastest_reference(per_setting, "train")
    assert infer == {"setting": "channels_last", "img_per_s": 11.0, "peak_mib": 6.0}
    assert train == {"setting": "contiguous", "img_per_s": 6.0, "peak_mib": 8.0}
    assert bench_frontends.fastest_reference({"contiguous": [{"error": "x"}]}, "infer") is None


def test_reference_settings_are_checked():
    assert bench_frontends.parse_settings("channels_last, contiguous+compile") == [
        "channels_last",
        "contiguous+compile",
    ]
    with pytest.raises(SystemExit, match="--reference-settings: got 'nchw'"):
        bench_frontends.parse_settings("nchw")
    with pytest.raises(SystemExit, match="at least one"):
        bench_frontends.parse_settings(" , ")
    command = bench_frontends.reference_command(
        "py", "ref.py", ["learned", "--batch", "8"], "contiguous+compile", 2, 5, 1
    )
    assert command[:4] == ["py", "ref.py", "learned", "--batch"]
    assert command[-1] == "--compile" and "contiguous" in command
    assert bench_frontends.resolve_reference("none", "python") is None
    assert bench_frontends.resolve_reference("x.py", "python") == "x.py"


def test_ratio_rounds_pair_each_round():
    ratios = bench_frontends._paired_ratios(
        8, [0.5, 1.0], [{"infer_img_per_s": 8.0}, {"error": "boom"}], "infer"
    )
    assert ratios[0] == pytest.approx(2.0) and np.isnan(ratios[1])
