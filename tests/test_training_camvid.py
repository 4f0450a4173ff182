"""Learning on real data: fine-tune an FCN-8s from the pretrained VGG16 on 4 CamVid images.

Uses ../shared (skipped without it): the ImageNet-pretrained VGG16 notop
backbone and 4 CamVid training images downscaled to 120x160 (images
bilinear, masks nearest; void id 11 ignored). The VGG16 convolutions are
frozen (the pretrained features), fc6/fc7 (512 wide), the score layers and
the upsampling are learned (frozen convolutions also make the backward pass
cheap); the net must fit its 4 training images:
pixel accuracy >= 0.9 on them (the majority-class baseline is far lower).
"""

import numpy as np
import pytest
import tensorflow as tf

NUM_CLASSES, IGNORE = 11, 11
SIZE = (120, 160)
# Full-batch Adam steps. Measured with the ImageNet backbone (seed 0): pixel accuracy
# 0.893 after 30 steps, 0.914 after 40, 0.926 after 50, 0.933 after 60.
STEPS = 50


def _camvid_examples(camvid_dir, count=4):
    pairs = [line.split() for line in (camvid_dir / "train.txt").read_text().splitlines()]
    images, masks = [], []
    for image_path, mask_path in pairs[:: len(pairs) // count][:count]:
        image = tf.io.decode_png(tf.io.read_file(str(camvid_dir / image_path)), channels=3)
        mask = tf.io.decode_png(tf.io.read_file(str(camvid_dir / mask_path)), channels=1)
        images.append(tf.cast(tf.image.resize(image, SIZE, antialias=True), tf.uint8).numpy())
        masks.append(tf.image.resize(mask, SIZE, method="nearest")[..., 0].numpy())
    return np.stack(images), np.stack(masks).astype("int32")


@pytest.mark.slow
@pytest.mark.shared
def test_fcn8s_from_pretrained_vgg16_fits_four_camvid_images(camvid_dir, vgg16_notop_weights,
                                                             tmp_path):  # fmt: skip
    import keras

    import fcn_keras
    from fcn_keras.evaluation import evaluate

    keras.utils.set_random_seed(0)
    images, masks = _camvid_examples(camvid_dir)
    assert set(np.unique(masks)) <= set(range(NUM_CLASSES + 1))
    data = tf.data.Dataset.from_tensor_slices((images, masks)).batch(4).repeat()

    model = fcn_keras.build_fcn("fcn8s", num_classes=NUM_CLASSES,
                                backbone_weights=str(vgg16_notop_weights), fc_units=512,
                                dropout=0.0, trainable_upsampling=True)  # fmt: skip
    for layer in model.layers:
        if layer.name.startswith("block"):
            layer.trainable = False
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=fcn_keras.SegmentationCrossEntropy(ignore_label=IGNORE))
    model.fit(data, steps_per_epoch=STEPS, epochs=1, verbose=0)
    report = evaluate(model, [(images, masks)], num_classes=NUM_CLASSES, ignore_label=IGNORE)
    print(f"CamVid fit: pixel accuracy {report['pixel_accuracy']:.3f}, mean IU "
          f"{report['mean_iu']:.3f}, baseline pixel accuracy "
          f"{report['baseline']['pixel_accuracy']:.3f}")
    assert report["baseline"]["pixel_accuracy"] < 0.5
    assert report["pixel_accuracy"] >= 0.9
