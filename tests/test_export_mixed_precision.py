"""A model built (and saved/loaded) under `mixed_bfloat16` or `mixed_float16` exports to every format.

Under a mixed policy the layers compute in half precision; traced as is, the
graph would hold bfloat16/float16 ops (TFLite refuses them, tf2onnx writes an
invalid file). Every exporter must take the weights into a float32 graph, so
the artifacts pass the float32 gates against the float32 rebuild (max
|delta logit| <= 1e-4 x logit scale, argmax agreement >= 99.99%).
"""

import numpy as np
import pytest

from conftest import randomize_score_layers


@pytest.fixture
def policy_scope():
    """Set a global dtype policy for the test body; float32 is restored afterwards."""
    import keras

    def enter(name):
        keras.config.set_dtype_policy(name)

    yield enter
    keras.config.set_dtype_policy("float32")


@pytest.mark.slow
@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_model_exports_float32_artifacts(policy, policy_scope, tmp_path):
    import keras
    import onnx

    import fcn_keras
    from fcn_keras import export

    policy_scope(policy)
    keras.utils.set_random_seed(0)
    built = randomize_score_layers(fcn_keras.FCN8s(num_classes=5, fc_units=16, backbone_weights=None))
    built.save(tmp_path / "mixed.keras")
    keras.config.set_dtype_policy("float32")
    model = keras.saving.load_model(tmp_path / "mixed.keras")  # keeps its layers' mixed policy
    assert model.get_layer("fc6").compute_dtype == policy.split("_")[1]

    rebuilt = export.float32_model(model)
    assert rebuilt is not model and rebuilt.get_layer("fc6").compute_dtype == "float32"
    assert all(layer.compute_dtype == "float32" for layer in rebuilt.layers)
    for a, b in zip(model.get_weights(), rebuilt.get_weights()):
        np.testing.assert_array_equal(a, b)  # variables are float32 under mixed policies: exact copy

    rng = np.random.default_rng(0)
    val = [rng.integers(0, 256, size + (3,), dtype=np.uint8) for size in ((40, 56), (37, 53))]
    train = [rng.integers(0, 256, (40, 56, 3), dtype=np.uint8) for _ in range(2)]
    summary = export.export_all(model, tmp_path / "exports", quantizations=("float32", "int8"),
                                verify_images=val, calibration_images=train)  # fmt: skip
    assert sorted(summary["artifacts"]) == [  # "int8": the int8 TFLite and the int8 ONNX
        "fcn8s.onnx", "fcn8s_float32.tflite", "fcn8s_int8.onnx", "fcn8s_int8.tflite", "fcn8s_savedmodel"]
    report = summary["verification"]
    assert summary["passed"], report.to_markdown()
    for result in report.artifacts:
        if result["precision"] == "float32":
            assert result["vs_keras"]["max_rel_delta"] <= 1e-4, result
            assert result["vs_keras"]["argmax_agreement"] >= 0.9999, result
    onnx_path = summary["artifacts"]["fcn8s.onnx"]
    onnx.checker.check_model(onnx_path, full_check=True)
    proto = onnx.load(onnx_path)
    half = {onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16}
    assert not [i.name for i in proto.graph.initializer if i.data_type in half]
    assert not [n.name for n in proto.graph.node if n.op_type == "Cast"
                and any(a.name == "to" and a.i in half for a in n.attribute)]  # fmt: skip
    # The artifacts compute what the half-precision model computes, to half-precision rounding.
    image = val[0]
    mixed = np.asarray(model(image[None]), dtype=np.float32)[0]
    logits = export.Predictor(onnx_path).predict(image)
    scale = np.abs(logits).max()
    assert scale > 0 and np.abs(mixed - logits).max() <= 0.05 * scale
    assert keras.config.dtype_policy().name == "float32"


def _branch_model():
    """Integer ids in, a layer kept in int32, and float layers named with dtype words (one exactly "bfloat16")."""
    import keras

    ids = keras.Input((6, 7, 3), dtype="int32", name="ids")
    x = keras.layers.Identity(dtype="int32", name="int32_ids")(ids)
    x = keras.layers.Rescaling(1.0 / 255.0, name="bfloat16")(x)
    x = keras.layers.Conv2D(4, 3, padding="same", name="float16_branch")(x)
    return keras.Model(ids, keras.layers.Conv2D(3, 1, name="mixed_float16_head")(x), name="float16_net")


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_float32_rebuild_changes_only_half_precision_dtypes(policy, policy_scope):
    import keras

    from fcn_keras import export

    policy_scope(policy)
    keras.utils.set_random_seed(0)
    mixed = _branch_model()
    keras.config.set_dtype_policy("float32")
    reference = _branch_model()  # the same model built in float32
    reference.set_weights(mixed.get_weights())

    rebuilt = export.float32_model(mixed)
    assert rebuilt.name == "float16_net"
    assert [layer.name for layer in rebuilt.layers] == [layer.name for layer in mixed.layers] == [
        "ids", "int32_ids", "bfloat16", "float16_branch", "mixed_float16_head"]  # fmt: skip
    policies = {layer.name: layer.dtype_policy.name for layer in rebuilt.layers}
    assert policies["int32_ids"] == "int32"  # an integer policy is not a half-precision one
    assert [policies[n] for n in ("bfloat16", "float16_branch", "mixed_float16_head")] == ["float32"] * 3
    assert mixed.get_layer("float16_branch").compute_dtype == policy.split("_")[1]
    assert rebuilt.inputs[0].dtype == "int32"
    ids = np.random.default_rng(0).integers(0, 256, (2, 6, 7, 3)).astype("int32")
    # Same float32 graph and weights as the float32-built model: the same outputs, bit for bit.
    np.testing.assert_array_equal(np.asarray(rebuilt(ids)), np.asarray(reference(ids)))
