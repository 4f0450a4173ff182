"""TFDS source tested offline with `tfds.testing.mock_data`: feature keys, label remap, sizes."""

import numpy as np
import pytest
import tensorflow as tf

import fcn_keras

tfds = pytest.importorskip("tensorflow_datasets")


def _pet_examples(*args, **kwargs):
    """Hand-made oxford_iiit_pet-like examples (trimap 1 pet, 2 background, 3 border)."""
    trimap = np.array([[1, 2, 3, 2], [2, 2, 1, 3], [3, 1, 1, 2]], np.uint8)
    examples = {
        "image": np.stack([np.full((3, 4, 3), 10 * i, np.uint8) for i in range(3)]),
        "segmentation_mask": np.stack([trimap[..., None]] * 3),
        "file_name": np.array([b"a.jpg", b"b.jpg", b"c.jpg"]),
    }
    return tf.data.Dataset.from_tensor_slices(examples)


def test_oxford_pet_preset_remaps_trimap():
    with tfds.testing.mock_data(as_dataset_fn=_pet_examples):
        info = fcn_keras.dataset_info("tfds:oxford_iiit_pet")
        ds = fcn_keras.load_dataset("tfds:oxford_iiit_pet", "test", batch_size=3)
        images, masks = next(iter(ds))
    assert info.num_classes == 2 and info.class_names == ("background", "pet")
    expected = np.array([[1, 0, 255, 0], [0, 0, 1, 255], [255, 1, 1, 0]])
    np.testing.assert_array_equal(masks.numpy(), np.stack([expected] * 3))
    assert images.dtype == tf.uint8 and tuple(images.shape) == (3, 3, 4, 3)


def test_mock_data_sizes_differ_error_or_nearest_resize():
    # mock_data draws image and mask sizes independently, and values in [0, max_value).
    label_map = {0: 0, 1: 1, 2: "ignore"}
    with tfds.testing.mock_data(num_examples=4, max_value=3):
        with pytest.raises(tf.errors.InvalidArgumentError, match="expected the same size"):
            list(fcn_keras.load_dataset("tfds:oxford_iiit_pet", "train", batch_size=2,
                                        crop_size=16, seed=0, label_map=label_map))  # fmt: skip
        ds = fcn_keras.load_dataset("tfds:oxford_iiit_pet", "train", batch_size=2, crop_size=16,
                                    seed=0, label_map=label_map, mask_resize="nearest")  # fmt: skip
        batches = list(ds)
    assert sum(b[0].shape[0] for b in batches) == 4
    values = set(np.unique(np.concatenate([b[1].numpy().ravel() for b in batches])))
    assert values <= {0, 1, 255}


def test_tfds_values_outside_range_are_named_and_skippable():
    with tfds.testing.mock_data(num_examples=3, max_value=3):
        # No remap (label_map={}): mock values 0..2, but the preset has 2 classes -> 2 is bad.
        kwargs = dict(mask_resize="nearest", label_map={})
        with pytest.raises(tf.errors.InvalidArgumentError, match=r"class id\(s\) 2 outside \[0, 2\)"):
            list(fcn_keras.load_dataset("tfds:oxford_iiit_pet", "test", **kwargs))
        ds = fcn_keras.load_dataset("tfds:oxford_iiit_pet", "test", skip_bad=True, **kwargs)
        kept = sum(b[0].shape[0] for b in ds)
    assert kept + ds.skip_report.count == 3 and ds.skip_report.count >= 1
    assert all(f.startswith("tfds:oxford_iiit_pet[test]") for f in ds.skip_report.files)


def test_tfds_feature_keys_checked():
    with tfds.testing.mock_data(as_dataset_fn=_pet_examples):
        with pytest.raises(ValueError, match="features \\['trimap'\\] not found"):
            fcn_keras.load_dataset("tfds:oxford_iiit_pet", "test",
                                   feature_keys={"image": "image", "mask": "trimap"})  # fmt: skip
