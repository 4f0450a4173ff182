"""bench/latency.py: its `--tflite-levers` forms of fc6 compute fc6; its ratio lines state figures (tiny, CPU).

The benchmark compares the speed of one convolution written four ways; the
comparison means something only if every form computes the same "same"
convolution with bias and ReLU. Checked here in TensorFlow on small odd and
even kernels and odd map sizes, once through the TFLite interpreter the
benchmark runs them in (builtin ops only), and the onnxruntime reference too.
The ratios it prints under the latency table are checked on known latencies:
figures only, for the engines that ran.
"""

import os

import numpy as np
import pytest
import tensorflow as tf

from conftest import assert_close

BENCH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench")


@pytest.fixture
def latency(monkeypatch):
    monkeypatch.syspath_prepend(BENCH)
    import latency

    return latency


def _weights(kh, kw, cin, cout, seed=0):
    rng = np.random.default_rng(seed)
    kernel = rng.standard_normal((kh, kw, cin, cout)).astype(np.float32)
    bias = rng.standard_normal(cout).astype(np.float32)
    return kernel, bias


@pytest.mark.parametrize("kernel_size", [(7, 7), (3, 5), (4, 4)])
def test_every_form_is_the_same_convolution(latency, kernel_size):
    kernel, bias = _weights(*kernel_size, 6, 5)
    x = np.random.default_rng(1).standard_normal((2, 9, 11, 6)).astype(np.float32)
    expected = tf.nn.relu(tf.nn.conv2d(x, kernel, 1, "SAME") + bias).numpy()
    assert expected.max() > 1.0 and (expected == 0).mean() > 0.2  # ReLU active and clipping
    forms = latency._convolution_forms(kernel, bias)
    assert sorted(forms) == ["conv", "patches", "pointwise", "rows"]
    for name, fn in forms.items():
        got = fn(tf.constant(x)).numpy()
        assert got.shape == expected.shape, name
        assert_close(got, expected, 1e-5, err_msg=name)


def test_forms_run_in_the_tflite_interpreter(latency):
    kernel, bias = _weights(7, 7, 8, 4, seed=2)
    x = np.random.default_rng(3).standard_normal((1, 5, 6, 8)).astype(np.float32)
    expected = tf.nn.relu(tf.nn.conv2d(x, kernel, 1, "SAME") + bias).numpy()
    for name in ("rows", "patches"):
        run = latency._tflite_function(latency._convolution_forms(kernel, bias)[name], x, threads=1)
        assert_close(run(), expected, 1e-5, err_msg=name)


def test_median_round_robin_times_every_runner(latency):
    calls = {"a": 0, "b": 0}

    def runner(name):
        def run():
            calls[name] += 1

        return run

    import _common

    result = _common.median_round_robin({"a": runner("a"), "b": runner("b")}, repeats=3, warmup=2)
    assert sorted(result) == ["a", "b"] and all(v >= 0 for v in result.values())
    assert calls == {"a": 5, "b": 5}


@pytest.mark.parametrize("kernel_size", [(7, 7), (4, 4)])
def test_onnxruntime_reference_is_the_same_convolution(latency, kernel_size):
    kernel, bias = _weights(*kernel_size, 3, 4, seed=4)
    x = np.random.default_rng(5).standard_normal((1, 7, 9, 3)).astype(np.float32)
    expected = tf.nn.relu(tf.nn.conv2d(x, kernel, 1, "SAME") + bias).numpy()
    session = latency._onnx_conv(kernel, bias, True, threads=1)
    got = session.run(None, {"x": np.ascontiguousarray(x.transpose(0, 3, 1, 2))})[0].transpose(0, 2, 3, 1)
    assert_close(got, expected, 1e-5)


def test_reduced_precision_engines_run_where_the_cpu_has_the_arithmetic(latency):
    everything = [e for e in latency.ENGINES if e != "torch"]
    engines, notes = latency._engines(None, (False, "no bfloat16 units"), False, (False, "no fp16 units"))
    assert engines == [e for e in everything if e not in latency.BFLOAT16 + latency.FLOAT16]
    assert any("tflite_half left out: no fp16 units" in note for note in notes)
    assert any("bfloat16 engines left out: no bfloat16 units" in note for note in notes)
    engines, notes = latency._engines(None, (True, ""), False, (True, ""))
    assert engines == everything and notes == ["torch left out: not installed (pip install -e .[bench])"]
    # Named engines run whatever the CPU reports (Predictor then says why it cannot).
    engines, _ = latency._engines("onnx,tflite_half", (False, ""), False, (False, ""))
    assert engines == ["onnx", "tflite_half"]


def test_ratio_lines_state_the_ratios_without_a_verdict(latency):
    # Latencies of the Sapphire Rapids runs in docs/benchmarks.md (222.6 GFLOP per run, peak 342.6 GFLOP/s).
    results = {"onnx": 0.703, "onnx_int8": 0.273, "keras": 0.862, "savedmodel": 0.829, "tflite_fp32": 1.555,
               "tflite_fp32_fixed": 1.532, "tflite_int8": 0.144, "keras_bf16": 0.351, "savedmodel_bf16": 0.342,
               "tflite_half": 0.817, "torch": 0.973}  # fmt: skip
    lines = latency.ratio_lines(results, 222.6e9, 342.6)
    assert lines == [
        "keras / onnx: 1.23x",
        "savedmodel / onnx: 1.18x",
        "tflite_fp32 / onnx: 2.21x",
        "tflite_fp32_fixed / onnx: 2.18x",
        "onnx: 316.6 GFLOP/s, 92% of the matmul peak",
        "keras / torch: 0.89x",
        "savedmodel / torch: 0.85x",
        "tflite_fp32 / torch: 1.60x",
        "tflite_fp32_fixed / torch: 1.57x",
        "onnx / torch: 0.72x",
        "tflite_int8 speed-up over tflite_fp32: 10.80x",
        "onnx_int8 speed-up over onnx: 2.58x",
        "keras_bf16 speed-up over keras: 2.46x",
        "savedmodel_bf16 speed-up over savedmodel: 2.42x",
        "tflite_half speed-up over tflite_fp32_fixed: 1.88x",
    ]
    assert not any(word in line.lower() for line in lines for word in ("target", " met", "not met"))


def test_ratio_lines_only_compare_engines_that_ran(latency):
    assert latency.ratio_lines({"keras": 1.0, "tflite_int8": 0.1}, 1e9, 100.0) == []
    assert latency.ratio_lines({"onnx": 0.5, "onnx_int8": 0.25}, 50e9, 200.0) == [
        "onnx: 100.0 GFLOP/s, 50% of the matmul peak",
        "onnx_int8 speed-up over onnx: 2.00x",
    ]
