"""The dense CRF (`fcn_keras.DenseCRF`, `with_crf`): exactness, behaviour, gradients, training, export, CLI.

The oracle is `tests/helpers/dense_crf_reference.py`, the exact O(N^2)
fully connected CRF in float64. With a window covering the whole image and
`downsample=1` the layer computes the same sums in float32 (in another
order): agreement to 1e-4 of the logit change is float32 rounding (observed
~1e-6). The rest checks behaviour with numbers: convergence, a fixed point,
boundaries pulled onto colour edges, gradients against finite differences
(float64 layer), `model.fit` with the FCN frozen and, in the package's
training loop under bfloat16, with the FCN and the CRF together, `.keras` round trips,
export parity through `fcn_keras.export.export_all` (SavedModel, TFLite,
ONNX, odd sizes) and `fcn-keras evaluate --crf`.
"""

import json
import os
import sys

import keras
import numpy as np
import pytest

import fcn_keras
from conftest import assert_close, randomize_score_layers
from fcn_keras.crf import DenseCRF, load_crf_settings, save_crf_settings, with_crf

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "helpers"))
from dense_crf_reference import dense_crf  # noqa: E402

H, W = 24, 32
WHOLE = (2 * H - 1, 2 * W - 1)  # a window reaching every pixel of an H x W image from any pixel


def _two_colour_image(edge=16, noise=6.0, seed=0):
    """A red left part and a blue right part (columns >= edge), with mild pixel noise."""
    rng = np.random.default_rng(seed)
    image = np.empty((H, W, 3), np.float32)
    image[:, :edge] = (200, 40, 40)
    image[:, edge:] = (40, 40, 200)
    return np.clip(image + rng.normal(0, noise, image.shape), 0, 255).astype(np.float32)


def _refine(crf, image, logits):
    return np.asarray(crf([image[None], logits[None]]))[0]


# === Exactness against the O(N^2) dense CRF ===


def test_one_step_with_a_whole_image_window_is_the_exact_dense_crf():
    rng = np.random.default_rng(0)
    image = _two_colour_image()
    image[5:15, 3:9] = (30, 200, 30)  # a third colour
    logits = rng.normal(0, 2, (H, W, 5)).astype(np.float32)
    options = dict(appearance_weight=4.0, appearance_xy=8.0, appearance_rgb=20.0,
                   smoothness_weight=2.0, smoothness_xy=2.0)  # fmt: skip
    refined = _refine(DenseCRF(5, iterations=1, window=WHOLE, downsample=1, **options), image, logits)
    expected = dense_crf(image, logits, iterations=1, **options)
    change = np.abs(expected - logits).max()
    assert change > 1.0  # the step does something
    np.testing.assert_allclose(refined, expected, atol=1e-4 * change, rtol=0)


def test_learned_compatibility_and_unnormalised_steps_are_exact_too():
    # Small image (10 x 12, whole window 19 x 23), 3 steps, a non-Potts matrix, Algorithm 1's
    # plain sums, one kernel off; the tolerance is float32 rounding of logits of size ~10.
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (10, 12, 3)).astype(np.float32)
    logits = rng.normal(0, 2, (10, 12, 4)).astype(np.float32)
    matrix = rng.uniform(0, 1.5, (4, 4))
    for options in (dict(compatibility=matrix.tolist(), normalize=True, smoothness_weight=0.0),
                     dict(normalize=False, appearance_weight=0.05, smoothness_weight=0.1)):  # fmt: skip
        crf = DenseCRF(4, iterations=3, window=(19, 23), downsample=1, appearance_xy=5.0,
                       appearance_rgb=30.0, **options)  # fmt: skip
        compatibility = options.pop("compatibility", None)
        expected = dense_crf(image, logits, iterations=3, appearance_xy=5.0, appearance_rgb=30.0,
                             compatibility=compatibility, **options)  # fmt: skip
        assert_close(_refine(crf, image, logits), expected, 2e-5)


def test_truncated_and_downsampled_crf_stays_close_to_the_exact_one():
    # The approximation's error on a small two-colour scene (figures for CamVid are in docs/crf.md):
    # the labels agree with the exact CRF on >= 97% of the pixels.
    rng = np.random.default_rng(2)
    image = _two_colour_image(edge=16)
    truth = np.zeros((H, W), int)
    truth[:, 16:] = 1
    logits = (3.0 * np.eye(3)[truth] + rng.normal(0, 1.5, (H, W, 3))).astype(np.float32)
    exact = dense_crf(image, logits, iterations=5, appearance_xy=10.0, smoothness_xy=3.0)
    for window, downsample in ((9, 1), (5, 2), (3, 4)):
        crf = DenseCRF(3, window=window, downsample=downsample, appearance_xy=10.0)
        agreement = (_refine(crf, image, logits).argmax(-1) == exact.argmax(-1)).mean()
        assert agreement >= 0.97, (window, downsample, agreement)


# === Behaviour ===


def test_mean_field_iterations_converge():
    # The largest logit change between consecutive iterations shrinks: for an FCN-like unary (the
    # truth plus noise) with the default weights within 3 steps, and for a pure-noise unary under
    # weaker weights more slowly. (Parallel mean-field updates can oscillate instead when the
    # weights dwarf a unary with no preference, e.g. the defaults on pure noise; see docs/crf.md.)
    rng = np.random.default_rng(3)
    image = _two_colour_image()
    truth = np.zeros((H, W), int)
    truth[:, 16:] = 1
    cases = (((3.0 * np.eye(4)[truth] + rng.normal(0, 1.5, (H, W, 4))), {}, 0.01),
             (rng.normal(0, 2, (H, W, 4)), dict(appearance_weight=3.0, smoothness_weight=1.0), 0.2))  # fmt: skip
    for logits, options, ratio in cases:
        logits = logits.astype(np.float32)
        outputs = [_refine(DenseCRF(4, iterations=t, window=5, downsample=1, **options), image, logits)
                   for t in range(1, 8)]  # fmt: skip
        changes = [float(np.abs(b - a).max()) for a, b in zip(outputs, outputs[1:])]
        assert all(later <= earlier + 1e-6 for earlier, later in zip(changes, changes[1:])), changes
        assert changes[-1] < ratio * changes[0], changes


@pytest.mark.parametrize("downsample", [1, 4])
def test_a_confident_unary_on_a_uniform_image_is_a_fixed_point(downsample):
    image = np.full((23, 31, 3), 120.0, np.float32)  # odd sizes: partial border cells
    logits = np.zeros((23, 31, 5), np.float32)
    logits[..., 2] = 8.0
    crf = DenseCRF(5, downsample=downsample)
    refined = _refine(crf, image, logits)
    assert (refined.argmax(-1) == 2).all()
    # Potts, normalised: each class loses at most w1 + w2 logits.
    bound = crf.appearance_weight + crf.smoothness_weight
    assert np.abs(refined - logits).max() <= bound * (1 + 1e-5)
    assert np.abs(refined[..., 2] - logits[..., 2]).max() < 0.01  # the winner keeps its logit
    # One more iteration changes nothing: a fixed point.
    more = _refine(DenseCRF(5, iterations=6, downsample=downsample), image, logits)
    assert_close(more, refined, 2e-5)  # float32 rounding of logits up to 8


@pytest.mark.parametrize("window, downsample", [(9, 1), (7, 4)])
def test_a_blurred_noisy_boundary_is_pulled_onto_the_colour_edge(window, downsample):
    # FCN-like unary: the left/right boundary 3 pixels right of the colour edge, plus noise.
    rng = np.random.default_rng(4)
    image = _two_colour_image(edge=16)
    truth = np.zeros((H, W), int)
    truth[:, 16:] = 1
    predicted = np.zeros((H, W), int)
    predicted[:, 19:] = 1
    logits = (2.0 * np.eye(2)[predicted] + rng.normal(0, 1.0, (H, W, 2))).astype(np.float32)
    before = int((logits.argmax(-1) != truth).sum())
    refined = _refine(DenseCRF(2, window=window, downsample=downsample), image, logits)
    after = int((refined.argmax(-1) != truth).sum())
    assert before >= 3 * H and after <= before // 4, (before, after)


# === Gradients ===


def _loss(crf, image, logits, probe):
    return float(np.sum(np.asarray(crf([image[None], logits[None]]))[0] * probe))


def _loss_and_gradients(crf, image, logits, probe):
    import tensorflow as tf

    logits = tf.constant(logits)
    with tf.GradientTape() as tape:
        tape.watch(logits)
        loss = tf.reduce_sum(crf([image[None], logits[None]])[0] * probe)
    variables = [v.value for v in crf.trainable_variables]
    return float(loss), tape.gradient(loss, variables + [logits])


def test_gradients_match_finite_differences_for_every_parameter_and_the_unary():
    rng = np.random.default_rng(5)
    image = rng.integers(0, 256, (5, 6, 3)).astype("float64")
    logits = rng.normal(0, 1, (5, 6, 3))
    probe = rng.normal(0, 1, (5, 6, 3))
    crf = DenseCRF(3, iterations=2, window=3, downsample=1, compatibility="learned", dtype="float64",
                   appearance_xy=3.0, appearance_rgb=40.0, appearance_weight=2.0)  # fmt: skip
    _, gradients = _loss_and_gradients(crf, image, logits, probe)
    names = [v.name for v in crf.trainable_variables]
    assert sorted(names) == sorted(["log_appearance_weight", "log_appearance_xy", "log_appearance_rgb",
                                    "log_smoothness_weight", "log_smoothness_xy", "compatibility"])  # fmt: skip
    step = 1e-6
    for variable, gradient in zip(crf.trainable_variables, gradients):
        value = np.asarray(variable.numpy())
        gradient = np.asarray(gradient)
        assert np.abs(gradient).max() > 0, variable.name
        for index in np.ndindex(value.shape):
            shifted = []
            for sign in (1, -1):
                moved = value.copy()
                moved[index] += sign * step
                variable.assign(moved)
                shifted.append(_loss(crf, image, logits, probe))
            variable.assign(value)
            numeric = (shifted[0] - shifted[1]) / (2 * step)
            assert abs(numeric - gradient[index]) <= 1e-6 + 1e-5 * abs(numeric), (variable.name, index)
    unary_gradient = np.asarray(gradients[-1])
    for index in [(0, 0, 0), (2, 3, 1), (4, 5, 2)]:
        moved = [logits.copy(), logits.copy()]
        moved[0][index] += step
        moved[1][index] -= step
        numeric = (_loss(crf, image, moved[0], probe) - _loss(crf, image, moved[1], probe)) / (2 * step)
        assert abs(numeric - unary_gradient[index]) <= 1e-6 + 1e-5 * abs(numeric), index


def test_gradients_flow_through_the_downsampled_grid():
    rng = np.random.default_rng(6)
    image = rng.integers(0, 256, (13, 17, 3)).astype("float32")
    crf = DenseCRF(3, downsample=4, window=3, compatibility="learned")
    _, gradients = _loss_and_gradients(crf, image, rng.normal(0, 1, (13, 17, 3)).astype("float32"),
                                       rng.normal(0, 1, (13, 17, 3)).astype("float32"))  # fmt: skip
    for name, gradient in zip([v.name for v in crf.trainable_variables] + ["logits"], gradients):
        gradient = np.asarray(gradient)
        assert np.all(np.isfinite(gradient)) and np.abs(gradient).max() > 0, name


# === with_crf: training, saving ===


def _tiny_fcn(num_classes=6, seed=0):
    keras.utils.set_random_seed(seed)
    model = fcn_keras.FCN8s(num_classes=num_classes, fc_units=16, backbone_weights=None)
    return randomize_score_layers(model, seed=seed, scale=0.05)


@pytest.mark.slow
def test_fit_trains_the_crf_with_the_fcn_frozen():
    fcn = _tiny_fcn()
    fcn.dataset_info = fcn_keras.dataset_info("synthetic")
    fcn.trainable = False
    model = with_crf(fcn, iterations=2, window=3, downsample=2, compatibility="learned")
    assert model.dataset_info == fcn.dataset_info and model.name == "fcn8s_crf"
    crf = model.get_layer("crf")
    assert {v.name for v in model.trainable_variables} == {v.name for v in crf.trainable_variables}
    before_crf = [np.array(v.numpy()) for v in crf.weights]
    before_fcn = [np.array(w) for w in fcn.get_weights()]
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss=fcn_keras.SegmentationCrossEntropy())
    data = fcn_keras.load_dataset("synthetic", "train", batch_size=2, image_size=32, num_examples=4,
                                  shuffle=False)  # fmt: skip
    history = model.fit(data, epochs=1, steps_per_epoch=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    moved = [np.abs(np.array(v.numpy()) - b).max() for v, b in zip(crf.weights, before_crf)]
    assert all(m > 1e-4 for m in moved), dict(zip([v.name for v in crf.weights], moved))
    for after, before in zip(fcn.get_weights(), before_fcn):
        np.testing.assert_array_equal(after, before)
    settings = crf.settings()
    assert settings["iterations"] == 2 and np.asarray(settings["compatibility"]).shape == (6, 6)
    assert settings["appearance_xy"] != 80.0  # the trained value, not the initial one


@pytest.mark.slow
def test_fcn_and_crf_train_together_in_the_package_loop_under_bfloat16(tmp_path):
    # CRF-as-RNN as `bench/crf_joint_camvid.py` runs it: the FCN built under mixed_bfloat16,
    # the CRF outside the policy (float32), both trained by `fcn_keras.training.fit`.
    from fcn_keras.distribute import make_strategy, precision_policy
    from fcn_keras.training import compile_model, fit, make_inputs, make_model

    keras.utils.set_random_seed(0)
    inputs = make_inputs("synthetic", source_kwargs={"image_size": 32, "num_examples": {"train": 8, "val": 4}},
                         batch_size=2, epochs=1, steps_per_epoch=2)  # fmt: skip
    with precision_policy("mixed_bfloat16"):
        fcn = make_model("fcn8s", inputs.num_classes, fc_units=16, dataset_info=inputs.info)
    randomize_score_layers(fcn, scale=0.05)  # a trained FCN's unary is not uniform
    model = with_crf(fcn, iterations=2, window=3, downsample=2, compatibility="learned")
    crf = model.get_layer("crf")
    assert fcn.get_layer("fc6").compute_dtype == "bfloat16" and crf.compute_dtype == "float32"
    before_fcn = [np.array(w) for w in fcn.get_weights()]
    before_crf = [np.array(v.numpy()) for v in crf.weights]
    compile_model(model, inputs, optimizer="adam", learning_rate=1e-2)
    history = fit(model, inputs, make_strategy("default"), out_dir=str(tmp_path), epochs=1,
                  tensorboard=False, verbose=0)  # fmt: skip
    assert np.isfinite(history.history["loss"]).all() and "val_mean_iu" in history.history
    assert any(np.abs(a - b).max() > 1e-4 for a, b in zip(fcn.get_weights(), before_fcn))
    moved = [np.abs(np.array(v.numpy()) - b).max() for v, b in zip(crf.weights, before_crf)]
    assert all(m > 1e-4 for m in moved), dict(zip([v.name for v in crf.weights], moved))
    restored = keras.saving.load_model(tmp_path / "best.keras")
    images = np.random.default_rng(9).integers(0, 256, (1, 32, 32, 3), dtype=np.uint8)
    assert_close(np.asarray(restored(images)), np.asarray(model(images)), 1e-5)


def test_keras_file_round_trip_gives_equal_outputs(tmp_path):
    fcn = _tiny_fcn()
    fcn.dataset_info = fcn_keras.dataset_info("synthetic")
    model = with_crf(fcn, crf=DenseCRF(6, compatibility="learned", window=5, name="crf"))
    model.get_layer("crf").compatibility_matrix.assign(np.random.default_rng(7).uniform(0, 2, (6, 6)))
    model.save(tmp_path / "m.keras")
    restored = keras.saving.load_model(tmp_path / "m.keras")
    assert isinstance(restored.get_layer("crf"), DenseCRF)
    assert restored.dataset_info == model.dataset_info
    images = np.random.default_rng(8).integers(0, 256, (2, 37, 45, 3), dtype=np.uint8)
    np.testing.assert_array_equal(np.asarray(model(images)), np.asarray(restored(images)))


def test_settings_files_round_trip_and_name_the_file_in_errors(tmp_path):
    crf = DenseCRF(6, iterations=3, compatibility="learned", window=(5, 7))
    crf.build([(None, None, None, 3), (None, None, None, 6)])
    path = save_crf_settings(crf, tmp_path / "m.keras")
    assert path == str(tmp_path / "m.keras") + ".crf.json" and not os.path.exists(path + ".partial")
    settings = load_crf_settings(tmp_path / "m.keras")
    assert settings["iterations"] == 3 and tuple(settings["window"]) == (5, 7)
    np.testing.assert_allclose(settings["compatibility"], 1 - np.eye(6))
    rebuilt = DenseCRF(**settings)
    assert rebuilt.get_config()["window"] == [5, 7]
    with pytest.raises(FileNotFoundError, match="other.keras.crf.json"):
        load_crf_settings(tmp_path / "other.keras")
    (tmp_path / "bad.keras.crf.json").write_text(json.dumps({"iterations": 2, "sigma": 3}))
    with pytest.raises(ValueError, match=r"bad.keras.crf.json.*unknown option\(s\) \['sigma'\]"):
        load_crf_settings(tmp_path / "bad.keras")
    (tmp_path / "even.keras.crf.json").write_text(json.dumps({"window": 4}))
    with pytest.raises(ValueError, match="even.keras.crf.json.*window must be an odd integer"):
        load_crf_settings(tmp_path / "even.keras")
    with pytest.raises(ValueError, match="num_classes=4 but model 'fcn8s' outputs 6"):
        with_crf(_tiny_fcn(), num_classes=4)


# === Bad input ===


def test_bad_inputs_and_options_raise_value_errors_naming_them():
    crf = DenseCRF(4)
    image = np.zeros((1, 24, 32, 3), np.float32)
    with pytest.raises(ValueError, match=r"same height and width.*\(24, 32\).*\(20, 32\)"):
        crf([image, np.zeros((1, 20, 32, 4), np.float32)])
    with pytest.raises(ValueError, match=r"image must be RGB.*\(1, 24, 32, 4\)"):
        DenseCRF(4)([np.zeros((1, 24, 32, 4), np.float32), np.zeros((1, 24, 32, 4), np.float32)])
    with pytest.raises(ValueError, match=r"num_classes=4\).*\(1, 24, 32, 5\)"):
        DenseCRF(4)([image, np.zeros((1, 24, 32, 5), np.float32)])
    for option, value, message in (
        ("appearance_xy", 0.0, "appearance_xy must be finite and > 0; received 0.0"),
        ("appearance_rgb", -13.0, "appearance_rgb must be finite and > 0; received -13.0"),
        ("smoothness_xy", float("nan"), "smoothness_xy must be finite and > 0; received nan"),
        ("appearance_weight", -1.0, r"appearance_weight must be finite and >= 0 \(0 turns"),
        ("window", 4, "window must be an odd integer >= 1.*received 4"),
        ("window", 0, "window must be an odd integer >= 1.*received 0"),
        ("window", (3, 6), r"received \(3, 6\)"),
        ("downsample", 0, "downsample must be an integer >= 1.*received 0"),
        ("iterations", -1, "iterations must be an integer >= 0; received -1"),
        ("compatibility", "pots", "compatibility must be 'potts', 'learned' or a"),
        ("compatibility", np.eye(3), r"shape \(4, 4\) for num_classes=4; received shape \(3, 3\)"),
    ):  # fmt: skip
        with pytest.raises(ValueError, match=message):
            DenseCRF(4, **{option: value})
    with pytest.raises(ValueError, match="num_classes must be an integer >= 2; received 1"):
        DenseCRF(1)


# === Export ===


@pytest.mark.slow
def test_fcn_with_crf_exports_to_every_format_with_parity(tmp_path):
    from fcn_keras.export import export_all, with_odd_crops

    fcn = _tiny_fcn()
    fcn.dataset_info = fcn_keras.dataset_info("synthetic")
    # A short CRF keeps the conversions quick; every op kind of the default one is in it.
    model = with_crf(fcn, iterations=2, window=5, downsample=2)
    batch = fcn_keras.load_dataset("synthetic", "val", batch_size=1, image_size=48, num_examples=2,
                                   shuffle=False)  # fmt: skip
    images = [np.asarray(image[0], np.uint8) for image, _ in batch]
    images.append(images[0][:29, :41])  # odd, not a multiple of the cell size
    summary = export_all(model, tmp_path, verify_images=images, name="fcn8s_crf")
    assert sorted(summary["artifacts"]) == ["fcn8s_crf.onnx", "fcn8s_crf_float32.tflite",
                                            "fcn8s_crf_savedmodel"]  # fmt: skip
    report = summary["verification"]
    assert summary["passed"], report.to_markdown()
    verified = {image.shape[:2] for image in with_odd_crops(images)[0]}
    assert {tuple(size) for size in report.images["sizes"]} == verified
    assert (29, 41) in verified and len(verified) >= 3
    for artifact in report.artifacts:  # the float32 files (a bfloat16 signature row is reported only)
        if artifact["precision"] == "float32":
            assert artifact["vs_keras"]["argmax_agreement"] >= 0.9999, artifact
    # The CRF changed the FCN's output (it is in the graph, not bypassed).
    plain = np.asarray(fcn(images[0][None]))
    assert np.abs(np.asarray(model(images[0][None])) - plain).max() > 1e-3


# === Command line ===


@pytest.mark.slow
def test_evaluate_crf_reads_the_settings_next_to_the_model(tmp_path, capsys):
    from fcn_keras.cli import main
    from fcn_keras.evaluation import evaluate

    fcn = _tiny_fcn()
    fcn.dataset_info = fcn_keras.dataset_info("synthetic")
    path = str(tmp_path / "m.keras")
    fcn.save(path)
    data = ["--image-size", "32", "--source-arg", "num_examples=2", "--json"]
    assert main(["evaluate", path, "--crf", *data]) == 0
    report = json.loads(capsys.readouterr().out)
    assert "DenseCRF defaults" in report["crf"]["source"] and report["crf"]["settings"]["iterations"] == 5

    save_crf_settings({"iterations": 2, "window": 3, "downsample": 2, "smoothness_weight": 0.0}, path)
    assert main(["evaluate", path, "--crf", *data]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["crf"]["source"] == f"CRF settings from {path + '.crf.json'!r}"
    assert report["crf"]["settings"]["iterations"] == 2 and report["crf"]["settings"]["smoothness_weight"] == 0
    expected = evaluate(with_crf(fcn, iterations=2, window=3, downsample=2, smoothness_weight=0.0),
                        "synthetic", "val", source_kwargs={"image_size": 32, "num_examples": 2})  # fmt: skip
    assert report["confusion_matrix"] == np.asarray(expected["confusion_matrix"]).tolist()

    other = tmp_path / "other.json"
    other.write_text(json.dumps({"iterations": 1, "window": 3, "downsample": 2}))
    assert main(["evaluate", path, "--crf", "--crf-settings", str(other), *data]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["crf"]["source"] == f"CRF settings from {str(other)!r}"
    assert report["crf"]["settings"]["iterations"] == 1
    other.write_text(json.dumps({"iterations": 1, "window": 2}))
    assert main(["evaluate", path, "--crf", "--crf-settings", str(other), *data]) == 2
    err = capsys.readouterr().err
    assert "other.json" in err and "window must be an odd integer" in err
    assert main(["evaluate", path, "--crf-settings", str(other), *data]) == 2
    assert "--crf-settings given without --crf" in capsys.readouterr().err
