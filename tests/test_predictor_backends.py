"""`Predictor`'s engines are backends behind one interface; the onnx engine profiles only where told.

Each engine (`onnx`, `tflite`, `savedmodel`, `keras`) is a `_Backend` with
`load` (opens the artifact, states its input and logits shapes) and
`run(batch)`; the `Predictor` around it validates arguments and images and
owns the model's facts. onnxruntime's profiler writes
`onnxruntime_profile_*.json` into the working directory by default: the
Predictor enables it only with `profile_dir`, and the trace goes there.
"""

import glob
import json
import os

import numpy as np
import pytest

from conftest import randomize_score_layers

NUM_CLASSES = 4


@pytest.fixture(scope="module")
def model():
    import keras

    import fcn_keras

    keras.utils.set_random_seed(0)
    model = fcn_keras.FCN8s(num_classes=NUM_CLASSES, fc_units=16, backbone_weights=None)
    return randomize_score_layers(model, seed=1)


@pytest.fixture(scope="module")
def onnx_path(model, tmp_path_factory):
    from fcn_keras import export

    return export.export_onnx(model, tmp_path_factory.mktemp("onnx") / "m.onnx")


def test_every_engine_has_one_backend_stating_its_precisions():
    from fcn_keras.choices import ENGINES, INFERENCE_PRECISIONS
    from fcn_keras.export import predictor

    assert sorted(predictor._BACKENDS) == sorted(ENGINES)
    for engine, backend in predictor._BACKENDS.items():
        assert issubclass(backend, predictor._Backend) and backend.engine == engine
        assert "float32" in backend.precisions and set(backend.precisions) <= set(INFERENCE_PRECISIONS)
    covered = {p for backend in predictor._BACKENDS.values() for p in backend.precisions}
    assert covered == set(INFERENCE_PRECISIONS)


def test_predictor_runs_its_backend_and_forwards_only_private_reads(model, onnx_path):
    from fcn_keras import export

    image = np.random.default_rng(0).integers(0, 256, (2, 64, 80, 3), dtype=np.uint8)
    for predictor in (export.Predictor(model), export.Predictor(onnx_path)):
        backend = predictor._backend
        assert backend.engine == predictor.engine and backend.input_size == predictor.input_size
        assert backend.logits_shape[-1] == predictor.num_classes == NUM_CLASSES
        np.testing.assert_array_equal(predictor.predict(image), backend.run(image))
    assert predictor._session is backend._session  # engine state read through the Predictor
    with pytest.raises(AttributeError, match="no attribute 'run'"):
        predictor.run  # noqa: B018  (a backend's public names are not the Predictor's)


def test_onnx_profile_goes_to_the_given_folder_never_the_working_directory(
        onnx_path, tmp_path, monkeypatch):  # fmt: skip
    from fcn_keras import export

    monkeypatch.chdir(tmp_path)
    image = np.zeros((64, 64, 3), np.uint8)
    plain = export.Predictor(onnx_path)
    assert plain.session_options.enable_profiling is False
    plain.predict(image)
    with pytest.raises(ValueError, match="is not being profiled: pass profile_dir"):
        plain.end_profiling()
    profiled = export.Predictor(onnx_path, profile_dir=tmp_path / "profiles")
    profiled.predict(image)
    trace = profiled.end_profiling()
    assert os.path.dirname(trace) == str(tmp_path / "profiles")
    assert os.path.basename(trace).startswith("onnxruntime_profile")
    assert any(event.get("cat") == "Node" for event in json.load(open(trace)))
    assert glob.glob(str(tmp_path / "onnxruntime_profile*")) == []  # nothing in the cwd


def test_profile_dir_is_the_onnx_engines_only(model):
    from fcn_keras import export

    with pytest.raises(ValueError, match=r"profile_dir applies to the onnx engine.*keras artifact"):
        export.Predictor(model, profile_dir="profiles")
