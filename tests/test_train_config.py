"""`TrainConfig`: one set of `train` defaults, shared by `train`, `fcn-keras train` and the results recipe.

The keyword form `train(variant, source, out_dir=..., epochs=...)`,
`train(config)` and `train(config=config, epochs=...)` run the same
configuration and record the same `train_config.json` arguments; the CLI's
flag defaults and the recipe's filled-in settings are the config's defaults.
"""

import json

import pytest

from fcn_keras.train_config import TrainConfig

_SYNTHETIC = {"image_size": 32, "num_examples": {"train": 4, "val": 2}}


def test_defaults_are_stated_once_and_round_trip_through_json():
    defaults = TrainConfig.defaults()
    assert list(defaults)[:3] == ["variant", "source", "out_dir"] and len(defaults) == 41
    assert (defaults["batch_size"], defaults["epochs"], defaults["head"], defaults["fc_units"]) == (
        8, 1, "paper", None)
    config = TrainConfig("fcn16s", "camvid", out_dir="runs/x", epochs=3, crop_size=(32, 48),
                         loss={"name": "lovasz", "per_image": True}, class_weights=[1.0, 2.0])  # fmt: skip
    data = json.loads(json.dumps(config.to_dict()))
    assert data["crop_size"] == [32, 48] and list(data) == list(defaults)
    restored = TrainConfig.from_dict(data)
    assert restored.replace(crop_size=(32, 48)) == config
    assert config.replace(epochs=5).epochs == 5 and config.epochs == 3  # frozen: a new object
    with pytest.raises(Exception, match="cannot assign"):
        config.epochs = 4


@pytest.mark.parametrize("field,value,expected", [
    ("epochs", 0, r"epochs must be an integer >= 1; received 0"),
    ("batch_size", 2.5, r"batch_size must be an integer >= 1; received 2\.5"),
    ("steps_per_epoch", 0, r"steps_per_epoch must be an integer >= 1 or None; received 0"),
    ("warmup_steps", -1, r"warmup_steps must be an integer >= 0; received -1"),
    ("fc_units", True, r"fc_units must be an integer >= 1 or None; received True"),
    ("learning_rate", 0.0, r"learning_rate must be a number > 0 or None; received 0\.0"),
    ("weight_decay", -1e-4, r"weight_decay must be a number >= 0 or None"),
    ("momentum", 1.0, r"momentum must be in \[0, 1\); received 1\.0"),
    ("dropout", -0.1, r"dropout must be in \[0, 1\); received -0\.1"),
    ("head", "large", r"head must be one of \['mobile', 'paper'\]; received 'large'"),
])  # fmt: skip
def test_bad_values_name_the_field_the_value_and_what_is_expected(field, value, expected):
    with pytest.raises(ValueError, match=expected):
        TrainConfig(**{field: value})


def test_unknown_names_are_errors_everywhere():
    from fcn_keras.training import train

    with pytest.raises(TypeError, match=r"unexpected argument\(s\) \['epoch'\]"):
        TrainConfig().replace(epoch=2)
    with pytest.raises(ValueError, match=r"unknown field\(s\) \['lr'\]"):
        TrainConfig.from_dict({"lr": 1e-3})
    with pytest.raises(TypeError, match=r"train\(\) got unexpected argument\(s\) \['epoch'\]"):
        train("fcn8s", out_dir="x", epoch=2)
    with pytest.raises(TypeError, match="train\\(\\) needs out_dir"):
        train("fcn8s", epochs=2)
    with pytest.raises(TypeError, match="takes one TrainConfig"):
        train(TrainConfig(), config=TrainConfig())
    with pytest.raises(TypeError, match="takes a TrainConfig; received dict"):
        train(config={"epochs": 2}, out_dir="x")


def test_config_and_keywords_resolve_to_one_config():
    from fcn_keras.training import _train_config

    base = TrainConfig("fcn16s", "camvid", out_dir="runs/a", epochs=4, batch_size=2)
    assert _train_config(base, None, None, {}) == base
    assert _train_config(None, None, base, {"epochs": 6}) == base.replace(epochs=6)
    assert _train_config("fcn32s", None, base, {}) == base.replace(variant="fcn32s")
    keywords = _train_config("fcn16s", "camvid", None, {"out_dir": "runs/a", "epochs": 4,
                                                        "batch_size": 2})  # fmt: skip
    assert keywords == base


@pytest.mark.slow
def test_train_from_a_config_records_what_the_keyword_form_records(tmp_path):
    from fcn_keras.training import train

    config = TrainConfig("fcn32s", "synthetic", out_dir=str(tmp_path / "a"), source_kwargs=_SYNTHETIC,
                         batch_size=2, steps_per_epoch=1, fc_units=8, dropout=0.0, seed=0,
                         verbose=0, tensorboard=False, val_split=None)  # fmt: skip
    train(config, epochs=1, backup=False)
    arguments = json.load(open(tmp_path / "a" / "train_config.json"))["arguments"]
    assert arguments == json.loads(json.dumps(config.replace(epochs=1, backup=False).to_dict()))
    keywords = {k: v for k, v in config.arguments().items() if k not in ("variant", "source")}
    train("fcn32s", "synthetic", **{**keywords, "out_dir": str(tmp_path / "b"), "backup": False})
    again = json.load(open(tmp_path / "b" / "train_config.json"))["arguments"]
    assert again == {**arguments, "out_dir": str(tmp_path / "b")}


def test_cli_defaults_are_the_config_defaults():
    from fcn_keras.cli import build_parser
    from fcn_keras.commands.train import config_of

    args = build_parser().parse_args(["train", "fcn8s", "--out", "runs/x"])
    config = config_of(args)
    cli_own = {"variant": "fcn8s", "out_dir": "runs/x", "source_kwargs": {}, "verbose": 1}
    expected = TrainConfig.defaults() | cli_own
    assert config.arguments() == expected, {k: v for k, v in config.arguments().items()
                                            if expected[k] != v}  # fmt: skip
    mobile = config_of(build_parser().parse_args(["train", "fcn8s", "--out", "x", "--head", "mobile"]))
    assert (mobile.head, mobile.fc_units) == ("mobile", None)  # the head's width, 512, when built


def test_results_recipe_fills_settings_from_the_config_defaults():
    from fcn_keras import results

    assert set(results.RECIPE_ARGUMENTS) <= set(TrainConfig.defaults())
    settings = results._requested_settings(3, 1e-4, 1.0, None, None, {"fc_units": 16})
    stated = {key: TrainConfig.defaults()[key] for key in results.RECIPE_ARGUMENTS}
    assert settings["fc_units"] == 16 and settings["head"] == "paper"
    assert settings == results._requested_settings(3, 1e-4, 1.0, None, None, {**stated, "fc_units": 16})
    with pytest.raises(TypeError, match=r"unexpected argument\(s\) \['fc_unit'\]"):
        results.run_stages("unused", "fcn32s", schedules={"fcn32s": (1, 1e-4)},
                           train_kwargs={"fc_unit": 16})  # fmt: skip
    with pytest.raises(ValueError, match=r"train_kwargs sets \['epochs'\], which run_stages sets"):
        results.run_stages("unused", "fcn32s", schedules={"fcn32s": (1, 1e-4)},
                           train_kwargs={"epochs": 2})  # fmt: skip
