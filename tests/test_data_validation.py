"""Every bad input gives a clear error naming the file(s); `skip_bad=True` counts and reports."""

import logging
import re

import numpy as np
import pytest
import scipy.io
import tensorflow as tf
from PIL import Image

import fcn_keras
from fcn_keras.data import BadExampleError
from fcn_keras.data.pipeline import scan_dataset


@pytest.fixture
def tree(tmp_path):
    """Folders `images/` and `masks/` with two good pairs; tests add bad ones."""
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    rng = np.random.default_rng(0)
    for name in ("good1", "good2"):
        Image.fromarray(rng.integers(0, 256, (16, 12, 3), dtype=np.uint8)).save(
            tmp_path / "images" / f"{name}.png")  # fmt: skip
        Image.fromarray(rng.integers(0, 3, (16, 12), dtype=np.uint8), "L").save(
            tmp_path / "masks" / f"{name}.png")  # fmt: skip
    return tmp_path


def _mask(tree, name, array=None):
    array = np.ones((16, 12), np.uint8) if array is None else array
    Image.fromarray(array).save(tree / "masks" / f"{name}.png")


def _load(tree, **kwargs):
    kwargs.setdefault("batch_size", 1)
    return fcn_keras.load_dataset("folders", "val", num_classes=3, image_dir=str(tree / "images"),
                                  mask_dir=str(tree / "masks"), **kwargs)  # fmt: skip


def _raises_naming(tree, *needles, **kwargs):
    """Iterating fails with every needle in the message; the up-front scan raises ValueError."""
    with pytest.raises(tf.errors.InvalidArgumentError) as info:
        list(_load(tree, **kwargs))
    for needle in needles:
        assert needle in info.value.message
    with pytest.raises(ValueError) as info:
        _load(tree, scan=True, **kwargs)
    for needle in needles:
        assert needle in str(info.value)
    return str(info.value)


def test_corrupt_image_names_the_file(tree):
    (tree / "images" / "bad.png").write_bytes(b"not an image at all")
    _mask(tree, "bad")
    message = _raises_naming(tree, str(tree / "images" / "bad.png"))
    assert "not a recognised image format" in message


def test_truncated_png_names_the_file(tree):
    good = (tree / "images" / "good1.png").read_bytes()
    (tree / "images" / "cut.png").write_bytes(good[: len(good) // 2])
    _mask(tree, "cut")
    _raises_naming(tree, str(tree / "images" / "cut.png"), "cannot be decoded")


def test_size_mismatch_names_both_files(tree):
    Image.fromarray(np.zeros((20, 12, 3), np.uint8)).save(tree / "images" / "tall.png")
    _mask(tree, "tall")
    message = _raises_naming(tree, str(tree / "images" / "tall.png"), str(tree / "masks" / "tall.png"))
    assert "12x20" in message and "12x16" in message


def test_mask_values_out_of_range_are_named(tree):
    Image.fromarray(np.zeros((16, 12, 3), np.uint8)).save(tree / "images" / "ids.png")
    values = np.ones((16, 12), np.uint8)
    values[0, :3] = [7, 9, 255]  # 255 is the ignore label: allowed
    _mask(tree, "ids", values)
    message = _raises_naming(tree, str(tree / "masks" / "ids.png"))
    assert re.search(r"class id\(s\) 7, 9 outside \[0, 3\)", message)


def test_missing_directory_split_file_and_listed_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "nowhere"))):
        fcn_keras.load_dataset("camvid", data_dir=str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="train.txt"):
        fcn_keras.load_dataset("camvid", "train", data_dir=str(tmp_path))
    (tmp_path / "JPEGImages").mkdir()
    (tmp_path / "ImageSets" / "Segmentation").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=re.escape("Segmentation/val.txt")):
        fcn_keras.load_dataset("voc", "val", data_dir=str(tmp_path))
    (tmp_path / "ImageSets" / "Segmentation" / "val.txt").write_text("2007_000032\n")
    with pytest.raises(FileNotFoundError, match=re.escape("JPEGImages/2007_000032.jpg")):
        fcn_keras.load_dataset("voc", "val", data_dir=str(tmp_path))


def test_empty_dataset(tmp_path):
    (tmp_path / "JPEGImages").mkdir()
    (tmp_path / "ImageSets" / "Segmentation").mkdir(parents=True)
    (tmp_path / "ImageSets" / "Segmentation" / "train.txt").write_text("\n")
    with pytest.raises(ValueError, match="split 'train' is empty"):
        fcn_keras.load_dataset("voc", "train", data_dir=str(tmp_path))
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with pytest.raises(ValueError, match="empty"):
        fcn_keras.load_dataset("folders", num_classes=2, image_dir=str(tmp_path / "a"),
                               mask_dir=str(tmp_path / "b"))  # fmt: skip


def test_image_without_mask_is_named(tree):
    Image.fromarray(np.zeros((16, 12, 3), np.uint8)).save(tree / "images" / "lonely.png")
    with pytest.raises(ValueError, match="lonely.png"):
        _load(tree)


def test_transparent_rgba_refused_and_16_bit_refused(tree):
    rgba = np.zeros((16, 12, 4), np.uint8)
    rgba[..., 3] = 255
    rgba[0, 0, 3] = 10
    Image.fromarray(rgba, "RGBA").save(tree / "images" / "glass.png")
    _mask(tree, "glass")
    message = _raises_naming(tree, str(tree / "images" / "glass.png"), "transparent")
    (tree / "images" / "glass.png").unlink()
    (tree / "masks" / "glass.png").unlink()
    assert "alpha min 10" in message
    Image.fromarray(np.full((16, 12), 40000, np.uint16)).save(tree / "images" / "deep.png")
    _mask(tree, "deep")
    _raises_naming(tree, str(tree / "images" / "deep.png"), "16-bit")


def test_rgb_mask_needs_palette_and_unknown_colours_are_named(tree):
    Image.fromarray(np.zeros((16, 12, 3), np.uint8)).save(tree / "images" / "col.png")
    rgb = np.zeros((16, 12, 3), np.uint8)
    rgb[3, 3] = (1, 2, 3)
    Image.fromarray(rgb).save(tree / "masks" / "col.png")
    _raises_naming(tree, str(tree / "masks" / "col.png"), "pass palette=")
    palette = {(0, 0, 0): 0, (255, 0, 0): 1, (0, 255, 0): 2}
    Image.fromarray(np.zeros((16, 12, 3), np.uint8)).save(tree / "masks" / "good1.png")
    Image.fromarray(np.zeros((16, 12, 3), np.uint8)).save(tree / "masks" / "good2.png")
    message = _raises_naming(tree, str(tree / "masks" / "col.png"), "(1, 2, 3)", palette=palette)
    assert "not in the palette" in message


def test_sbd_mat_without_segmentation(tmp_path):
    for sub in ("img", "cls"):
        (tmp_path / sub).mkdir()
    (tmp_path / "train.txt").write_text("x\n")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "img" / "x.jpg")
    scipy.io.savemat(tmp_path / "cls" / "x.mat", {"other": np.zeros((8, 8))})
    with pytest.raises(ValueError, match=re.escape(str(tmp_path / "cls" / "x.mat"))):
        scan_dataset("sbd", "train", data_dir=str(tmp_path))


def test_skip_bad_counts_and_reports(tree, caplog):
    (tree / "images" / "bad.png").write_bytes(b"garbage")
    _mask(tree, "bad")
    Image.fromarray(np.zeros((20, 12, 3), np.uint8)).save(tree / "images" / "tall.png")
    _mask(tree, "tall")
    with caplog.at_level(logging.WARNING, logger="fcn_keras.data"):
        ds = _load(tree, skip_bad=True)
        batches = list(ds)
    assert len(batches) == 2  # the two good pairs, nothing else dropped
    report = ds.skip_report
    assert report.count == 2
    assert sorted(f.split(",")[0] for f in report.files) == [
        str(tree / "images" / "bad.png"), str(tree / "images" / "tall.png")]  # fmt: skip
    assert "skipped 2 bad example(s)" in report.summary()
    warnings = [r.getMessage() for r in caplog.records if "skipped bad example" in r.getMessage()]
    assert len(warnings) == 2 and any("bad.png" in w for w in warnings)
    good, found = scan_dataset("folders", "val", skip_bad=True, num_classes=3,
                               image_dir=str(tree / "images"), mask_dir=str(tree / "masks"))  # fmt: skip
    assert good == 2 and found.count == 2


def test_bad_example_error_is_a_value_error():
    assert issubclass(BadExampleError, ValueError)
