"""tf.distribute: MirroredStrategy over 2 logical CPUs and 2 local MultiWorkerMirroredStrategy workers.

Each configuration runs in its own process (logical devices and collective
ops must be set up before TensorFlow initialises) via
tests/helpers/distributed_worker.py, and must agree with single-process
training on the same global batch: same final weights and losses, and the
SegmentationMetrics confusion matrix summed over replicas equals the
single-process one.
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import assert_close

WORKER = Path(__file__).parent / "helpers" / "distributed_worker.py"
ROOT = Path(__file__).resolve().parents[1]

# Float32 sums of the same 4 per-example gradients in a different order (per
# replica, then all-reduced) differ by rounding only: ~1e-7 relative per step.
# Two SGD steps keep each weight tensor within 1e-4 of its largest value (weights
# of magnitude ~0.1: about 1e-5).
RELATIVE = 1e-4


def _env(extra=None):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="",
               PYTHONPATH=str(ROOT))  # fmt: skip
    env.update(extra or {})
    return env


def _run(mode, *outs):
    subprocess.run([sys.executable, str(WORKER), mode, *map(str, outs)], check=True,
                   timeout=300, env=_env(), cwd=ROOT)  # fmt: skip
    return [np.load(out) for out in outs]


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _weights(result):
    return [result[k] for k in sorted((k for k in result.files if k.startswith("arr_")),
                                      key=lambda k: int(k[4:]))]  # fmt: skip


def _assert_same_training(result, reference):
    np.testing.assert_allclose(result["loss"], reference["loss"], rtol=1e-5)
    weights, expected = _weights(result), _weights(reference)
    assert len(weights) == len(expected)
    for got, want in zip(weights, expected):
        assert_close(got, want, RELATIVE)
    np.testing.assert_array_equal(result["confusion"], reference["confusion"])


@pytest.fixture(scope="module")
def mirrored_and_single(tmp_path_factory):
    directory = tmp_path_factory.mktemp("mirrored")
    return _run("mirrored_and_single", directory / "mirrored.npz", directory / "single.npz")


@pytest.fixture(scope="module")
def single(mirrored_and_single):
    return mirrored_and_single[1]


@pytest.mark.slow
def test_mirrored_strategy_on_two_logical_cpus_matches_single_device(mirrored_and_single):
    result, single = mirrored_and_single
    assert int(result["replicas"]) == 2
    # Training did something: the weights moved away from the initial ones.
    assert single["loss"][1] < single["loss"][0]
    _assert_same_training(result, single)
    assert result["confusion"].sum() == 8 * 32 * 32


@pytest.mark.slow
def test_two_multi_worker_processes_match_single_process(single, tmp_path):
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    procs = []
    for index in range(2):
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        procs.append(subprocess.Popen(
            [sys.executable, str(WORKER), "multi_worker", str(tmp_path / f"w{index}.npz")],
            env=_env({"TF_CONFIG": tf_config}), cwd=ROOT))  # fmt: skip
    try:
        codes = [p.wait(timeout=300) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert codes == [0, 0]
    for index in range(2):
        result = np.load(tmp_path / f"w{index}.npz")
        assert int(result["replicas"]) == 2
        _assert_same_training(result, single)
    # Only the chief (worker 0) writes into out_dir; worker 1 writes into out_dir/worker_1.
    assert (tmp_path / "w0.npz.run" / "best.keras").is_file()
    assert (tmp_path / "w1.npz.run" / "worker_1" / "history.csv").is_file()


# === mixed_precision="auto" ===


@pytest.mark.parametrize(
    "flags, gpus, expected, reason",
    [
        ({"avx2", "avx512f", "amx_bf16", "amx_tile"}, [], "mixed_bfloat16", "amx_bf16, amx_tile"),
        ({"avx2", "avx512f", "avx512_bf16"}, [], "mixed_bfloat16", "avx512_bf16"),
        ({"sse4_2", "avx2", "fma"}, [], "float32", "no GPU is visible"),
        (set(), [(8, 0)], "mixed_bfloat16", "compute capability 8.0"),
        ({"avx512_bf16"}, [(7, 5)], "float32", "compute capability 7.5"),  # runs on the GPU
    ],
)
def test_auto_precision_follows_the_hardware(monkeypatch, capsys, flags, gpus, expected, reason):
    from fcn_keras import distribute

    for name in ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA"):  # no cap (see the test below)
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(distribute, "cpu_flags", lambda: set(flags))
    monkeypatch.setattr(distribute, "gpu_compute_capabilities", lambda: list(gpus))
    precision, why = distribute.auto_precision()
    assert precision == expected and reason in why
    assert distribute.resolve_precision("auto") == expected
    assert f"mixed_precision='auto' chose {expected}" in capsys.readouterr().out
    with distribute.precision_policy("auto") as policy:
        assert policy.name == expected


@pytest.mark.parametrize("variable, cap, expected", [
    ("ONEDNN_MAX_CPU_ISA", "AVX2", "float32"),
    ("DNNL_MAX_CPU_ISA", "avx512_core_vnni", "float32"),
    ("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_BF16", "mixed_bfloat16"),
    ("ONEDNN_MAX_CPU_ISA", "ALL", "mixed_bfloat16"),
])  # fmt: skip
def test_auto_precision_follows_a_onednn_isa_cap(monkeypatch, variable, cap, expected):
    """A cap below oneDNN's bfloat16 kernels makes bfloat16 convolutions fail: auto says float32."""
    from fcn_keras import distribute

    monkeypatch.setattr(distribute, "cpu_flags", lambda: {"avx2", "avx512f", "avx512_bf16"})
    monkeypatch.setattr(distribute, "gpu_compute_capabilities", lambda: [])
    for name in ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(variable, cap)
    precision, why = distribute.auto_precision()
    assert precision == expected, why
    if expected == "float32":
        assert f"{variable}={cap.upper()} leaves oneDNN without bfloat16 kernels" in why


def test_cpu_flags_and_model_name_read_proc_cpuinfo(monkeypatch):
    from fcn_keras import distribute

    text = ("processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Platinum 8480+\n"
            "flags\t\t: fpu avx2 avx512_bf16 amx_tile amx_bf16\n")  # fmt: skip
    monkeypatch.setattr(distribute, "_read_cpuinfo", lambda: text)
    assert distribute.cpu_flags() == {"fpu", "avx2", "avx512_bf16", "amx_tile", "amx_bf16"}
    assert distribute.cpu_model_name() == "Intel(R) Xeon(R) Platinum 8480+"
    with pytest.raises(ValueError, match="Unknown precision 'bfloat8'"):
        distribute.resolve_precision("bfloat8")
    assert distribute.resolve_precision(None) is None
    assert distribute.resolve_precision("float32") == "float32"


# === prebuild_for_multi_worker ===


def test_prebuild_for_multi_worker_restores_the_model_after_the_block(monkeypatch):
    import contextlib

    import keras
    import tensorflow as tf

    from fcn_keras.distribute import prebuild_for_multi_worker

    class FakeMultiWorker:
        """Stands in for MultiWorkerMirroredStrategy: the class test and a scope."""

        def scope(self):
            return contextlib.nullcontext()

    monkeypatch.setattr(tf.distribute, "MultiWorkerMirroredStrategy", FakeMultiWorker)
    inputs = keras.Input((4, 4, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(2, 1)(inputs))
    model.compile(optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(True))
    data = tf.data.Dataset.from_tensors((tf.zeros((1, 4, 4, 3)), tf.zeros((1, 4, 4), tf.int32)))
    keras_method = type(model)._maybe_symbolic_build

    with prebuild_for_multi_worker(model, FakeMultiWorker(), data) as built:
        assert built is model and model.built and model.optimizer.built
        assert "_maybe_symbolic_build" in vars(model)  # Keras's probe is skipped in the block
        assert model._maybe_symbolic_build(data_batch=None) is None
    assert "_maybe_symbolic_build" not in vars(model)  # the class's method again
    assert model._maybe_symbolic_build.__func__ is keras_method

    with pytest.raises(RuntimeError, match="fit failed"):  # restored on an error too
        with prebuild_for_multi_worker(model, FakeMultiWorker(), data):
            raise RuntimeError("fit failed")
    assert "_maybe_symbolic_build" not in vars(model)

    # Any other strategy: nothing is built or replaced.
    fresh = keras.Model(inputs, keras.layers.Conv2D(2, 1)(inputs))
    with prebuild_for_multi_worker(fresh, tf.distribute.get_strategy(), data):
        assert "_maybe_symbolic_build" not in vars(fresh)


@pytest.mark.parametrize("flags,available,reason", [
    ({"avx2", "avx512_fp16"}, True, "the CPU reports avx512_fp16"),
    ({"fp", "asimd", "asimdhp"}, True, "the CPU reports asimdhp"),
    ({"avx2", "avx512_bf16"}, False, "(Test CPU) reports none of avx512_fp16, asimdhp"),
    (set(), True, "the runtime decides"),
])  # fmt: skip
def test_fp16_arithmetic_reads_the_cpu_flags(monkeypatch, flags, available, reason):
    from fcn_keras import distribute

    monkeypatch.setattr(distribute, "cpu_flags", lambda: set(flags))
    monkeypatch.setattr(distribute, "cpu_model_name", lambda: "Test CPU")
    found, why = distribute.fp16_arithmetic()
    assert found is available and reason in why
