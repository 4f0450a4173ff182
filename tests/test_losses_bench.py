"""bench/losses_camvid.py: one row per loss, identical but for the loss, resumable (tiny, CPU).

The script's `--quick` command runs with `fcn_keras.results.run_stages`
pointed at the small synthetic set (a tiny FCN, random backbone) instead of
CamVid, so that its wiring is checked in seconds: each requested loss trains
one at-once FCN-8s row whose `train` arguments differ from the other rows'
only in the loss and class weights, the tables and the figures-only copy
name every row, a rerun trains nothing, and a rerun with other settings fails
before any new row trains. Two tiny rows: about 30 s on a 2-core CPU.
"""

import json
import os

import pytest

BENCH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench")

SOURCE_KWARGS = {"image_size": 32, "num_examples": {"train": 4, "val": 2, "test": 2}}
TINY = dict(fc_units=8, backbone_weights=None, mixed_precision="float32", verbose=0,
            tensorboard=False, batch_size=2)  # fmt: skip


@pytest.fixture
def bench(monkeypatch, tmp_path):
    """The script's module, its `run_stages` on the synthetic set, and the train calls made."""
    monkeypatch.syspath_prepend(BENCH)
    import losses_camvid

    import fcn_keras.results
    import fcn_keras.training

    calls = []
    original_train, original_run = fcn_keras.training.train, fcn_keras.results.run_stages

    def train(variant, *args, **kwargs):
        calls.append(kwargs.get("loss"))
        return original_train(variant, *args, **kwargs)

    def run_stages(out_dir, stages, *, train_kwargs, **kwargs):
        kwargs.update(source="synthetic", source_kwargs=SOURCE_KWARGS, log=lambda m: None)
        return original_run(out_dir, stages, train_kwargs={**train_kwargs, **TINY}, **kwargs)

    monkeypatch.setattr(fcn_keras.training, "train", train)
    monkeypatch.setattr(fcn_keras.results, "run_stages", run_stages)
    weights = tmp_path / "vgg16.weights.h5"
    weights.write_bytes(b"")  # only checked to exist: the tiny rows use no backbone
    paths = ["--data-dir", str(tmp_path), "--backbone-weights", str(weights)]
    return losses_camvid, calls, paths


@pytest.mark.slow
def test_quick_run_trains_one_row_per_loss_and_reruns_train_nothing_more(tmp_path, bench, capsys):
    script, calls, paths = bench
    out, copy = tmp_path / "out", tmp_path / "docs" / "losses.json"
    argv = ["--quick", "--out", str(out), "--losses", "cross_entropy_median_frequency,lovasz",
            "--json", str(copy), "--markdown", str(tmp_path / "losses.md"), *paths]
    assert script.main(argv) == 0
    assert calls == ["cross_entropy", "lovasz"]

    results = json.loads((out / "results.json").read_text())
    assert list(results["rows"]) == ["cross_entropy_median_frequency", "lovasz"]
    weighted, lovasz = results["rows"].values()
    assert weighted["class_weights"] == "median_frequency" and lovasz["loss"] == "lovasz"
    assert len(weighted["class_weights_used"]) == 6 and lovasz["class_weights_used"] is None
    for row in (weighted, lovasz):
        assert row["variant"] == "fcn8s_atonce" and row["epochs"] == 1 and row["scale"] == 0.5
        assert {"val", "test"} <= set(row) and row["test"]["images"] <= 2

    # Same start, seed, schedule and budget: the train arguments differ only in the loss.
    arguments = [json.loads((out / name / "fcn8s_atonce" / "train_config.json").read_text())
                 ["arguments"] for name in results["rows"]]  # fmt: skip
    differing = {key for key in arguments[0] if arguments[0][key] != arguments[1][key]}
    assert differing == {"loss", "class_weights", "out_dir"}
    assert arguments[0]["seed"] == 0 and arguments[0]["at_once"] is True

    table = (tmp_path / "losses.md").read_text()
    assert "`--loss cross_entropy --class-weights median_frequency`" in table
    assert "`--loss lovasz`" in table and "Chosen on val" in table and "| background |" in table
    figures = json.loads(copy.read_text())
    assert list(figures["rows"]) == ["cross_entropy_median_frequency", "lovasz"]
    assert str(tmp_path) not in json.dumps(figures)  # no paths in the published copy

    capsys.readouterr()
    assert script.main(argv) == 0  # the rerun reuses both rows and their evaluations
    assert calls == ["cross_entropy", "lovasz"]
    assert json.loads((out / "results.json").read_text())["rows"] == results["rows"]

    # Other settings into the same --out: lovasz, finished, is visited before focal (new)
    # although requested after it, so the request fails before focal trains.
    with pytest.raises(ValueError, match="seed: recorded 0, requested 1"):
        script.main(["--quick", "--seed", "1", "--out", str(out), "--losses", "focal,lovasz",
                     *paths])  # fmt: skip
    assert calls == ["cross_entropy", "lovasz"] and not (out / "focal").exists()


def test_arguments_are_checked_before_any_work(bench, capsys):
    script, calls, paths = bench
    for argv, expected in ((["--losses", "ce"], "--losses: unknown"),
                           (["--losses", "lovasz"], "inside the repository")):  # fmt: skip
        out = "/tmp/fcn_keras_runs/losses" if "ce" in argv else os.path.join(BENCH, "runs")
        with pytest.raises(SystemExit):
            script.main(["--out", out, *argv, *paths])
        assert expected in capsys.readouterr().err
    assert script.parse_losses("all") == tuple(script.LOSS_ROWS)
    assert script.command_options("dice") == "--loss dice"
    assert calls == []
