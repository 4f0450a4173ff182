"""fcn_keras.train and its parts: schedules, optimizers, checkpoints/logs, staged init, precision, XLA, CLI."""

import csv
import json
import math
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from fcn_keras.training import WarmupSchedule, make_optimizer, train


def _toy_dataset(n=8, size=32, batch=4, seed=0, num_classes=3):
    """Bright squares (class 1) and dark squares (class 2) on grey; a few void pixels."""
    rng = np.random.default_rng(seed)
    images = np.full((n, size, size, 3), 128, "uint8")
    masks = np.zeros((n, size, size), "int32")
    for i in range(n):
        for cls, value in ((1, 250), (2, 5)):
            y, x = rng.integers(0, size - 12, 2)
            images[i, y : y + 12, x : x + 12] = value
            masks[i, y : y + 12, x : x + 12] = cls
    masks[:, 0, :4] = 255
    return tf.data.Dataset.from_tensor_slices((images, masks)).batch(batch)


def test_warmup_schedule_values():
    constant = WarmupSchedule(1e-3, total_steps=10, kind="constant", warmup_steps=4)
    assert [float(constant(s)) for s in (0, 1, 3, 4, 9)] == pytest.approx(
        [0.25e-3, 0.5e-3, 1e-3, 1e-3, 1e-3]
    )
    poly = WarmupSchedule(1.0, total_steps=11, kind="poly", warmup_steps=1, power=0.9)
    # after warmup t = (step - 1) / 10: step 6 -> t = 0.5 -> 0.5**0.9
    assert float(poly(6)) == pytest.approx(0.5**0.9, rel=1e-5)
    assert float(poly(11)) == pytest.approx(0.0, abs=1e-7)
    cosine = WarmupSchedule(2.0, total_steps=100, kind="cosine")
    assert float(cosine(0)) == pytest.approx(2.0)
    assert float(cosine(50)) == pytest.approx(1.0, rel=1e-5)
    assert float(cosine(25)) == pytest.approx(1.0 + math.cos(math.pi / 4), rel=1e-5)
    restored = WarmupSchedule.from_config(poly.get_config())
    assert float(restored(6)) == pytest.approx(float(poly(6)))
    with pytest.raises(ValueError, match="Unknown schedule 'step'"):
        WarmupSchedule(1.0, kind="step")


def test_make_optimizer_defaults_follow_the_paper():
    sgd = make_optimizer("sgd")
    assert isinstance(sgd, keras.optimizers.SGD)
    assert sgd.momentum == pytest.approx(0.99)
    assert float(sgd.learning_rate) == pytest.approx(2e-5)
    adam = make_optimizer("adam", 3e-4, schedule="poly", total_steps=100, warmup_steps=5)
    assert isinstance(adam, keras.optimizers.Adam)
    assert isinstance(adam._learning_rate, WarmupSchedule)
    assert isinstance(make_optimizer("adamw"), keras.optimizers.AdamW)
    with pytest.raises(ValueError, match="Unknown optimizer 'rmsprop'"):
        make_optimizer("rmsprop")


def test_train_writes_checkpoints_logs_and_learns(tmp_path):
    out = tmp_path / "run"
    model, history = train(
        "fcn32s", _toy_dataset(), validation_data=_toy_dataset(seed=1), num_classes=3,
        out_dir=str(out), epochs=2, fc_units=8, dropout=0.0, trainable_upsampling=True,
        optimizer="adam", learning_rate=1e-4, seed=0, verbose=0,
    )  # fmt: skip
    for name in ("best.keras", "last.keras", "history.csv", "train_config.json"):
        assert (out / name).is_file(), name
    assert not (out / "backup").exists()  # BackupAndRestore removes its state at the end
    assert any((out / "tensorboard").rglob("events.out.tfevents.*"))
    rows = list(csv.DictReader(open(out / "history.csv")))
    assert [int(r["epoch"]) for r in rows] == [0, 1]
    assert {"loss", "mean_iu", "val_mean_iu", "val_pixel_accuracy"} <= set(rows[0])
    # Score layers start at zero: the first loss is ln(3); training lowers it.
    losses = history.history["loss"]
    assert losses[0] < math.log(3) + 1e-3 and losses[-1] < losses[0]
    best = keras.saving.load_model(out / "best.keras", compile=False)
    best_epoch = int(np.argmax(history.history["val_mean_iu"]))
    assert best.count_params() == model.count_params()
    assert json.load(open(out / "train_config.json"))["epochs"] == 2
    assert float(rows[best_epoch]["val_mean_iu"]) == max(float(r["val_mean_iu"]) for r in rows)


def test_mixed_precision_keeps_logits_and_loss_float32_and_restores_policy(tmp_path):
    model, history = train(
        "fcn32s", _toy_dataset(n=4), num_classes=3, out_dir=str(tmp_path), epochs=1,
        fc_units=8, dropout=0.0, mixed_precision="mixed_bfloat16", seed=0, verbose=0,
        tensorboard=False,
    )  # fmt: skip
    assert keras.config.dtype_policy().name == "float32"  # restored after training
    assert model.get_layer("fc6").compute_dtype == "bfloat16"
    assert model.get_layer("fc6").kernel.dtype == "float32"  # float32 master weights
    assert model(np.zeros((1, 32, 32, 3), "uint8")).dtype == "float32"
    assert np.isfinite(history.history["loss"][0])
    with pytest.raises(ValueError, match="Unknown precision 'float8'"):
        train("fcn32s", _toy_dataset(n=4), num_classes=3, out_dir=str(tmp_path / "x"),
              mixed_precision="float8", fc_units=8)  # fmt: skip


def test_float16_with_xla_uses_loss_scaling_and_trains(tmp_path):
    model, history = train(
        "fcn32s", _toy_dataset(n=4), num_classes=3, out_dir=str(tmp_path), epochs=1,
        fc_units=8, dropout=0.0, mixed_precision="mixed_float16", jit_compile=True, seed=0,
        verbose=0, tensorboard=False,
    )  # fmt: skip
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    assert model.jit_compile is True
    assert np.isfinite(history.history["loss"][0])


def test_staged_init_from_fcn32s_checkpoint(tmp_path, small_fcn):
    from fcn_keras.training import _build_model, _load_init_model

    fcn32 = small_fcn("fcn32s", num_classes=3, fc_units=8)
    path = tmp_path / "fcn32s.keras"
    fcn32.save(path)
    fcn16 = _build_model("fcn16s", 3, _load_init_model(path), None, None, 4096, 0.0, False)
    assert fcn16.get_layer("upscore16") is not None
    np.testing.assert_array_equal(fcn16.get_layer("fc6").get_weights()[0],
                                  fcn32.get_layer("fc6").get_weights()[0])  # fmt: skip
    np.testing.assert_array_equal(fcn16.get_layer("score_fr").get_weights()[0],
                                  fcn32.get_layer("score_fr").get_weights()[0])  # fmt: skip
    assert not np.any(fcn16.get_layer("score_pool4").get_weights()[0])
    with pytest.raises(ValueError, match="source model must be an fcn16s"):
        _build_model("fcn8s", 3, _load_init_model(path), None, None, 4096, 0.0, False)
    with pytest.raises(ValueError, match="has 3 classes but the dataset has 5"):
        _build_model("fcn16s", 5, _load_init_model(path), None, None, 4096, 0.0, False)
    with pytest.raises(ValueError, match="existing '.keras' file"):
        _load_init_model(tmp_path / "missing.keras")


def test_cli_staged_recipe_and_evaluate(tmp_path, capsys):
    from fcn_keras.cli import main

    common = ["--image-size", "32", "--source-arg", 'num_examples={"train": 4, "val": 2}',
              "--batch-size", "2", "--epochs", "1", "--steps-per-epoch", "1", "--fc-units", "8",
              "--dropout", "0", "--verbose", "0", "--no-tensorboard", "--seed", "0"]  # fmt: skip
    assert main(["train", "fcn32s", "--out", str(tmp_path / "s32"), *common]) == 0
    assert main(["train", "fcn16s", "--out", str(tmp_path / "s16"), "--init-from",
                 str(tmp_path / "s32" / "best.keras"), *common]) == 0  # fmt: skip
    stage16 = keras.saving.load_model(tmp_path / "s16" / "best.keras", compile=False)
    assert {"score_pool4", "upscore16"} <= {layer.name for layer in stage16.layers}
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "s16" / "best.keras"), "--image-size", "32",
                 "--source-arg", 'num_examples={"val": 2}', "--json",
                 "--output", str(tmp_path / "eval")]) == 0  # fmt: skip
    report = json.loads(capsys.readouterr().out)
    assert report["images"] == 2 and report["pixels"] == 2 * 32 * 32
    for key in ("pixel_accuracy", "mean_accuracy", "mean_iu", "frequency_weighted_iu"):
        assert 0.0 <= report[key] <= 1.0
    assert set(report["per_class_iou"]) == {"background", "disc", "square", "triangle",
                                            "ring", "cross"}  # fmt: skip
    markdown = (tmp_path / "eval.md").read_text()
    assert "| Mean IU |" in markdown and "| background |" in markdown
    assert main(["train", "fcn8s", "--out", str(tmp_path / "bad"), "--init-from",
                 str(tmp_path / "s32" / "best.keras"), *common]) == 2  # fmt: skip
    assert "source model must be an fcn16s" in capsys.readouterr().err
