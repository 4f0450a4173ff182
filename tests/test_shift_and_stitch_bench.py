"""bench/shift_and_stitch_camvid.py: its cost probe, arguments and table (tiny, CPU).

The benchmark itself needs CamVid and trained models; these checks run its
pieces on a small FCN (random backbone, fc_units 8, a 64x96 image) in
seconds: the cost probe (which times `fcn_keras.shift_and_stitch.logits_function`,
the forward `evaluate` scores, tested in tests/test_shift_and_stitch.py)
returns every figure, a mixed-precision model's policy is read from its
layers, and the Markdown table has a cell per column.
"""

import argparse
import os

import numpy as np
import pytest


BENCH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench")
NUM_CLASSES = 5


@pytest.fixture
def bench(monkeypatch):
    monkeypatch.syspath_prepend(BENCH)
    import shift_and_stitch_camvid

    return shift_and_stitch_camvid


def test_arguments(bench, tmp_path):
    assert bench.parse_factors("1, 2,4,2") == (1, 2, 4)
    for text in ("1,3", "0", "two", ","):
        with pytest.raises(argparse.ArgumentTypeError):
            bench.parse_factors(text)
    model = tmp_path / "final.keras"
    model.write_bytes(b"")
    assert bench.named_model(f"fcn8s={model}") == ("fcn8s", str(model))
    with pytest.raises(argparse.ArgumentTypeError, match="expected NAME=PATH"):
        bench.named_model(str(model))
    with pytest.raises(argparse.ArgumentTypeError, match="not an existing .keras file"):
        bench.named_model(f"fcn8s={tmp_path / 'missing.keras'}")


@pytest.mark.slow
def test_cost_probe_and_policy(bench, small_fcn, tmp_path):
    import keras

    model = small_fcn("fcn32s", num_classes=NUM_CLASSES, fc_units=8)
    path = str(tmp_path / "fcn32s.keras")
    model.save(path)
    image = np.random.default_rng(1).integers(0, 256, (64, 96, 3), dtype=np.uint8)
    cost = bench._cost_child(path, 2, 1.0, image, 2)  # in this process: the probe's figures
    assert cost["runs"] == 2 and cost["seconds"] > 0 and cost["coarse_seconds"] > 0
    assert cost["first_call_seconds"] > 0 and cost["peak_delta_mb"] >= 0
    assert cost["peak_rss_mb"] > 0 and "VmHWM" in cost["peak_method"]
    keras.mixed_precision.set_dtype_policy("mixed_bfloat16")
    try:
        mixed = small_fcn("fcn32s", num_classes=NUM_CLASSES, fc_units=8)
    finally:
        keras.mixed_precision.set_dtype_policy("float32")
    assert bench.dtype_policy_of(mixed) == "mixed_bfloat16"
    assert bench.dtype_policy_of(model) == "float32"


def test_markdown_has_a_cell_per_column(bench):
    names = ["Sky", "Road"]
    cost = {"seconds": 0.5, "coarse_seconds": 0.2, "peak_delta_mb": 120.0}
    rows = [{"model": "fcn32s", "factor": f, "stride": 32 // f, "mean_iu": 0.5, "pixel_accuracy": 0.8,
             "mean_accuracy": 0.6, "frequency_weighted_iu": 0.7,
             "trimap_mean_iu": {str(w): 0.3 for w in bench.TRIMAP_WIDTHS},
             "per_class_iou": {"Sky": 0.9, "Road": None}, "cost": cost, "ratio_to_plain": f,
             "coarse_ratio_to_plain": f * f} for f in (1, 2)]  # fmt: skip
    result = {"host": {"cpu": "test CPU", "cpu_count": 2}, "split": "test", "images": 2, "runs": 1,
              "tensorflow": "x", "keras": "y", "trimap_widths": list(bench.TRIMAP_WIDTHS),
              "rows": rows,
              "models": {"fcn32s": {"variant": "fcn32s", "num_classes": 2, "dtype_policy": "float32",
                                    "input_scale": 1.0, "plain_seconds": 0.5,
                                    "plain_coarse_seconds": 0.2}},
              "versus_own_upsampling": {"fcn32s": {"2": {
                  "mean_iu_points": 0.0, "trimap_2px_points": None, "time_ratio": 2.0,
                  "coarse_time_ratio": 4.0}}}}  # fmt: skip
    text = bench.to_markdown(result)
    tables = [line for line in text.splitlines() if line.startswith("|")]
    header = tables[0].count("|")
    assert all(line.count("|") == header for line in tables[:4])
    assert "| fcn32s | 2 (16 px) | 50.00 |" in text and "x4.00" in text
    assert all(line.count("|") == len(names) + 3 for line in tables[4:])
    assert "| fcn32s | 1 | 90.00 | n/a |" in text and "trimap 2 px n/a points" in text
