"""A script that exits with a live iterator over a Python-decoding pipeline must not hang."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_process_exits_with_a_live_iterator(tmp_path):
    script = tmp_path / "leave_iterator.py"
    script.write_text(textwrap.dedent(f"""
        import os, sys
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
        sys.path.insert(0, {str(REPO)!r})
        import fcn_keras
        ds = fcn_keras.load_dataset("synthetic", "train", batch_size=4, crop_size=32,
                                    repeat=True, num_examples=64, image_size=48)
        it = iter(ds)  # left alive on purpose: prefetch threads keep decoding
        next(it)
        print("iterated", flush=True)
    """))
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                            timeout=240)  # hung processes used to never end  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert "iterated" in result.stdout
