"""`import fcn_keras` loads no exporter: the core (models, data, training) never imports `fcn_keras.export`.

Run in a fresh interpreter, since the pytest process has imported everything already.
"""

import json
import subprocess
import sys

import pytest

_OPTIONAL = ("tf2onnx", "onnx", "onnxruntime", "ai_edge_litert", "mediapipe", "fcn_keras.export")


def _loaded_after(statement):
    code = (f"import json, sys; {statement}; "
            f"print(json.dumps([m for m in {list(_OPTIONAL)!r} if m in sys.modules]))")  # fmt: skip
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_import_fcn_keras_loads_no_exporter():
    assert _loaded_after("import fcn_keras, fcn_keras.models, fcn_keras.data, fcn_keras.training") == []


@pytest.mark.slow
def test_import_export_loads_no_optional_runtime():
    # The exporters import their optional runtimes when used, not when fcn_keras.export is imported.
    assert _loaded_after("import fcn_keras.export") == ["fcn_keras.export"]
