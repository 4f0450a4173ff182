"""Every object the package registers with Keras serialization round-trips through one harness.

`keras.saving.get_custom_objects()` lists what `fcn_keras` registered (package
"fcn_keras"); each must have an example instance below, and each instance must
come back from `serialize_keras_object` / `deserialize_keras_object` as the
same class with the same config. Layers (and schedules) are also called on a small input
before and after: the outputs must be identical (same weights, same maths).
Whole models (`FCNModel`, with its `dataset_info`) go through a `.keras` file.
"""

import keras
import numpy as np
import pytest

import fcn_keras
from fcn_keras.training import WarmupSchedule
from fcn_keras.tta import TTARestore, TTAView

# Registered name -> a factory of a non-default example instance.
EXAMPLES = {
    "fcn_keras>CaffePreprocess": lambda: fcn_keras.CaffePreprocess(mean=(100.0, 110.0, 120.0)),
    "fcn_keras>PadToMultiple": lambda: fcn_keras.PadToMultiple(16),
    "fcn_keras>CropToReference": lambda: fcn_keras.CropToReference(),
    "fcn_keras>BilinearUpsampling": lambda: fcn_keras.BilinearUpsampling(),
    "fcn_keras>SegmentationCrossEntropy": lambda: fcn_keras.SegmentationCrossEntropy(
        ignore_label=11, class_weights=[1.0, 2.0]
    ),
    "fcn_keras>FocalLoss": lambda: fcn_keras.FocalLoss(gamma=1.5, ignore_label=11),
    "fcn_keras>LovaszSoftmax": lambda: fcn_keras.LovaszSoftmax(
        per_image=True, classes="all", ignore_label=11, class_weights=[1.0, 2.0]
    ),
    "fcn_keras>DiceLoss": lambda: fcn_keras.DiceLoss(smooth=0.5, classes="all", ignore_label=11),
    "fcn_keras>CrossEntropyLovasz": lambda: fcn_keras.CrossEntropyLovasz(
        lovasz_weight=0.25, per_image=True, ignore_label=11, class_weights=[1.0, 2.0]
    ),
    "fcn_keras>SegmentationMetrics": lambda: fcn_keras.SegmentationMetrics(
        3, ignore_label=11, class_names=["a", "b", "c"]
    ),
    "fcn_keras>DilatedMaxPooling2D": lambda: fcn_keras.DilatedMaxPooling2D(dilation_rate=2),
    "fcn_keras>DenseCRF": lambda: fcn_keras.DenseCRF(
        4, iterations=2, appearance_weight=4.0, compatibility="learned", window=(3, 5), downsample=2
    ),
    "fcn_keras>TTAView": lambda: TTAView(0.75, flip=True),
    "fcn_keras>TTARestore": lambda: TTARestore(1.25, flip=True),
    "fcn_keras>WarmupSchedule": lambda: WarmupSchedule(1e-3, total_steps=100, kind="poly", warmup_steps=5),
}

# Registered classes that are whole models: tested through a .keras file below.
MODELS = {"fcn_keras>FCNModel"}

# Inputs for calling a layer example, by registered name.
_LAYER_INPUTS = {
    "fcn_keras>CaffePreprocess": lambda rng: (rng.uniform(0, 255, (1, 5, 7, 3)).astype("float32"),),
    "fcn_keras>PadToMultiple": lambda rng: (rng.normal(size=(1, 5, 7, 2)).astype("float32"),),
    "fcn_keras>DilatedMaxPooling2D": lambda rng: (rng.normal(size=(1, 9, 11, 2)).astype("float32"),),
    "fcn_keras>DenseCRF": lambda rng: (
        [rng.uniform(0, 255, (1, 5, 7, 3)).astype("float32"), rng.normal(size=(1, 5, 7, 4)).astype("float32")],
    ),
    "fcn_keras>TTAView": lambda rng: (rng.uniform(0, 255, (1, 9, 11, 3)).astype("float32"),),
    "fcn_keras>TTARestore": lambda rng: (
        [rng.normal(size=(1, 11, 14, 4)).astype("float32"), np.zeros((1, 9, 11, 3), "float32")],
    ),
    "fcn_keras>CropToReference": lambda rng: (
        [rng.normal(size=(1, 8, 8, 2)).astype("float32"), np.zeros((1, 5, 7, 3), "float32")],
    ),
}


def assert_round_trip(obj, name):
    """Serialize and deserialize `obj`; same class, same config, and (layers) same outputs."""
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(obj))
    assert type(restored) is type(obj)
    assert restored.get_config() == obj.get_config()
    if isinstance(obj, keras.layers.Layer):
        args = _LAYER_INPUTS[name](np.random.default_rng(0))
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(obj(*args)), keras.ops.convert_to_numpy(restored(*args))
        )
    if isinstance(obj, keras.optimizers.schedules.LearningRateSchedule):
        steps = np.array([0, 3, 6, 50, 120])
        np.testing.assert_array_equal([float(obj(t)) for t in steps], [float(restored(t)) for t in steps])
    return restored


def test_every_registered_object_has_an_example():
    registered = {name for name in keras.saving.get_custom_objects() if name.startswith("fcn_keras>")}
    assert registered == set(EXAMPLES) | MODELS, registered ^ (set(EXAMPLES) | MODELS)


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_registered_object_round_trips(name):
    assert_round_trip(EXAMPLES[name](), name)


@pytest.mark.parametrize("variant", ["fcn32s", "fcn16s", "fcn8s", "fcn8s_atonce"])
def test_fcn_model_round_trips_through_a_keras_file(small_fcn, tmp_path, variant):
    model = small_fcn(variant.removesuffix("_atonce"), trainable_upsampling=variant == "fcn16s",
                      **({"at_once": True} if variant.endswith("_atonce") else {}))  # fmt: skip
    palette = np.random.default_rng(2).integers(0, 256, (5, 3))
    model.dataset_info = fcn_keras.DatasetInfo("toy", 5, [f"c{i}" for i in range(5)], 11, palette)
    model.save(tmp_path / "m.keras")
    restored = keras.saving.load_model(tmp_path / "m.keras")
    assert type(restored) is fcn_keras.FCNModel and fcn_keras.variant_of(restored) == variant
    assert restored.dataset_info == model.dataset_info
    np.testing.assert_array_equal(restored.dataset_info.palette, palette)
    assert [layer.name for layer in restored.layers] == [layer.name for layer in model.layers]
    upscore = restored.get_layer("upscore32" if variant == "fcn32s" else "upscore2")
    assert upscore.trainable == (variant == "fcn16s")
    images = np.random.default_rng(4).integers(0, 256, (1, 37, 45, 3), dtype=np.uint8)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(model(images)), keras.ops.convert_to_numpy(restored(images))
    )


def test_dataset_info_must_fit_the_model():
    model = fcn_keras.FCN32s(num_classes=3, backbone_weights=None, fc_units=8)
    with pytest.raises(ValueError, match="has 6 classes but model 'fcn32s' outputs 3"):
        model.dataset_info = fcn_keras.dataset_info("synthetic")
    with pytest.raises(ValueError, match="received str"):
        model.dataset_info = "synthetic"
    assert model.dataset_info is None
