"""fcn_keras.results.run_stages: the resumable results recipe on the synthetic set (tiny, CPU).

A rerun skips finished rows (their final model is not rewritten, `train` is
not called for them) and resumes an interrupted row from its BackupAndRestore
backup (the epoch counter continues). A finished or interrupted row whose
recorded settings differ from the request is an error naming each difference;
evaluations are recomputed when their settings (source and its options
among them) differ, and read back for other tools only when they cover a
whole split at the asked scale. Evaluation at reduced input scale is scored
on full-size labels. The benchmarks' shared checks (output outside the
repository, int8 calibration settings of reused artifacts) are here too.
"""

import csv
import dataclasses
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from fcn_keras import results as results_module
from fcn_keras.results import (figures_only, full_split_evaluation, parse_stages,
                               results_to_markdown, run_stages)  # fmt: skip

BENCH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench")

SOURCE_KWARGS = {"image_size": 32, "num_examples": {"train": 4, "val": 2, "test": 2}}
TRAIN_KWARGS = dict(batch_size=2, steps_per_epoch=1, fc_units=8, dropout=0.0, seed=0,
                    verbose=0, tensorboard=False, mixed_precision="float32")  # fmt: skip


def _run(out, stages, schedules, **kwargs):
    train_kwargs = dict(TRAIN_KWARGS, **kwargs.pop("train_kwargs", {}))
    return run_stages(str(out), stages, schedules=schedules, source="synthetic",
                      source_kwargs=SOURCE_KWARGS, train_kwargs=train_kwargs, log=lambda m: None,
                      **kwargs)  # fmt: skip


def _epochs(stage_dir):
    with open(stage_dir / "history.csv") as f:
        return [int(row["epoch"]) for row in csv.DictReader(f)]


@pytest.fixture
def counted_train(monkeypatch):
    """Wrap fcn_keras.training.train, recording the variant of every call."""
    import fcn_keras.training

    calls = []
    original = fcn_keras.training.train

    def train(variant, *args, **kwargs):
        calls.append(variant + ("_atonce" if kwargs.get("at_once") else ""))
        return original(variant, *args, **kwargs)

    monkeypatch.setattr(fcn_keras.training, "train", train)
    return calls


@pytest.mark.slow
def test_rerun_skips_finished_rows(tmp_path, counted_train):
    schedules = {"fcn32s": (1, 1e-4), "fcn16s": (1, 1e-5)}
    _run(tmp_path, "fcn32s", schedules)
    final32 = tmp_path / "fcn32s" / "final.keras"
    stamp = os.stat(final32).st_mtime_ns
    assert counted_train == ["fcn32s"] and _epochs(tmp_path / "fcn32s") == [0]
    assert not (tmp_path / "fcn32s" / "final.partial.keras").exists()

    # As after a kill between the rows: the same command with both rows, and --test.
    results = _run(tmp_path, "fcn32s,fcn16s", schedules, test=True)
    assert counted_train == ["fcn32s", "fcn16s"]  # fcn32s was not trained again
    assert os.stat(final32).st_mtime_ns == stamp and _epochs(tmp_path / "fcn32s") == [0]
    config16 = json.load(open(tmp_path / "fcn16s" / "train_config.json"))
    assert config16["arguments"]["init_from"] == str(final32)
    assert config16["derived"]["variant"] == "fcn16s"

    on_disk = json.load(open(tmp_path / "results.json"))
    assert list(on_disk["rows"]) == ["fcn32s", "fcn16s"]
    for stage, row in on_disk["rows"].items():
        assert row["precision"] == "float32" and row["scale"] == 1.0 and row["epochs"] == 1
        assert row["train_seconds"] > 0 and row["epochs_timed"] == 1
        for split in ("val", "test"):
            report = row[split]
            assert report["images"] == 2 and report["pixels"] == 2 * 32 * 32
            assert set(report["trimap_mean_iu"]) == {"2", "4", "8", "16"}
            assert set(report["per_class_iou"]) >= {"background", "disc"}
            for key in ("pixel_accuracy", "mean_accuracy", "mean_iu", "frequency_weighted_iu"):
                assert 0.0 <= report[key] <= 1.0
    assert on_disk["host"]["cpu"] and on_disk == json.loads(json.dumps(results))
    published = figures_only(on_disk)
    assert all("files" not in row and "init_from" not in row for row in published["rows"].values())
    markdown = results_to_markdown(on_disk, "test")
    assert "| fcn16s |" in markdown and "Dilation8 (Yu & Koltun 2016): 65.3" in markdown

    # A third run evaluates nothing anew: the cached reports are reused as they are.
    cache = tmp_path / "fcn16s" / "evaluation_test.json"
    stamp = os.stat(cache).st_mtime_ns
    _run(tmp_path, "fcn32s,fcn16s", schedules, test=True)
    assert counted_train == ["fcn32s", "fcn16s"] and os.stat(cache).st_mtime_ns == stamp


class _Interrupt(Exception):
    pass


@pytest.fixture
def train_arguments(monkeypatch):
    """Replace `fcn_keras.train` by a fake that records its keyword arguments, then interrupts."""
    import fcn_keras.training

    seen = {}

    def train(variant, *args, **kwargs):
        seen.update(kwargs)
        raise _Interrupt("arguments recorded")

    monkeypatch.setattr(fcn_keras.training, "train", train)
    return seen


class _InterruptAfterEpoch(keras.callbacks.Callback):
    """Raise at the end of `epoch` (after BackupAndRestore and CSVLogger have run)."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            raise _Interrupt(f"interrupted after epoch {epoch}")


@pytest.mark.slow
def test_interrupted_row_resumes_from_its_backup(tmp_path, counted_train):
    schedules = {"fcn8s_atonce": (3, 1e-4)}
    stage_dir = tmp_path / "fcn8s_atonce"
    with pytest.raises(_Interrupt):
        _run(tmp_path, "fcn8s_atonce", schedules,
             train_kwargs={"callbacks": [_InterruptAfterEpoch(0)]})  # fmt: skip
    assert (stage_dir / "backup").is_dir() and not (stage_dir / "final.keras").exists()
    assert _epochs(stage_dir) == [0]

    results = _run(tmp_path, "fcn8s_atonce", schedules)
    assert counted_train == ["fcn8s_atonce", "fcn8s_atonce"]
    assert _epochs(stage_dir) == [0, 1, 2]  # resumed at epoch 1: epoch 0 not repeated
    assert not (stage_dir / "backup").exists()
    config = json.load(open(stage_dir / "train_config.json"))
    assert config["derived"]["resumed"] is True and config["derived"]["variant"] == "fcn8s_atonce"
    row = results["rows"]["fcn8s_atonce"]
    assert row["variant"] == "fcn8s_atonce" and row["epochs_timed"] == 3
    final = keras.saving.load_model(stage_dir / "final.keras", compile=False)
    assert final.dataset_info.name == "synthetic"


def test_stage_errors_name_what_is_missing(tmp_path):
    assert parse_stages(" fcn32s,FCN16s ,fcn32s") == ("fcn32s", "fcn16s")
    with pytest.raises(ValueError, match="unknown or empty \\['fcn4s'\\]"):
        parse_stages("fcn32s,fcn4s")
    with pytest.raises(ValueError, match="starts from fcn16s's final model"):
        _run(tmp_path, "fcn8s", {"fcn8s": (1, 1e-5)})
    with pytest.raises(ValueError, match="schedules has no \\(epochs, learning_rate\\) for"):
        _run(tmp_path, "fcn32s", {})
    with pytest.raises(ValueError, match="scale must be in \\(0, 1\\]; received 2"):
        _run(tmp_path, "fcn32s", {"fcn32s": (1, 1e-4)}, scale=2)


def test_reduced_scale_evaluation_scores_full_size_labels(small_fcn):
    from fcn_keras.evaluation import evaluate, scale_images
    from fcn_keras.metrics import confusion_matrix, scores_from_confusion

    model = small_fcn("fcn32s", num_classes=3)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (2, 40, 48, 3)).astype("uint8")
    masks = rng.integers(0, 3, (2, 40, 48)).astype("int32")
    report = evaluate(model, [(images, masks)], input_scale=0.5)
    assert report["pixels"] == 2 * 40 * 48
    # Reference, as `scale_images` documents it: half-size input resized with antialiasing
    # and rounded back to uint8 (what a deployed model is given), logits resized bilinearly
    # to 40x48, then the argmax.
    resized = tf.image.resize(tf.cast(images, tf.float32), (20, 24), antialias=True).numpy()
    small = np.clip(np.round(resized), 0, 255).astype("uint8")
    assert np.any(small != resized)  # the rounding changes pixels: the reference depends on it
    np.testing.assert_array_equal(scale_images(images, 0.5).numpy(), small)
    logits = tf.image.resize(model(small), (40, 48), method="bilinear")
    expected = scores_from_confusion(confusion_matrix(masks, np.argmax(logits, -1), 3))
    assert report["mean_iu"] == pytest.approx(expected["mean_iu"], abs=1e-12)
    assert results_module.STAGES["fcn8s_atonce"] == ("fcn8s", True, None)


@pytest.mark.slow
def test_other_settings_into_the_same_out_are_an_error(tmp_path, counted_train):
    quick = {"fcn32s": (1, 1e-4)}
    _run(tmp_path, "fcn32s", quick, max_eval_batches=1, trimap_widths=(3, 5))
    stage_dir = tmp_path / "fcn32s"
    settings = json.load(open(stage_dir / "settings.json"))
    assert settings["epochs"] == 1 and settings["fc_units"] == 8
    assert settings["mixed_precision"] == "float32" and settings["steps_per_epoch"] == 1
    final_stamp = os.stat(stage_dir / "final.keras").st_mtime_ns

    # A full run into the same directory: refused, naming the row and each difference.
    with pytest.raises(ValueError) as error:
        _run(tmp_path, "fcn32s", {"fcn32s": (2, 1e-4)}, train_kwargs={"fc_units": 16})
    message = str(error.value)
    assert "row 'fcn32s'" in message and "is finished" in message and "--out" in message
    assert "epochs: recorded 1, requested 2" in message
    assert "fc_units: recorded 8, requested 16" in message
    assert "learning_rate" not in message  # equal settings are not listed
    with pytest.raises(ValueError, match="mixed_precision: recorded 'float32', requested 'auto'"):
        _run(tmp_path, "fcn32s", quick, train_kwargs={"mixed_precision": "auto"})
    with pytest.raises(ValueError, match=r"scale: recorded 1\.0, requested 0\.5"):
        _run(tmp_path, "fcn32s", quick, scale=0.5)
    assert counted_train == ["fcn32s"]  # nothing trained over the row
    assert os.stat(stage_dir / "final.keras").st_mtime_ns == final_stamp

    # The same settings with other evaluation settings: the row is reused, the evaluation is not.
    cache = stage_dir / "evaluation_val.json"
    report = json.load(open(cache))
    assert report["images"] == 1 and set(report["trimap_mean_iu"]) == {"3", "5"}
    assert report["evaluation_settings"] == {
        "source": "synthetic", "source_kwargs": SOURCE_KWARGS, "split": "val", "scale": 1.0,
        "batch_size": 1, "max_batches": 1, "trimap_widths": [3, 5]}  # fmt: skip
    partial, why = full_split_evaluation(stage_dir / "final.keras", "val", 1.0)
    assert partial is None and "'max_batches': 1" in why  # 1 batch: not the whole split
    results = _run(tmp_path, "fcn32s", quick, trimap_widths=(3, 5))
    assert counted_train == ["fcn32s"]
    report = json.load(open(cache))
    assert report["images"] == 2 and report["evaluation_settings"]["max_batches"] is None
    whole, why = full_split_evaluation(stage_dir / "final.keras", "val", 1.0)
    assert why is None and whole["images"] == 2 and whole["mean_iu"] == report["mean_iu"]
    other_scale, why = full_split_evaluation(stage_dir / "final.keras", "val", 0.5)
    assert other_scale is None and "'scale': 1.0" in why and "'scale': 0.5" in why
    missing, why = full_split_evaluation(stage_dir / "final.keras", "test", 1.0)
    assert missing is None and "evaluation_test.json" in why
    assert results["rows"]["fcn32s"]["val"]["images"] == 2
    # The table's trimap columns are the widths the reports hold.
    markdown = results_to_markdown(results, "val")
    assert "| Trimap 3 px | Trimap 5 px |" in markdown and "Trimap 2 px" not in markdown
    row_line = next(line for line in markdown.splitlines() if line.startswith("| fcn32s |"))
    assert "n/a" not in row_line and row_line.count("|") == 11  # row, 4 scores, 2 widths, 3
    trimap = results["rows"]["fcn32s"]["val"]["trimap_mean_iu"]
    assert f"{100 * trimap['5']:.1f}" in row_line.split("|")[7]


@pytest.mark.slow
def test_rows_written_before_settings_json_are_compared_on_what_they_hold(tmp_path):
    schedules = {"fcn32s": (1, 1e-4)}
    _run(tmp_path, "fcn32s", schedules)
    stage_dir = tmp_path / "fcn32s"
    # As an older run left it: stage.json and train_config.json, no settings.json, and an
    # evaluation cache without the settings it was computed with.
    os.remove(stage_dir / "settings.json")
    cache = stage_dir / "evaluation_val.json"
    report = json.load(open(cache))
    report.pop("evaluation_settings")
    json.dump(report, open(cache, "w"))
    os.utime(cache, ns=(os.stat(cache).st_atime_ns, os.stat(stage_dir / "final.keras").st_mtime_ns
                        + 10**9))  # newer than final.keras, as a cache would be

    with pytest.raises(ValueError) as error:
        _run(tmp_path, "fcn32s", {"fcn32s": (1, 1e-5)})
    message = str(error.value)
    assert "learning_rate: recorded 0.0001, requested 1e-05" in message
    assert "stage.json" in message and "train_config.json" in message
    with pytest.raises(ValueError, match=r"train_crop_size: recorded None, requested \[32, 32\]"):
        _run(tmp_path, "fcn32s", schedules, crop_size=32)

    results = _run(tmp_path, "fcn32s", schedules)  # the same settings: reused
    assert not (stage_dir / "settings.json").exists()  # a finished row is left as it was
    assert json.load(open(cache))["evaluation_settings"]["split"] == "val"  # evaluated anew
    assert results["rows"]["fcn32s"]["val"]["images"] == 2


@pytest.mark.slow
def test_interrupted_row_with_other_settings_is_an_error(tmp_path, counted_train):
    stage_dir = tmp_path / "fcn32s"
    with pytest.raises(_Interrupt):
        _run(tmp_path, "fcn32s", {"fcn32s": (3, 1e-4)},
             train_kwargs={"callbacks": [_InterruptAfterEpoch(0)]})  # fmt: skip
    assert (stage_dir / "backup").is_dir()
    assert json.load(open(stage_dir / "settings.json"))["epochs"] == 3
    with pytest.raises(ValueError) as error:
        _run(tmp_path, "fcn32s", {"fcn32s": (3, 1e-4)}, train_kwargs={"seed": 1, "batch_size": 1})
    message = str(error.value)
    assert "is interrupted (it has a backup)" in message
    assert "batch_size: recorded 2, requested 1" in message
    assert "seed: recorded 0, requested 1" in message
    assert counted_train == ["fcn32s"] and (stage_dir / "backup").is_dir()
    assert _epochs(stage_dir) == [0]  # the backup and history are left as they were


def test_scaled_rows_take_the_augmentation_default_scale_range(tmp_path, train_arguments):
    from fcn_keras.data.transforms import Augment

    seen = train_arguments
    with pytest.raises(_Interrupt):
        _run(tmp_path, "fcn32s", {"fcn32s": (1, 1e-4)}, scale=0.5, crop_size=(100, 64))
    lo, hi = Augment().scale_range
    assert seen["augment"]["scale_range"] == (lo * 0.5, hi * 0.5)
    assert seen["crop_size"] == (50, 32)
    settings = json.load(open(tmp_path / "fcn32s" / "settings.json"))
    assert settings["crop_size"] == [100, 64] and settings["train_crop_size"] == [50, 32]


@pytest.mark.slow
def test_recipe_settings_are_recorded_and_compared(tmp_path, counted_train):
    from fcn_keras.data.transforms import Augment

    schedules = {"fcn32s": (1, 1e-4)}
    _run(tmp_path, "fcn32s", schedules)
    stage_dir = tmp_path / "fcn32s"
    settings = json.load(open(stage_dir / "settings.json"))
    default_augment = json.loads(json.dumps(dataclasses.asdict(Augment())))
    assert settings["loss"] == {"name": "cross_entropy"} and settings["class_weights"] is None
    assert settings["augment"] == settings["train_augment"] == default_augment
    assert (settings["dropout"], settings["weight_decay"], settings["momentum"],
            settings["warmup_steps"]) == (0.0, None, 0.99, 0)  # fmt: skip

    # Each of these would train another model: refused, naming the setting.
    for kwargs, shown in [
        ({"train_kwargs": {"loss": "focal"}},
         "loss: recorded {'name': 'cross_entropy'}, requested {'name': 'focal'}"),
        ({"train_kwargs": {"loss": {"name": "cross_entropy+lovasz", "lovasz_weight": 0.5}}},
         "requested {'name': 'cross_entropy+lovasz', 'lovasz_weight': 0.5}"),
        ({"train_kwargs": {"class_weights": [1.0, 2.0]}},
         "class_weights: recorded None, requested [1.0, 2.0]"),
        ({"train_kwargs": {"dropout": 0.5}}, "dropout: recorded 0.0, requested 0.5"),
        ({"train_kwargs": {"weight_decay": 1e-4}}, "weight_decay: recorded None, requested 0.0001"),
        ({"train_kwargs": {"momentum": 0.9}}, "momentum: recorded 0.99, requested 0.9"),
        ({"train_kwargs": {"warmup_steps": 5}}, "warmup_steps: recorded 0, requested 5"),
        ({"augment": {"flip": False}}, "'flip': True"),
        ({"augment": False}, "augment: recorded {"),
    ]:  # fmt: skip
        with pytest.raises(ValueError) as error:
            _run(tmp_path, "fcn32s", schedules, **kwargs)
        assert shown in str(error.value), (kwargs, str(error.value))
    # Other spellings of the recorded settings: the row is reused, nothing is trained.
    _run(tmp_path, "fcn32s", schedules, augment=Augment(),
         train_kwargs={"loss": {"name": "cross_entropy", "focal_gamma": None}})  # fmt: skip
    _run(tmp_path, "fcn32s", schedules, augment=True, train_kwargs={"loss": "cross_entropy"})
    assert counted_train == ["fcn32s"]


@pytest.mark.slow
def test_rows_from_older_code_compare_the_recipe_train_config_holds(tmp_path):
    schedules = {"fcn32s": (1, 1e-4)}
    _run(tmp_path, "fcn32s", schedules, scale=0.5, crop_size=(64, 64))
    stage_dir = tmp_path / "fcn32s"
    os.remove(stage_dir / "settings.json")  # as an older run left it
    config = json.load(open(stage_dir / "train_config.json"))["arguments"]
    assert config["augment"]["scale_range"] == [0.25, 1.0] and config["loss"] == "cross_entropy"

    with pytest.raises(ValueError, match="loss: recorded {'name': 'cross_entropy'}, requested "
                                         "{'name': 'dice'}"):  # fmt: skip
        _run(tmp_path, "fcn32s", schedules, scale=0.5, crop_size=(64, 64),
             train_kwargs={"loss": "dice"})  # fmt: skip
    # The augmentation train_config.json holds is the scaled one: compared as such.
    with pytest.raises(ValueError, match=r"train_augment: recorded \{'scale_range': \[0\.25, 1\.0\]"):
        _run(tmp_path, "fcn32s", schedules, scale=0.5, crop_size=(64, 64),
             augment={"scale_range": (1.0, 1.0)})  # fmt: skip
    results = _run(tmp_path, "fcn32s", schedules, scale=0.5, crop_size=(64, 64))  # reused
    assert results["rows"]["fcn32s"]["scale"] == 0.5

    # A settings.json written before the loss and the augmentation were recorded: those come
    # from train_config.json, the rest from settings.json.
    older = {key: value for key, value in _requested(schedules, scale=0.5, crop=(64, 64)).items()
             if key not in ("loss", "augment", "train_augment")}  # fmt: skip
    json.dump(dict(older, fc_units=4), open(stage_dir / "settings.json", "w"))
    with pytest.raises(ValueError) as error:
        _run(tmp_path, "fcn32s", schedules, scale=0.5, crop_size=(64, 64),
             train_kwargs={"loss": "dice"})  # fmt: skip
    message = str(error.value)
    assert "fc_units: recorded 4, requested 8" in message and "requested {'name': 'dice'}" in message
    assert "settings.json" in message and "train_config.json" in message


def _requested(schedules, scale=1.0, crop=None):
    """The settings `_run` requests for fcn32s, as settings.json records them."""
    return results_module._requested_settings(*schedules["fcn32s"], scale, crop, None, TRAIN_KWARGS)


@pytest.mark.slow
def test_evaluation_cache_is_keyed_by_source_options(tmp_path, monkeypatch):
    schedules = {"fcn32s": (1, 1e-4)}
    _run(tmp_path, "fcn32s", schedules, max_eval_batches=1)
    cache = tmp_path / "fcn32s" / "evaluation_val.json"
    assert json.load(open(cache))["evaluation_settings"]["source_kwargs"]["image_size"] == 32
    stamp = os.stat(cache).st_mtime_ns
    other = dict(SOURCE_KWARGS, num_examples={"train": 4, "val": 1, "test": 2})
    results = run_stages(str(tmp_path), "fcn32s", schedules=schedules, source="synthetic",
                         source_kwargs=other, train_kwargs=TRAIN_KWARGS, log=lambda m: None,
                         max_eval_batches=1)  # fmt: skip
    assert os.stat(cache).st_mtime_ns != stamp  # evaluated anew on the other options
    assert results["rows"]["fcn32s"]["val"]["evaluation_settings"]["source_kwargs"] == \
        json.loads(json.dumps(other))
    # A data directory is recorded absolute: the same directory however it is written.
    monkeypatch.chdir(tmp_path)
    key = results_module._source_setting("camvid", {"data_dir": "data/camvid", "ignore_label": 11})
    assert key == {"source": "camvid", "source_kwargs": {
        "data_dir": str(tmp_path / "data" / "camvid"), "ignore_label": 11}}  # fmt: skip
    assert results_module._source_setting(
        "camvid", {"data_dir": "./data/../data/camvid", "ignore_label": 11}) == key
    assert results_module._source_setting("camvid", {"data_dir": "data/camvid"}) != key

    # Read back for other tools only from the same data directory (relative paths resolved).
    row = tmp_path / "row"
    row.mkdir()
    (row / "final.keras").write_bytes(b"")
    settings = dict(key, split="test", scale=0.5, batch_size=1, max_batches=None,
                    trimap_widths=[])  # fmt: skip
    json.dump({"mean_iu": 0.5, "images": 233, "evaluation_settings": settings},
              open(row / "evaluation_test.json", "w"))  # fmt: skip
    report, why = full_split_evaluation(row / "final.keras", "test", 0.5, {"data_dir": "data/camvid"})
    assert why is None and report["images"] == 233
    report, why = full_split_evaluation(row / "final.keras", "test", 0.5, {"data_dir": "other"})
    assert report is None and str(tmp_path / "other") in why and "data_dir" in why


def test_scaled_rows_without_augmentation_stay_without(tmp_path, train_arguments):
    seen = train_arguments
    with pytest.raises(_Interrupt):
        _run(tmp_path, "fcn32s", {"fcn32s": (1, 1e-4)}, scale=0.5, augment=False)
    assert seen["augment"] is False
    settings = json.load(open(tmp_path / "fcn32s" / "settings.json"))
    assert settings["augment"] is False and settings["train_augment"] is False


def test_benchmark_outputs_stay_outside_the_repository(monkeypatch):
    monkeypatch.syspath_prepend(BENCH)
    import fcn_keras.choices
    from _common import REPO, inside_repo_error, package_choices
    from camvid_formats import calibration_differences

    loaded = package_choices()  # the same choices, read without importing the package
    assert {name: getattr(loaded, name) for name in fcn_keras.choices.__all__} == \
        {name: getattr(fcn_keras.choices, name) for name in fcn_keras.choices.__all__}

    docs = os.path.join(REPO, "docs")
    assert inside_repo_error("/tmp/fcn_keras_runs/camvid") is None
    message = inside_repo_error(os.path.join(REPO, "runs"), what="weights")
    assert "--out" in message and os.path.join(REPO, "runs") in message and "weights" in message
    assert inside_repo_error(REPO) is not None
    assert inside_repo_error(REPO + "_other") is None  # a sibling folder is outside
    assert inside_repo_error(os.path.join(docs, "results", "f.png"), allowed=docs) is None
    assert "under docs/" in inside_repo_error(os.path.join(REPO, "f.png"), allowed=docs)

    requested = {"input_scale": 0.5, "seed": 0, "calibration_images_requested": 100}
    assert calibration_differences(dict(requested, calibration_images=100), requested) == []
    older = {"input_scale": 0.5, "seed": 0, "calibration_images": 100}  # no requested count
    assert calibration_differences(older, requested) == []
    assert calibration_differences(older, dict(requested, seed=1, calibration_images_requested=8)) \
        == ["seed 0 (requested 1)", "calibration_images_requested 100 (requested 8)"]


@pytest.mark.slow
def test_lever_rows_finish_the_staged_fcn8s_and_score_it_at_evaluation(tmp_path, counted_train):
    schedules = {"fcn32s": (1, 1e-4), "fcn16s": (1, 1e-5), "fcn8s": (1, 1e-5),
                 "fcn8s_lovasz": (1, 1e-5), "fcn8s_crf": (1, 1e-5)}  # fmt: skip
    stages = "fcn32s,fcn16s,fcn8s,fcn8s+tta,fcn8s+sas2,fcn8s_lovasz,fcn8s_crf"
    results = _run(tmp_path, stages, schedules, test=["fcn8s", "fcn8s+tta"])
    assert counted_train == ["fcn32s", "fcn16s", "fcn8s", "fcn8s", "fcn8s"]  # evaluated rows train nothing
    rows = results["rows"]
    assert list(rows) == stages.split(",")
    # Test only where asked: the row and its evaluated variant.
    assert {name for name, row in rows.items() if "test" in row} == {"fcn8s", "fcn8s+tta"}
    for lever, options in (("tta", {"tta": {"scales": [0.75, 1.0, 1.25], "flip": True}}),
                           ("sas2", {"shift_and_stitch": 2})):  # fmt: skip
        row = rows[f"fcn8s+{lever}"]
        assert row["evaluated_from"] == "fcn8s" and row["evaluation"] == {"lever": lever, **options}
        assert row["val"]["evaluation_settings"]["lever"] == {"name": lever, **options}
        assert (tmp_path / "fcn8s" / f"evaluation_val+{lever}.json").is_file()
        assert row["val"]["images"] == rows["fcn8s"]["val"]["images"] == 2
    # The TTA score is that of with_tta on the row's model (not a copy of the plain score).
    from fcn_keras.evaluation import evaluate, load_model
    from fcn_keras.tta import with_tta

    expected = evaluate(with_tta(load_model(str(tmp_path / "fcn8s" / "final.keras"))), "synthetic",
                        "val", batch_size=1, source_kwargs=SOURCE_KWARGS)  # fmt: skip
    assert rows["fcn8s+tta"]["val"]["mean_iu"] == pytest.approx(expected["mean_iu"], abs=1e-9)
    # Each finishing stage starts from the staged FCN-8s with its one change recorded.
    lovasz = json.load(open(tmp_path / "fcn8s_lovasz" / "settings.json"))
    crf = json.load(open(tmp_path / "fcn8s_crf" / "settings.json"))
    assert lovasz["loss"] == {"name": "cross_entropy+lovasz"} and lovasz["crf"] is None
    assert crf["crf"] == {"compatibility": "learned"} and crf["loss"] == {"name": "cross_entropy"}
    for row in ("fcn8s_lovasz", "fcn8s_crf"):
        config = json.load(open(tmp_path / row / "train_config.json"))
        assert config["arguments"]["init_from"] == str(tmp_path / "fcn8s" / "final.keras")
    crf_model = keras.saving.load_model(tmp_path / "fcn8s_crf" / "final.keras")
    assert crf_model.get_layer("crf").compatibility == "learned"  # FCN and CRF trained together
    published = figures_only(json.load(open(tmp_path / "results.json")))
    assert "files" not in published["rows"]["fcn8s+tta"]
    assert str(tmp_path) not in json.dumps(published)

    # Resumable: a rerun trains and evaluates nothing anew.
    cache = tmp_path / "fcn8s" / "evaluation_val+tta.json"
    stamp = os.stat(cache).st_mtime_ns
    again = _run(tmp_path, stages, schedules, test=["fcn8s", "fcn8s+tta"])
    assert len(counted_train) == 5 and os.stat(cache).st_mtime_ns == stamp
    assert again["rows"]["fcn8s+tta"]["val"] == rows["fcn8s+tta"]["val"]


@pytest.mark.parametrize("stage, expected", [
    ("fcn32s_whole", {"crop_size": None, "fc_units": 8}),
    ("fcn32s_fc4096", {"crop_size": (24, 24), "fc_units": 4096}),
    ("fcn32s_long", {"crop_size": (24, 24), "fc_units": 8, "epochs": 3}),
])  # fmt: skip
def test_training_levers_change_one_setting(tmp_path, train_arguments, stage, expected):
    schedules = {stage: (3 if stage.endswith("long") else 1, 1e-4)}
    with pytest.raises(_Interrupt):
        _run(tmp_path, stage, schedules, crop_size=(24, 24))
    assert {key: train_arguments[key] for key in expected} == expected
    settings = json.load(open(tmp_path / stage / "settings.json"))
    assert settings["fc_units"] == expected["fc_units"]
    assert settings["crop_size"] == (None if expected["crop_size"] is None else [24, 24])


def test_final_recipe_combines_the_kept_levers(tmp_path, train_arguments):
    from fcn_keras.results import final_rows, row_plan

    rows = final_rows("long,whole,lovasz,tta")
    assert list(rows) == ["final32s", "final16s", "final8s", "final8s_lovasz", "final8s_lovasz+tta"]
    assert rows["final16s"] == ("fcn16s", False, "final32s", {"crop_size": None})
    assert rows["final8s_lovasz"][3] == {"crop_size": None, "train_kwargs": {"loss": "cross_entropy+lovasz"}}
    assert row_plan()["fcn16s_fc4096"] == ("fcn16s", False, "fcn32s_fc4096", {"train_kwargs": {"fc_units": 4096}})
    assert parse_stages("final", "sas2") == ("final32s", "final16s", "final8s", "final8s+sas2")
    assert "fcn8s+tta" in parse_stages("levers") and "fcn8s_crf" in parse_stages("levers")
    with pytest.raises(ValueError, match=r"at most one evaluation lever .* received \['tta', 'sas2'\]"):
        final_rows("tta,sas2")
    with pytest.raises(ValueError, match=r"unknown \['wide'\]"):
        final_rows("wide")
    with pytest.raises(ValueError, match="unknown or empty"):
        parse_stages("fcn8s+flip")
    # Its schedules default to its levers' rows' (long: the _long rows'); whole images.
    with pytest.raises(_Interrupt):
        _run(tmp_path, "final", {"fcn32s_long": (3, 1e-4), "fcn16s_long": (2, 1e-5), "fcn8s_long": (2, 1e-5),
                                 "fcn8s_lovasz": (1, 1e-5)},
             final_levers="long,whole,lovasz,tta", crop_size=(24, 24), test="final")  # fmt: skip
    assert train_arguments["epochs"] == 3 and train_arguments["crop_size"] is None
    # The scored row must exist or be requested; test rows must be requested.
    with pytest.raises(ValueError, match="scores fcn8s's final model, which is neither finished"):
        _run(tmp_path / "other", "fcn8s+tta", {})
    with pytest.raises(ValueError, match=r"test rows \['fcn8s'\] are not among the requested"):
        _run(tmp_path / "other", "fcn32s", {"fcn32s": (1, 1e-4)}, test="fcn8s")


def test_train_with_a_crf_takes_true_or_options(tmp_path):
    import fcn_keras

    with pytest.raises(ValueError, match="crf must be True or a dict of DenseCRF options; received 'yes'"):
        fcn_keras.train("fcn8s", "synthetic", out_dir=str(tmp_path), crf="yes")
    assert not os.listdir(tmp_path)  # refused before anything is written
