"""Tests of the joint augmentation: padding with the ignore label, nearest-neighbour masks,
flip applied to image and mask together, padded batches and sharding."""

import numpy as np
import tensorflow as tf

import fcn_keras
from fcn_keras.data import Augment
from fcn_keras.data.transforms import train_transform


def _seed(i):
    return tf.constant([i, 17], tf.int64)


def test_crop_pads_mask_with_ignore_never_zero():
    image = np.full((20, 30, 3), 9, np.uint8)
    mask = np.ones((20, 30), np.int32)  # class 1 only: any 0 would be padding
    aug = Augment(scale_range=(1.0, 1.0), flip=False)
    out_img, out_mask = train_transform(image, mask, _seed(0), augment=aug, crop_size=(64, 48),
                                        ignore_label=255, pad_value=(1, 2, 3))  # fmt: skip
    out_img, out_mask = out_img.numpy(), out_mask.numpy()
    assert out_img.shape == (64, 48, 3) and out_mask.shape == (64, 48)
    assert set(np.unique(out_mask)) == {1, 255}
    assert (out_mask == 1).sum() == 20 * 30  # nothing lost
    np.testing.assert_array_equal(out_img[out_mask == 255], np.tile([1, 2, 3], ((out_mask == 255).sum(), 1)))
    assert (out_img[out_mask == 1] == 9).all()


def test_mask_resize_is_nearest_neighbour():
    rng = np.random.default_rng(0)
    mask = rng.choice([2, 5, 7], size=(37, 41)).astype(np.int32)
    image = rng.integers(0, 256, (37, 41, 3), dtype=np.uint8)
    aug = Augment(scale_range=(0.5, 2.0))
    sizes = set()
    for i in range(12):
        _, out = train_transform(image, mask, _seed(i), augment=aug, crop_size=None)
        out = out.numpy()
        sizes.add(out.shape)
        assert set(np.unique(out)) <= {2, 5, 7}
    assert len(sizes) > 6  # the scale really varies


def test_flip_and_crop_move_image_and_mask_together():
    rng = np.random.default_rng(1)
    mask = np.repeat(np.repeat(rng.integers(0, 6, (8, 10)), 6, 0), 6, 1).astype(np.int32)
    image = np.stack([mask * 40, 255 - mask * 40, np.zeros_like(mask)], -1).astype(np.uint8)
    aug = Augment(scale_range=(1.0, 1.0), flip=True)
    flipped = 0
    for i in range(10):
        out_img, out_mask = train_transform(image, mask, _seed(i), augment=aug, crop_size=32)
        out_img, out_mask = out_img.numpy(), out_mask.numpy()
        np.testing.assert_array_equal(out_img[..., 0], out_mask * 40)  # colour encodes class
        # Locate the crop in the original or its mirror image.
        for candidate, is_flip in ((mask, False), (mask[:, ::-1], True)):
            for y in range(mask.shape[0] - 31):
                for x in range(mask.shape[1] - 31):
                    if np.array_equal(candidate[y : y + 32, x : x + 32], out_mask):
                        flipped += is_flip
                        break
                else:
                    continue
                break
    assert 1 <= flipped <= 9


def test_scaled_image_and_mask_stay_aligned():
    rng = np.random.default_rng(5)
    mask = np.repeat(np.repeat(rng.integers(0, 6, (4, 4)), 24, 0), 24, 1).astype(np.int32)
    image = np.stack([mask * 40] * 3, -1).astype(np.uint8)
    aug = Augment(scale_range=(0.6, 1.8))
    for i in range(6):
        out_img, out_mask = train_transform(image, mask, _seed(i), augment=aug, crop_size=40)
        out_img, out_mask = out_img.numpy(), out_mask.numpy()
        valid = out_mask != 255
        red = out_img[..., 0].astype(int)
        aligned = (np.abs(red - out_mask * 40) <= 2)[valid].mean()
        mirrored = (np.abs(red[:, ::-1] - out_mask * 40) <= 2)[valid[:, ::-1] & valid].mean()
        # Only block borders blend bilinearly; a misaligned mask would agree far less.
        assert aligned > 0.7, aligned
        assert aligned > mirrored or mirrored == 1.0


def test_photometric_changes_image_only():
    image = np.random.default_rng(2).integers(0, 256, (40, 40, 3), dtype=np.uint8)
    mask = np.random.default_rng(3).integers(0, 4, (40, 40)).astype(np.int32)
    plain = train_transform(image, mask, _seed(4), augment=Augment(), crop_size=32)
    jitter = train_transform(image, mask, _seed(4), augment=Augment(photometric=True), crop_size=32)
    np.testing.assert_array_equal(plain[1].numpy(), jitter[1].numpy())
    assert not np.array_equal(plain[0].numpy(), jitter[0].numpy())


def test_uncropped_train_batches_are_padded_with_ignore():
    ds = fcn_keras.load_dataset("synthetic", "train", batch_size=4, seed=0, num_examples=4,
                                image_size=32, augment={"scale_range": (0.5, 1.5)})  # fmt: skip
    images, masks = next(iter(ds))
    masks = masks.numpy()
    # Native (rescaled) sizes differ, so smaller examples are padded with the ignore label.
    assert masks.shape[1] > 16 and (masks == 255).any()
    assert images.dtype == tf.uint8


def test_sharding_with_input_context():
    def shard(pipeline_id):
        ctx = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=pipeline_id,
                                         num_replicas_in_sync=2)  # fmt: skip
        ds = fcn_keras.load_dataset("synthetic", "val", batch_size=4, num_examples=10,
                                    image_size=32, input_context=ctx)  # fmt: skip
        batches = list(ds)
        assert all(b[0].shape[0] <= 2 for b in batches)  # per-replica batch: 4 / 2
        return np.concatenate([b[0].numpy() for b in batches])

    first, second = shard(0), shard(1)
    assert len(first) == 5 and len(second) == 5
    keys = {im.tobytes() for im in first} | {im.tobytes() for im in second}
    assert len(keys) == 10


def test_distribute_datasets_from_function():
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    dist = strategy.distribute_datasets_from_function(
        lambda ctx: fcn_keras.load_dataset("synthetic", "train", batch_size=2, crop_size=24,
                                           num_examples=4, image_size=32, seed=0,
                                           input_context=ctx))  # fmt: skip
    images, masks = next(iter(dist))
    assert tuple(images.shape) == (2, 24, 24, 3) and tuple(masks.shape) == (2, 24, 24)


def test_crop_path_equals_rescale_then_crop():
    rng = np.random.default_rng(7)
    mask = rng.integers(0, 9, (10, 12)).astype(np.int32)
    yy, xx = np.mgrid[0:10, 0:12]
    image = np.stack([xx * 20, yy * 25, xx * 5 + yy * 10], -1).astype(np.uint8)  # smooth ramps
    aug = Augment(scale_range=(2.0, 2.0), flip=False)
    out_img, out_mask = train_transform(image, mask, _seed(0), augment=aug, crop_size=(20, 24))
    np.testing.assert_array_equal(out_mask.numpy(), np.repeat(np.repeat(mask, 2, 0), 2, 1))
    reference = tf.image.resize(image.astype(np.float32), (20, 24), method="bilinear").numpy()
    # Same half-pixel bilinear sampling, but the border samples are clamped into the
    # image and the positions in between re-spaced: shifts below 0.25 px, so at most
    # 0.25 * 25 (the steepest ramp per pixel) + 1 (rounding) grey levels.
    assert np.abs(out_img.numpy().astype(float) - np.round(reference)).max() <= 7.25
