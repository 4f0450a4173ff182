"""Tests of `fcn-keras data`: size, class frequencies, sample PNGs, errors."""

import json

import numpy as np
from PIL import Image

from fcn_keras.cli import main


def test_data_command_prints_frequencies_and_writes_samples(tmp_path, capsys):
    code = main(["data", "synthetic", "--split", "val", "--image-size", "32",
                 "--source-arg", "num_examples=6", "--samples", "2", "--out", str(tmp_path)])  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    assert "examples: 6" in out and "class pixel frequencies" in out and "disc" in out
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["val_000.png", "val_001.png"]
    sample = np.asarray(Image.open(tmp_path / "val_000.png"))
    assert sample.shape == (32, 96, 3)  # image | colourised mask | overlay


def test_data_command_json_frequencies_sum_to_one(capsys):
    assert main(["data", "synthetic", "--split", "val", "--image-size", "32",
                 "--source-arg", "num_examples=4", "--json"]) == 0  # fmt: skip
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert figures["examples"] == 4 and figures["num_classes"] == 6
    assert abs(sum(figures["class_frequencies"].values()) - 1.0) < 1e-4


def test_data_command_scan_reports_bad_files(tmp_path, capsys):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "images" / "ok.png")
    (tmp_path / "images" / "bad.png").write_bytes(b"junk")
    for name in ("ok", "bad"):
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "masks" / f"{name}.png")
    code = main(["data", "folders", "--split", "val", "--scan", "--json",
                 "--source-arg", "num_classes=2",
                 "--source-arg", f"image_dir={tmp_path / 'images'}",
                 "--source-arg", f"mask_dir={tmp_path / 'masks'}"])  # fmt: skip
    assert code == 0
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert figures["examples"] == 1 and figures["bad_examples"] == 1
    assert figures["bad_files"][0].startswith(str(tmp_path / "images" / "bad.png"))


def test_data_command_user_error_exit_code(tmp_path, capsys):
    assert main(["data", "camvid", "--data-dir", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_data_command_source_arg_seed_is_the_source_seed(tmp_path, capsys):
    from fcn_keras import load_dataset
    from fcn_keras.data.sources import resolve_source

    def sample_images(out, *extra):
        code = main(["data", "synthetic", "--split", "val", "--image-size", "32", "--source-arg",
                     "num_examples=2", "--samples", "2", "--out", str(out), *extra])  # fmt: skip
        assert code == 0
        # The sample PNG is image | colourised mask | overlay: its left third is the image.
        return [np.asarray(Image.open(out / f"val_{i:03d}.png"))[:, :32] for i in range(2)]

    def source_images(**options):
        ds = load_dataset(resolve_source("synthetic", image_size=32, num_examples=2, **options), "val",
                          batch_size=1, augment=False, shuffle=False)  # fmt: skip
        return [image[0] for image, _ in ds.as_numpy_iterator()]

    seeded = sample_images(tmp_path / "seed3", "--source-arg", "seed=3")
    default = sample_images(tmp_path / "seed0")
    assert all(np.array_equal(a, b) for a, b in zip(seeded, source_images(seed=3)))
    assert all(np.array_equal(a, b) for a, b in zip(default, source_images()))
    assert not any(np.array_equal(a, b) for a, b in zip(seeded, default))  # seed=3 reached the source
    capsys.readouterr()
