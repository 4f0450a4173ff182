"""bench/latency.py: the rewritten forms of fc6 its `--tflite-levers` mode times compute fc6 (tiny, CPU).

The benchmark compares the speed of one convolution written four ways; the
comparison means something only if every form computes the same "same"
convolution with bias and ReLU. Checked here in TensorFlow on small odd and
even kernels and odd map sizes, once through the TFLite interpreter the
benchmark runs them in (builtin ops only), and the onnxruntime reference too.
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

    result = latency._median_round_robin({"a": runner("a"), "b": runner("b")}, repeats=3, warmup=2)
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
