"""count_params and flops: XLA's cost analysis against counts derived from the layer shapes."""

import math

import jax
import jax.numpy as jnp
import pytest

from resize_jax.frontends import FixedResizer, LearnedResizer
from resize_jax.models import count_params, flops, get_model
from resize_jax.models.accounting import cost_analysis_flops, peak_bytes
from resize_jax.tools.summary import build_table, format_table, match_size


def _variables(model, shape):
    x = jax.ShapeDtypeStruct(shape, jnp.float32)
    return jax.eval_shape(model.init, jax.random.key(0), x)


def _xla_flops(model, shape):
    return flops(model.apply, _variables(model, shape), shape)


def _resize_taps(in_hw, out_hw, channels, taps=2):
    """ops.resize at an integer factor: rows then columns, `taps` weighted slices per output
    (bilinear: 2); one multiply-add per tap, of which XLA counts between 1 and 2 FLOPs."""
    (_, w), (oh, ow) = in_hw, out_hw
    return taps * (oh * w * channels + oh * ow * channels)


def _learned_resizer_conv_macs(in_hw, out_hw, c=3, n=16, r=1):
    conv = lambda hw, k, cin, cout: hw[0] * hw[1] * k * k * cin * cout
    return (
        conv(in_hw, 7, c, n)  # conv_in, at the input resolution
        + conv(in_hw, 1, n, n)  # conv_mix
        + r * 2 * conv(out_hw, 3, n, n)  # residual blocks
        + conv(out_hw, 3, n, n)  # conv_proj
        + conv(out_hw, 7, n, c)  # conv_out
    )


def _resnet50_macs(size=224, num_classes=1000):
    """torchvision's ResNet-50 (v1.5) multiply-adds from its layer shapes (4.09 G at 224)."""
    h = math.ceil(size / 2)
    macs = h * h * 7 * 7 * 3 * 64
    h = math.ceil(h / 2)  # max pool
    cin = 64
    for i, (blocks, width) in enumerate(zip((3, 4, 6, 3), (64, 128, 256, 512), strict=True)):
        for j in range(blocks):
            out = math.ceil(h / 2) if i > 0 and j == 0 else h
            macs += h * h * cin * width  # 1×1 reduce, before the stride
            macs += out * out * 9 * width * width  # strided 3×3 (v1.5)
            macs += out * out * width * 4 * width  # 1×1 expand
            if j == 0:
                macs += out * out * cin * 4 * width  # projection shortcut
            cin, h = 4 * width, out
    return macs + cin * num_classes


def test_learned_resizer_448_to_224_flops():
    in_hw, out_hw = (448, 448), (224, 224)
    conv_macs = _learned_resizer_conv_macs(in_hw, out_hw)
    assert 1.9e9 < 2 * conv_macs < 2.1e9  # The paper's "about 2.0 GFLOPs" for its layers.
    resize_taps = _resize_taps(in_hw, out_hw, 3) + _resize_taps(in_hw, out_hw, 16)

    total = _xla_flops(LearnedResizer(out_hw), (1, *in_hw, 3))
    assert total == pytest.approx(2 * conv_macs, rel=0.1)
    # Its two resizes (image and 16 features) run as two weighted strided slices per output
    # and axis (resize_jax/ops/taps.py), not dense matrix products: a few MFLOPs.
    resizes = _xla_flops(FixedResizer(out_hw), (1, *in_hw, 3)) + _xla_flops(
        FixedResizer(out_hw), (1, *in_hw, 16)
    )
    assert resize_taps <= resizes <= 2 * resize_taps
    assert resizes < 0.01 * total
    assert total - resizes == pytest.approx(2 * conv_macs, rel=0.1)
    assert total - resizes == pytest.approx(2.0e9, rel=0.1)


def test_resnet50_224_flops():
    macs = _resnet50_macs()
    assert macs == pytest.approx(4.1e9, rel=0.01)
    measured = _xla_flops(get_model("resnet50", num_classes=1000), (1, 224, 224, 3))
    assert measured / 2 == pytest.approx(macs, rel=0.1)


def test_flops_scale_with_the_batch():
    model = get_model("small_cnn", num_classes=10)
    one, four = _xla_flops(model, (1, 32, 32, 3)), _xla_flops(model, (4, 32, 32, 3))
    assert four == pytest.approx(4 * one, rel=0.01)
    # XLA does not count products with the zero padding: a 3×3 "same" conv over n pixels
    # makes 3n - 2 valid products per dimension, not 3n.
    valid = lambda n, cin, cout: (3 * n - 2) ** 2 * cin * cout
    conv_macs = valid(32, 3, 32) + valid(16, 32, 64) + valid(8, 64, 64) + valid(4, 64, 128)
    assert one / 2 == pytest.approx(conv_macs + 128 * 10, rel=0.05)


def test_count_params():
    resizer = LearnedResizer((8, 8))
    counts = count_params(_variables(resizer, (1, 16, 16, 3)))
    assert counts == {"trainable": 12_083, "batch_stats": 2 * 4 * 16}  # mean, var of 4 BNs
    assert count_params({}) == {"trainable": 0, "batch_stats": 0}
    counts = count_params({"params": {"w": jnp.ones((2, 3))}, "intermediates": {"a": jnp.ones(4)}})
    assert counts == {"trainable": 6, "batch_stats": 0, "intermediates": 4}


def test_count_params_rejects_bad_input():
    variables = _variables(LearnedResizer((8, 8)), (1, 16, 16, 3))
    with pytest.raises(ValueError, match=r"pass `variables`, not `variables\['params'\]`"):
        count_params(variables["params"])
    with pytest.raises(ValueError, match=r"`variables` must be the dict"):
        count_params([1, 2])


def test_cost_analysis_flops_accepts_dict_or_list():
    assert cost_analysis_flops({"flops": 3.0, "bytes accessed": 9.0}) == 3.0
    assert cost_analysis_flops([{"flops": 3.0}, {"flops": 2.0}]) == 5.0
    for bad in (None, [], [1.0]):
        with pytest.raises(ValueError, match=r"`analysis`"):
            cost_analysis_flops(bad)


@pytest.mark.parametrize("shape", [(), (1, 0, 8, 3), (1, 8.0, 8, 3), "1x8x8x3"])
def test_flops_rejects_bad_input_shape(shape):
    model = get_model("small_cnn", num_classes=2)
    with pytest.raises(ValueError, match=r"`input_shape`"):
        flops(model.apply, _variables(model, (1, 8, 8, 3)), shape)


def test_match_size_finds_the_closest_size():
    assert match_size(lambda s: float(s * s), 1000.0, start=10) == (32, 1024.0)
    assert match_size(lambda s: float(s * s), 1.0, start=10, minimum=4) == (4, 16.0)


def test_summary_table_for_small_cnn():
    rows = build_table(["small_cnn"], input_size=64, output_size=32, num_classes=10)
    (row,) = rows
    assert row["model"] == "small_cnn" and row["params"] == 131_754
    assert row["learned_gflops"] > row["fixed_gflops"] >= row["backbone_gflops"] > 0
    assert row["matched_size"] > 32
    assert row["matched_gflops"] == pytest.approx(row["learned_gflops"], rel=0.1)
    table = format_table(rows, 64, 32)
    assert "| small_cnn | 131,754 |" in table and "learned 64→32" in table


def test_summary_compares_the_classifiers_only():
    from resize_jax.tools.summary import classifier_names

    # ENet predicts dense maps (and needs sides divisible by 8): not in the paper's table.
    names = classifier_names()
    assert "enet" not in names
    assert {"resnet50", "small_cnn"} <= set(names)
    assert "vit_b16" not in names  # Inputs in multiples of 16: no matched size.


def test_peak_bytes_counts_arguments_outputs_and_donation():
    x = jax.ShapeDtypeStruct((1000,), jnp.float32)
    kept = peak_bytes(jax.jit(lambda a: a * 2).lower(x).compile())
    donated = peak_bytes(jax.jit(lambda a: a * 2, donate_argnums=0).lower(x).compile())
    assert kept >= 8000  # 4000 bytes in, 4000 out.
    assert donated == kept - 4000  # The output reuses the donated input.

    class NoAnalysis:
        def memory_analysis(self):
            return None

    assert peak_bytes(NoAnalysis()) is None
