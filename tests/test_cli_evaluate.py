"""`fcn-keras evaluate`: without --source, a model is scored on the dataset it was trained on."""

import json

import numpy as np
import pytest
from PIL import Image

from fcn_keras.cli import main

NUM_CLASSES = 11


@pytest.fixture(scope="module")
def camvid_model(tmp_path_factory):
    """A small FCN-32s saved as .keras carrying CamVid's dataset_info, and a tiny CamVid folder."""
    import keras

    import fcn_keras

    root = tmp_path_factory.mktemp("evaluate")
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        (root / "camvid" / split).mkdir(parents=True)
        (root / "camvid" / f"{split}annot").mkdir()
        for index, size in enumerate(((40, 56), (37, 53))):
            name = f"{split}_{index}.png"
            Image.fromarray(rng.integers(0, 256, size + (3,), dtype=np.uint8)).save(root / "camvid" / split / name)
            label = rng.integers(0, NUM_CLASSES + 1, size, dtype=np.uint8)  # 11 = void
            Image.fromarray(label).save(root / "camvid" / f"{split}annot" / name)
    keras.utils.set_random_seed(0)
    model = fcn_keras.FCN32s(num_classes=NUM_CLASSES, fc_units=8, backbone_weights=None)
    model.dataset_info = fcn_keras.dataset_info("camvid", data_dir=str(root / "camvid"))
    model.save(root / "camvid.keras")
    model.dataset_info = None
    model.save(root / "bare.keras")
    return root


def test_evaluate_defaults_to_the_model_dataset(camvid_model, capsys):
    from fcn_keras.evaluation import evaluate, load_model

    data_dir = str(camvid_model / "camvid")
    assert main(["evaluate", str(camvid_model / "camvid.keras"), "--data-dir", data_dir, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["source"] == "camvid" and report["split"] == "val"
    expected = evaluate(load_model(str(camvid_model / "camvid.keras")), "camvid", "val",
                        source_kwargs={"data_dir": data_dir})  # fmt: skip
    assert report["confusion_matrix"] == np.asarray(expected["confusion_matrix"]).tolist()
    assert np.asarray(report["confusion_matrix"]).sum() > 0  # void (11) pixels left out, others counted
    # An explicit --source still wins.
    assert main(["evaluate", str(camvid_model / "camvid.keras"), "--source", "synthetic",
                 "--image-size", "32", "--source-arg", "num_examples=2", "--json"]) == 2  # fmt: skip
    assert "synthetic" in capsys.readouterr().err  # 6 synthetic classes against an 11-class model


def test_evaluate_without_dataset_info_asks_for_source(camvid_model, capsys):
    assert main(["evaluate", str(camvid_model / "bare.keras")]) == 2
    err = capsys.readouterr().err
    assert "bare.keras' carries no dataset_info" in err and "pass --source" in err


def test_evaluate_with_shift_and_stitch(camvid_model, capsys):
    from fcn_keras.evaluation import evaluate, load_model

    path, data_dir = str(camvid_model / "camvid.keras"), str(camvid_model / "camvid")
    assert main(["evaluate", path, "--data-dir", data_dir, "--shift-and-stitch", "2", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["shift_and_stitch"] == 2 and report["images"] == 2
    expected = evaluate(load_model(path), "camvid", "val", shift_and_stitch=2,
                        source_kwargs={"data_dir": data_dir})  # fmt: skip
    assert report["confusion_matrix"] == expected["confusion_matrix"]
    assert main(["evaluate", path, "--data-dir", data_dir, "--shift-and-stitch", "2"]) == 0
    assert "shift-and-stitch x2" in capsys.readouterr().out  # the Markdown title says so
    assert main(["evaluate", path, "--data-dir", data_dir, "--shift-and-stitch", "3"]) == 2
    assert "received 3" in capsys.readouterr().err


def test_evaluate_with_tta(camvid_model, capsys):
    import fcn_keras
    from fcn_keras.evaluation import evaluate, load_model

    path, data_dir = str(camvid_model / "camvid.keras"), str(camvid_model / "camvid")
    assert main(["evaluate", path, "--data-dir", data_dir, "--tta", "--tta-scales", "0.5,1",
                 "--no-tta-flip", "--json"]) == 0  # fmt: skip
    report = json.loads(capsys.readouterr().out)
    assert report["tta"] == {"scales": [0.5, 1.0], "flip": False}
    expected = evaluate(fcn_keras.with_tta(load_model(path), scales=(0.5, 1.0), flip=False), "camvid",
                        "val", source_kwargs={"data_dir": data_dir})  # fmt: skip
    assert report["confusion_matrix"] == np.asarray(expected["confusion_matrix"]).tolist()
    assert main(["evaluate", path, "--data-dir", data_dir, "--tta"]) == 0
    assert "TTA scales 0.75,1,1.25 + flip" in capsys.readouterr().out  # the defaults, in the title
    assert main(["evaluate", path, "--data-dir", data_dir, "--tta-scales", "0.5,1"]) == 2
    assert "--tta-scales given without --tta" in capsys.readouterr().err
    with pytest.raises(SystemExit) as error:  # an argument error: argparse's usage and exit 2
        main(["evaluate", path, "--data-dir", data_dir, "--tta", "--tta-scales", "0.5,-1"])
    assert error.value.code == 2 and "'-1' in '0.5,-1' is not a positive number" in capsys.readouterr().err
    assert main(["evaluate", path, "--data-dir", data_dir, "--tta", "--shift-and-stitch", "2"]) == 2
    assert "--tta and --shift-and-stitch cannot be combined" in capsys.readouterr().err
