"""fcn_keras.train and its parts: schedules, optimizers, checkpoints/logs, staged init, precision, XLA, CLI."""

import csv
import json
import math

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


@pytest.mark.slow
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
    config = json.load(open(out / "train_config.json"))
    assert config["arguments"]["epochs"] == 2 and config["arguments"]["fc_units"] == 8
    assert config["arguments"]["source"] == "<_BatchDataset>"
    assert config["derived"]["variant"] == "fcn32s" and config["derived"]["num_classes"] == 3
    assert float(rows[best_epoch]["val_mean_iu"]) == max(float(r["val_mean_iu"]) for r in rows)


@pytest.mark.slow
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


@pytest.mark.slow
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
    from fcn_keras.training import make_model

    fcn32 = small_fcn("fcn32s", num_classes=3, fc_units=8)
    path = tmp_path / "fcn32s.keras"
    fcn32.save(path)
    fcn16 = make_model("fcn16s", 3, init_from=str(path), dropout=0.0)
    assert fcn16.get_layer("upscore16") is not None
    np.testing.assert_array_equal(fcn16.get_layer("fc6").get_weights()[0],
                                  fcn32.get_layer("fc6").get_weights()[0])  # fmt: skip
    np.testing.assert_array_equal(fcn16.get_layer("score_fr").get_weights()[0],
                                  fcn32.get_layer("score_fr").get_weights()[0])  # fmt: skip
    assert not np.any(fcn16.get_layer("score_pool4").get_weights()[0])
    with pytest.raises(ValueError, match="source model must be an fcn16s"):
        make_model("fcn8s", 3, init_from=str(path))
    with pytest.raises(ValueError, match="has 3 classes but the dataset has 5"):
        make_model("fcn16s", 5, init_from=str(path))
    with pytest.raises(ValueError, match="existing '.keras' file"):
        make_model("fcn16s", 3, init_from=str(tmp_path / "missing.keras"))
    with pytest.raises(ValueError, match="at-once FCN-8s trains in one stage"):
        make_model("fcn8s", 3, init_from=fcn32, at_once=True)
    with pytest.raises(ValueError, match="at_once=True builds the at-once FCN-8s; received "
                                         "variant 'fcn16s'"):  # fmt: skip
        make_model("fcn16s", 3, at_once=True)


_SYNTHETIC = {"image_size": 32, "num_examples": {"train": 4, "val": 2}}
_TINY = dict(source_kwargs=_SYNTHETIC, batch_size=2, epochs=1, steps_per_epoch=1, fc_units=8,
             dropout=0.0, seed=0, verbose=0, tensorboard=False)  # fmt: skip


@pytest.mark.slow
def test_checkpoints_carry_the_dataset_info_and_evaluate_uses_it(tmp_path):
    from fcn_keras.evaluation import evaluate

    out = tmp_path / "run"
    model, _ = train("fcn32s", "synthetic", out_dir=str(out), ignore_label=250, **_TINY)
    expected = ("background", "disc", "square", "triangle", "ring", "cross")
    assert model.dataset_info.class_names == expected
    for name in ("best.keras", "last.keras"):
        loaded = keras.saving.load_model(out / name, compile=False)
        assert loaded.dataset_info is not None, name
        assert loaded.dataset_info.name == "synthetic"
        assert loaded.dataset_info.class_names == expected
        assert loaded.dataset_info.ignore_label == 250  # as used, not the source's 255
    # evaluate() on a plain iterable takes the names and the ignore label from the model:
    # the 250-labelled pixels are void, so 16 of the 2 x 32 x 32 pixels are not counted.
    images = np.zeros((2, 32, 32, 3), "uint8")
    masks = np.zeros((2, 32, 32), "int32")
    masks[:, :4, :2] = 250
    report = evaluate(loaded, [(images, masks)])
    assert list(report["per_class_iou"]) == list(expected)
    assert report["pixels"] == 2 * 32 * 32 - 16
    config = json.load(open(out / "train_config.json"))
    assert config["arguments"]["ignore_label"] == 250
    assert config["arguments"]["source_kwargs"] == _SYNTHETIC
    assert config["arguments"]["steps_per_epoch"] == 1 and config["arguments"]["at_once"] is False
    assert config["derived"]["class_names"] == list(expected)
    assert config["derived"]["total_steps"] == 1 and config["derived"]["resumed"] is False


@pytest.mark.slow
def test_at_once_fcn8s_trains_and_continues_at_once(tmp_path):
    from fcn_keras.models import variant_of

    model, history = train("fcn8s", "synthetic", out_dir=str(tmp_path / "a"), at_once=True,
                           **_TINY)  # fmt: skip
    assert variant_of(model) == "fcn8s_atonce"
    assert model.get_layer("scale_pool3").scale == pytest.approx(1e-4)
    assert np.isfinite(history.history["loss"][0])
    # Continuing from the at-once checkpoint keeps it at-once, without at_once=True.
    resumed, _ = train("fcn8s", "synthetic", out_dir=str(tmp_path / "b"),
                       init_from=str(tmp_path / "a" / "last.keras"), **_TINY)  # fmt: skip
    assert variant_of(resumed) == "fcn8s_atonce"
    # The continued model starts from the checkpoint's weights (score_fr moved from zero).
    from fcn_keras.training import make_model

    last = keras.saving.load_model(tmp_path / "a" / "last.keras", compile=False)
    continued = make_model("fcn8s", 6, init_from=last, fc_units=8)
    assert variant_of(continued) == "fcn8s_atonce"
    assert np.any(last.get_layer("score_fr").get_weights()[0])
    for name in ("score_fr", "score_pool3", "fc6"):
        for a, b in zip(last.get_layer(name).get_weights(),
                        continued.get_layer(name).get_weights()):  # fmt: skip
            np.testing.assert_array_equal(a, b)
    config = json.load(open(tmp_path / "b" / "train_config.json"))
    assert config["arguments"]["at_once"] is False
    assert config["derived"]["variant"] == "fcn8s_atonce"


@pytest.mark.slow
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


def test_make_loss_and_input_errors_name_what_they_received():
    from fcn_keras.losses import FocalLoss, SegmentationCrossEntropy
    from fcn_keras.training import make_inputs, make_loss

    loss = make_loss("focal", ignore_label=250, focal_gamma=1.5)
    assert isinstance(loss, FocalLoss) and loss.ignore_label == 250 and loss.gamma == 1.5
    assert isinstance(make_loss(), SegmentationCrossEntropy)
    assert make_loss(loss) is loss
    with pytest.raises(ValueError, match="Unknown loss 'hinge'"):
        make_loss("hinge")
    with pytest.raises(ValueError, match="needs a source name or Source; received source of "
                                         "type '_BatchDataset'"):  # fmt: skip
        make_inputs(_toy_dataset(), num_classes=3, class_weights="median_frequency")
