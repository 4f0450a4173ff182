"""Tests of the built-in synthetic set and of `load_dataset` / `dataset_info` on it."""

import numpy as np
import pytest
import tensorflow as tf

import fcn_keras
from fcn_keras.data import generate_synthetic
from fcn_keras.data.synthetic import SYNTHETIC_CLASS_NAMES


def test_generate_shapes_dtypes_and_determinism():
    images, masks = generate_synthetic(range(40), image_size=64, seed=3)
    assert images.shape == (40, 64, 64, 3) and images.dtype == np.uint8
    assert masks.shape == (40, 64, 64) and masks.dtype == np.uint8
    again_images, again_masks = generate_synthetic([7, 2, 39], image_size=64, seed=3)
    # Content is addressed by index: order and batch do not matter.
    np.testing.assert_array_equal(again_images, images[[7, 2, 39]])
    np.testing.assert_array_equal(again_masks, masks[[7, 2, 39]])
    other_seed, _ = generate_synthetic([7], image_size=64, seed=4)
    assert not np.array_equal(other_seed[0], images[7])


def test_splits_differ_and_are_deterministic():
    train, _ = generate_synthetic(range(10), image_size=48, split="train")
    val, _ = generate_synthetic(range(10), image_size=48, split="val")
    val2, _ = generate_synthetic(range(10), image_size=48, split="val")
    np.testing.assert_array_equal(val, val2)
    assert not any(np.array_equal(t, v) for t in train for v in val)


def test_class_presence_and_object_share():
    _, masks = generate_synthetic(range(200), image_size=96)
    freq = np.bincount(masks.ravel(), minlength=6) / masks.size
    assert masks.max() <= 5
    # Every class is well represented; objects are a healthy share of the pixels.
    assert (freq[1:] > 0.02).all(), freq
    assert 0.25 <= 1 - freq[0] <= 0.5, freq
    # Most images hold at least two classes besides background... and overlaps happen.
    per_image = [(np.unique(m) > 0).sum() for m in masks]
    assert np.mean(np.array(per_image) >= 2) > 0.6


def test_colour_alone_is_ambiguous():
    """Neighbouring classes share hues, so a colour-only rule cannot be perfect."""
    images, masks = generate_synthetic(range(100), image_size=64)
    hsv = tf.image.rgb_to_hsv(images.astype(np.float32) / 255.0).numpy()[..., 0]
    hues = {c: hsv[masks == c] for c in range(1, 6)}
    # Class 1 (centre hue 0.0) and class 2 (centre 0.2) overlap around hue 0.1.
    assert ((hues[1] > 0.08) & (hues[1] < 0.12)).any() and ((hues[2] > 0.08) & (hues[2] < 0.12)).any()


def test_dataset_info():
    info = fcn_keras.dataset_info("synthetic", num_examples={"train": 50})
    assert isinstance(info, fcn_keras.DatasetInfo)
    assert info.num_classes == 6 and info.class_names == SYNTHETIC_CLASS_NAMES
    assert info.ignore_label == 255 and info.num_examples["train"] == 50
    assert info.num_examples["val"] == 200


def test_load_dataset_train_shapes_and_reproducible():
    kwargs = dict(batch_size=4, crop_size=48, seed=5, num_examples=12, image_size=64)
    first = list(fcn_keras.load_dataset("synthetic", "train", **kwargs))
    second = list(fcn_keras.load_dataset("synthetic", "train", **kwargs))
    assert [tuple(b[0].shape) for b in first] == [(4, 48, 48, 3)] * 3
    assert first[0][0].dtype == tf.uint8 and first[0][1].dtype == tf.int32
    for (a_img, a_mask), (b_img, b_mask) in zip(first, second):
        np.testing.assert_array_equal(a_img.numpy(), b_img.numpy())
        np.testing.assert_array_equal(a_mask.numpy(), b_mask.numpy())
    other = list(fcn_keras.load_dataset("synthetic", "train", **{**kwargs, "seed": 6}))
    assert not np.array_equal(other[0][1].numpy(), first[0][1].numpy())


def test_load_dataset_eval_native_and_ordered():
    ds = fcn_keras.load_dataset("synthetic", "val", batch_size=3, num_examples=7, image_size=32)
    batches = list(ds)
    assert [b[0].shape[0] for b in batches] == [3, 3, 1]
    # The size is known before reading (Keras then needs no pass to find the end of val).
    assert int(ds.cardinality()) == 3
    images = np.concatenate([b[0].numpy() for b in batches])
    expected, masks = generate_synthetic(range(7), image_size=32, split="val")
    np.testing.assert_array_equal(images, expected)  # no augmentation, no shuffling
    np.testing.assert_array_equal(np.concatenate([b[1].numpy() for b in batches]), masks)


def test_unknown_split_and_empty_split():
    with pytest.raises(ValueError, match="no split 'bogus'"):
        fcn_keras.load_dataset("synthetic", "bogus")
    with pytest.raises(ValueError, match="empty"):
        fcn_keras.load_dataset("synthetic", "val", num_examples={"val": 0})
    with pytest.raises(ValueError, match="unknown data source"):
        fcn_keras.load_dataset("nope")


def test_cache_gives_the_same_examples():
    kwargs = dict(batch_size=4, num_examples=8, image_size=32)
    plain = list(fcn_keras.load_dataset("synthetic", "val", **kwargs))
    ds = fcn_keras.load_dataset("synthetic", "val", cache=True, repeat=2, **kwargs)
    cached = list(ds)
    assert len(cached) == 4 and cached[0][1].dtype == tf.int32
    for (a_img, a_mask), (b_img, b_mask) in zip(plain + plain, cached):
        np.testing.assert_array_equal(a_img.numpy(), b_img.numpy())
        np.testing.assert_array_equal(a_mask.numpy(), b_mask.numpy())
