"""The repository holds source, not run outputs: no tracked file over 1 MB, outputs ignored.

Checked on the git checkout the tests run from (skipped outside one, e.g. an
installed sdist): `git ls-files` sizes, and `git check-ignore` on the files
runs leave behind (onnxruntime profiler dumps, ONNX external data) and the
folders the README has users create (`exports/`, `masks/`, `samples/`).
"""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAX_BYTES = 1_000_000  # 1 MB


def _git(*args):
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def checkout():
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    inside = _git("rev-parse", "--show-toplevel")
    if inside.returncode != 0 or Path(inside.stdout.decode().strip()).resolve() != ROOT:
        pytest.skip(f"{ROOT} is not the top of a git checkout")
    return ROOT


def test_no_tracked_file_is_over_1_mb(checkout):
    listed = _git("ls-files", "-z")
    assert listed.returncode == 0, listed.stderr.decode()
    paths = [p for p in listed.stdout.decode().split("\0") if p]
    assert "README.md" in paths  # the listing is the project's
    sizes = {p: os.path.getsize(checkout / p) for p in paths if (checkout / p).is_file()}
    large = {p: size for p, size in sizes.items() if size > MAX_BYTES}
    assert not large, f"tracked files over 1 MB (bytes): {large}; keep run outputs out of git"


@pytest.mark.parametrize("path", ["onnxruntime_profile__2026-12-01_23-13-16_596.json",
                                  "bench/onnxruntime_profile_x.json", "fcn8s.onnx.data",
                                  "exports/fcn8s.onnx", "exports/savedmodel/1/saved_model.pb",
                                  "masks/0001TP_008550.png", "samples/sample_0.png"])  # fmt: skip
def test_run_outputs_are_ignored(checkout, path):
    # --no-index: the rule decides, whether or not such a file was ever added.
    result = _git("check-ignore", "--no-index", "--quiet", path)
    assert result.returncode == 0, f"{path!r} is not ignored by .gitignore ({result.stderr.decode()})"


def test_sources_are_not_ignored(checkout):
    for path in ("fcn_keras/models.py", "export/predictor.py", "tests/test_repository.py"):
        assert _git("check-ignore", "--no-index", "--quiet", path).returncode == 1, path
