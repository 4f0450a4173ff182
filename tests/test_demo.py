"""`fcn-keras demo` end to end at a tiny scale: train, evaluate, export, verify, report.

The real demo's figures (mean IU vs the majority baseline, wall time) are
measured with the default settings and reported in the README; this test
runs the same code path in seconds (2 steps on 32x32 images, fc_units=16)
and checks that every output is written and holds numbers.
"""

import json
import math

import pytest

from fcn_keras.cli import main


@pytest.mark.slow
def test_demo_runs_end_to_end_and_writes_its_report(tmp_path, capsys):
    out = tmp_path / "demo"
    code = main(["demo", "--out", str(out), "--epochs", "1", "--steps-per-epoch", "2",
                 "--image-size", "32", "--fc-units", "16", "--num-train", "16",
                 "--num-val", "8", "--verbose", "0"])  # fmt: skip
    printed = capsys.readouterr().out
    assert code == 0
    assert "mean IU" in printed and "trivial baseline" in printed
    report = json.loads((out / "report.json").read_text())
    for key in ("mean_iu", "baseline_mean_iu", "pixel_accuracy", "frequency_weighted_iu"):
        assert isinstance(report[key], float) and 0.0 <= report[key] <= 1.0, key
    assert report["baseline"]["class"] == "background"
    assert report["timings"]["total_s"] > 0 and not math.isnan(report["timings"]["train_s"])
    assert report["export"]["verification_passed"] is True
    # export_all's one naming scheme, the same as `fcn-keras export`.
    assert set(report["export"]["artifacts"]) == {"fcn8s_savedmodel", "fcn8s_float32.tflite", "fcn8s.onnx"}
    assert (out / "exports" / "fcn8s_float32.tflite").is_file()
    assert (out / "exports" / "fcn8s.onnx").is_file()
    verification = json.loads((out / "verification.json").read_text())
    assert verification["passed"] and verification["images"]["count"] == 6 + 2  # + two odd crops
    for name in ("report.md", "evaluation.md", "evaluation.json", "verification.md",
                 "training_curves.png", "best.keras", "history.csv"):  # fmt: skip
        assert (out / name).is_file(), name
    assert (out / "training_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(list((out / "predictions").glob("val_*.png"))) == 6
    markdown = (out / "report.md").read_text()
    assert f"{report['mean_iu']:.3f}" in markdown and "baseline" in markdown
