"""Tests of the file-based sources on real files: a VOC tree and an SBD .mat written here,
paired folders with palette-coded masks and label remapping, and CamVid from ../shared."""

import numpy as np
import pytest
import scipy.io
from PIL import Image

import fcn_keras
from fcn_keras.visualize import voc_palette


def _save_palette_png(path, mask):
    image = Image.fromarray(mask.astype(np.uint8), mode="P")
    image.putpalette(voc_palette().ravel().tolist())
    image.save(path)


def _example(rng, height, width, num_classes=21):
    mask = rng.integers(0, num_classes, (height // 4, width // 4))
    mask = np.repeat(np.repeat(mask, 4, 0), 4, 1)
    mask[:2] = 255  # a void border, as VOC draws around objects
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    return image, mask.astype(np.uint8)


@pytest.fixture
def voc_dir(tmp_path):
    """A VOC2012 tree with 3 train and 2 val images of different sizes."""
    root = tmp_path / "VOCdevkit" / "VOC2012"
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (root / sub).mkdir(parents=True)
    rng = np.random.default_rng(0)
    truth = {}
    for split, names in {"train": ["a", "b", "c"], "val": ["d", "e"]}.items():
        (root / "ImageSets/Segmentation" / f"{split}.txt").write_text("\n".join(names) + "\n")
        for i, name in enumerate(names):
            image, mask = _example(rng, 32 + 8 * i, 40 + 4 * i)
            Image.fromarray(image).save(root / "JPEGImages" / f"{name}.jpg", quality=95)
            _save_palette_png(root / "SegmentationClass" / f"{name}.png", mask)
            truth[name] = mask
    return tmp_path, truth


def test_voc_reads_palette_indices_not_colours(voc_dir):
    data_dir, truth = voc_dir
    info = fcn_keras.dataset_info("voc", data_dir=str(data_dir))
    assert info.num_classes == 21 and info.class_names[15] == "person"
    assert info.num_examples == {"train": 3, "val": 2}
    ds = fcn_keras.load_dataset("voc", "val", batch_size=1, data_dir=str(data_dir))
    masks = [m.numpy()[0] for _, m in ds]
    np.testing.assert_array_equal(masks[0], truth["d"])
    np.testing.assert_array_equal(masks[1], truth["e"])


def test_voc_eval_padded_batches_use_ignore_label(voc_dir):
    data_dir, truth = voc_dir
    ds = fcn_keras.load_dataset("voc", "val", batch_size=2, data_dir=str(data_dir))
    images, masks = next(iter(ds))
    assert tuple(images.shape) == (2, 40, 44, 3) and tuple(masks.shape) == (2, 40, 44)
    first = masks.numpy()[0]
    np.testing.assert_array_equal(first[:32, :40], truth["d"])
    assert (first[32:] == 255).all() and (first[:, 40:] == 255).all()
    assert (images.numpy()[0, 32:] == 0).all()


def test_voc_train_pipeline_and_custom_ignore_label(voc_dir):
    data_dir, _ = voc_dir
    ds = fcn_keras.load_dataset("voc", "train", batch_size=3, crop_size=24, seed=0,
                                ignore_label=21, cache=True, data_dir=str(data_dir))  # fmt: skip
    images, masks = next(iter(ds))
    assert tuple(images.shape) == (3, 24, 24, 3)
    values = set(np.unique(masks.numpy()))
    assert values <= set(range(22)) and 255 not in values  # VOC's void became 21


def test_sbd_mat_files(tmp_path):
    rng = np.random.default_rng(1)
    for sub in ("img", "cls"):
        (tmp_path / "dataset" / sub).mkdir(parents=True)
    (tmp_path / "dataset" / "train.txt").write_text("2008_000001\n")
    image, mask = _example(rng, 24, 28)
    mask[mask == 255] = 0  # SBD has no void
    Image.fromarray(image).save(tmp_path / "dataset" / "img" / "2008_000001.jpg")
    scipy.io.savemat(tmp_path / "dataset" / "cls" / "2008_000001.mat",
                     {"GTcls": {"Segmentation": mask, "Boundaries": np.zeros(1),
                                "CategoriesPresent": np.unique(mask)}})  # fmt: skip
    ds = fcn_keras.load_dataset("sbd", "train", batch_size=1, augment=False,
                                data_dir=str(tmp_path))  # fmt: skip
    images, masks = next(iter(ds))
    assert tuple(images.shape) == (1, 24, 28, 3)
    np.testing.assert_array_equal(masks.numpy()[0], mask)


def test_folders_palette_coded_masks_and_label_map(tmp_path):
    colours = {(0, 0, 0): 0, (255, 0, 0): 1, (0, 255, 0): 2, (0, 0, 255): 3}
    rng = np.random.default_rng(2)
    ids = rng.integers(0, 4, (16, 20))
    rgb = np.array(list(colours))[ids].astype(np.uint8)
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    Image.fromarray(rng.integers(0, 256, (16, 20, 3), dtype=np.uint8)).save(tmp_path / "images/x.png")
    Image.fromarray(rgb).save(tmp_path / "labels/x_mask.png")
    ds = fcn_keras.load_dataset("folders", "val", batch_size=1, num_classes=3,
                                image_dir=str(tmp_path / "images"),
                                mask_dir=str(tmp_path / "labels"), mask_suffix="_mask",
                                palette=colours, label_map={3: 255})  # fmt: skip
    mask = next(iter(ds))[1].numpy()[0]
    expected = np.where(ids == 3, 255, ids)
    np.testing.assert_array_equal(mask, expected)


def test_folders_list_file_and_grayscale_rgba_images(tmp_path):
    rng = np.random.default_rng(3)
    gray = rng.integers(0, 256, (12, 10), dtype=np.uint8)
    rgba = np.dstack([rng.integers(0, 256, (12, 10, 3)), np.full((12, 10), 255)]).astype(np.uint8)
    Image.fromarray(gray, "L").save(tmp_path / "g.png")
    Image.fromarray(rgba, "RGBA").save(tmp_path / "r.png")
    Image.fromarray(np.ones((12, 10), np.uint8), "L").save(tmp_path / "m.png")
    (tmp_path / "list.txt").write_text("# image mask\ng.png m.png\nr.png m.png\n")
    ds = fcn_keras.load_dataset("folders", "val", batch_size=2, num_classes=2,
                                list_file=str(tmp_path / "list.txt"))  # fmt: skip
    images = next(iter(ds))[0].numpy()
    np.testing.assert_array_equal(images[0], np.repeat(gray[..., None], 3, -1))  # gray -> RGB
    np.testing.assert_array_equal(images[1], rgba[..., :3])  # opaque alpha dropped


def test_camvid_subset(camvid_dir):
    info = fcn_keras.dataset_info("camvid", data_dir=str(camvid_dir))
    assert info.num_classes == 11 and info.num_examples == {"train": 367, "val": 101, "test": 233}
    ds = fcn_keras.load_dataset("camvid", "val", batch_size=2, data_dir=str(camvid_dir))
    images, masks = next(iter(ds))
    assert tuple(images.shape) == (2, 360, 480, 3) and tuple(masks.shape) == (2, 360, 480)
    first = open(camvid_dir / "val.txt").readline().split()[1]
    raw = np.asarray(Image.open(camvid_dir / first))
    np.testing.assert_array_equal(masks.numpy()[0], np.where(raw == 11, 255, raw))
    train = fcn_keras.load_dataset("camvid", "train", batch_size=4, crop_size=(96, 128), seed=0,
                                   data_dir=str(camvid_dir))  # fmt: skip
    images, masks = next(iter(train))
    assert tuple(images.shape) == (4, 96, 128, 3)
    assert set(np.unique(masks.numpy())) <= set(range(11)) | {255}


def test_camvid_keep_11_as_ignore(camvid_dir):
    ds = fcn_keras.load_dataset("camvid", "val", batch_size=1, data_dir=str(camvid_dir),
                                void_ids=(), ignore_label=11)  # fmt: skip
    mask = next(iter(ds))[1].numpy()
    assert 11 in mask and 255 not in mask
