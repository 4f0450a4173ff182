"""Helper process for tests/test_distribute.py: a few training steps under a tf.distribute strategy.

Usage: distributed_worker.py MODE OUT_NPZ [SINGLE_NPZ]
  MODE mirrored_and_single  both below in one process (OUT_NPZ mirrored, SINGLE_NPZ single)
  MODE single        default strategy, global batch on one device
  MODE mirrored      MirroredStrategy over 2 logical CPU devices (configured here,
                     before TensorFlow initialises its devices)
  MODE multi_worker  MultiWorkerMirroredStrategy, cluster from TF_CONFIG (one CPU each)

Each mode trains the same tiny FCN-32s (fc_units=8, dropout 0, fixed seed) on
the same 8 synthetic-like examples with global batch 4 for 2 steps with SGD,
through `fcn_keras.train`, and saves the final weights, the per-epoch losses
and the SegmentationMetrics confusion matrix of an evaluation to OUT_NPZ.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

GLOBAL_BATCH, NUM_EXAMPLES, SIZE, NUM_CLASSES = 4, 8, 32, 3


def examples():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (NUM_EXAMPLES, SIZE, SIZE, 3)).astype("uint8")
    masks = (images[..., 0] > 128).astype("int32") + (images[..., 1] > 200).astype("int32")
    return images, masks


def dataset_fn(input_context=None):
    images, masks = examples()
    data = tf.data.Dataset.from_tensor_slices((images, masks))
    batch = GLOBAL_BATCH
    if input_context is not None:
        data = data.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
        batch = input_context.get_per_replica_batch_size(GLOBAL_BATCH)
    # Repeat and give steps_per_epoch: a distributed dataset of unknown length ends with
    # an empty step that would count in the epoch's mean loss (and move momentum).
    return data.batch(batch, drop_remainder=True).repeat()


def _take(distributed, steps):
    iterator = iter(distributed)
    return [next(iterator) for _ in range(steps)]


def main(mode, out_path):
    import fcn_keras
    from fcn_keras.distribute import make_strategy
    from fcn_keras.metrics import SegmentationMetrics

    if mode == "mirrored":
        if len(tf.config.list_logical_devices("CPU")) < 2:
            cpu = tf.config.list_physical_devices("CPU")[0]
            tf.config.set_logical_device_configuration(
                cpu, [tf.config.LogicalDeviceConfiguration()] * 2
            )
        strategy = make_strategy("mirrored", devices=["/cpu:0", "/cpu:1"])
    else:
        strategy = make_strategy("multi_worker" if mode == "multi_worker" else "default")
    model, history = fcn_keras.train(
        "fcn32s", dataset_fn, num_classes=NUM_CLASSES, out_dir=out_path + ".run",
        strategy=strategy, epochs=2, steps_per_epoch=2, fc_units=8, dropout=0.0, optimizer="sgd",
        learning_rate=0.05, momentum=0.9, seed=1, verbose=0, tensorboard=False,
        backup=False,
    )  # fmt: skip
    # A metric updated under the strategy: the replicas' confusion matrices must add up.
    with strategy.scope():
        metric = SegmentationMetrics(NUM_CLASSES)

    @tf.function
    def step(x, y):
        metric.update_state(y, model(x, training=False))

    if mode == "single":
        for x, y in dataset_fn().take(2):
            step(x, y)
    else:
        for x, y in _take(strategy.distribute_datasets_from_function(dataset_fn), 2):
            strategy.run(step, args=(x, y))
    images, masks = examples()
    np.savez(out_path, *[w.numpy() for w in model.weights], loss=np.array(history.history["loss"]),
             confusion=metric.confusion_matrix(), predictions=model.predict(images, verbose=0),
             replicas=strategy.num_replicas_in_sync)  # fmt: skip


if __name__ == "__main__":
    if sys.argv[1] == "mirrored_and_single":
        # One process for both (saves a TensorFlow start-up): the single-device
        # reference runs first, under the default strategy on /cpu:0.
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2
        )
        main("single", sys.argv[3])
        main("mirrored", sys.argv[2])
    else:
        main(sys.argv[1], sys.argv[2])
