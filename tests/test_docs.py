"""Docs state figures, their machine and their command: no history, no target verdicts, no machine paths.

Checked on the committed text (no TensorFlow, no network):

- README.md and every Markdown file under docs/ carry none of the phrases that
  narrate history ("an earlier run", "measured in a later run") or tick off
  targets ("target met", "**not met**"); CHANGELOG.md, where history belongs,
  carries no verdicts either;
- no doc and no published figure file (docs/results/*.json) names an absolute
  path of a machine (`/work/...`, `/home/...`, `/root/...`, `/tmp/...`): a
  figure's data directory is written relative (`../shared/...`) or not at all;
- every relative link and image in README.md, CHANGELOG.md and docs/ points at a file of the
  repository and, with a `#fragment`, at a heading of that file (GitHub's
  anchor rules);
- the README's first two commands are the set-up + demo command and the test
  command that CI runs (.ci/run).
"""

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
RESULTS_JSON = sorted((ROOT / "docs" / "results").glob("*.json"))
CHANGELOG = ROOT / "CHANGELOG.md"

# History and target verdicts, both banned from the docs (case-insensitive).
NARRATION = re.compile(
    r"earlier (run|commit|schedule|suite)|\b(a|in a) later run"
    # "the earlier 10 / 4 / 4 schedule", "Earlier: the same on ...", "int8 first scored 27.2":
    r"|\bearlier\b[^.;:()]{0,25}\b(runs?|commits?|schedules?|suites?|versions?|code)\b"
    r"|\bearlier\s*[:,]|\bfirst scored\b",
    re.IGNORECASE,
)
VERDICT = re.compile(r"\*\*(not )?met\*\*|target[^.]{0,30}\b(not )?met\b|\bnot met\b", re.IGNORECASE)
# An absolute path of a machine: /work/, /root/, /home/, /tmp/ (or macOS's /Users/) starting a
# path, i.e. not preceded by a word character, a dot or `~` (`../shared/x`, `~/fcn_runs` are fine).
MACHINE_PATH = re.compile(r"(?<![\w.~/])/(work|root|home|tmp|Users)/")


def _rel(path):
    return path.relative_to(ROOT).as_posix()


def _hits(pattern, text):
    """'line N: ...the match in context...' for every match of `pattern` in `text`."""
    hits = []
    for match in pattern.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        start, end = max(0, match.start() - 40), match.end() + 40
        hits.append(f"line {line}: ...{text[start:end]!s}...".replace("\n", " "))
    return hits


@pytest.mark.parametrize("path", DOCS, ids=_rel)
def test_docs_narrate_no_history_and_tick_off_no_target(path):
    text = path.read_text(encoding="utf-8")
    hits = _hits(NARRATION, text) + _hits(VERDICT, text)
    assert not hits, (f"{_rel(path)} narrates history or gives a target verdict; state the figure, "
                      f"its machine and its command instead (history goes to CHANGELOG.md):\n"
                      + "\n".join(hits))  # fmt: skip


def test_changelog_gives_no_target_verdict():
    if not CHANGELOG.exists():
        pytest.skip("no CHANGELOG.md")
    hits = _hits(VERDICT, CHANGELOG.read_text(encoding="utf-8"))
    assert not hits, "CHANGELOG.md gives target verdicts:\n" + "\n".join(hits)


@pytest.mark.parametrize("path", DOCS + ([CHANGELOG] if CHANGELOG.exists() else []), ids=_rel)
def test_docs_name_no_absolute_path_of_a_machine(path):
    hits = _hits(MACHINE_PATH, path.read_text(encoding="utf-8"))
    assert not hits, (f"{_rel(path)} names an absolute path of a machine; write it relative "
                      f"(../shared/..., ~/fcn_runs/...):\n" + "\n".join(hits))  # fmt: skip


def _strings(value, where="$"):
    """Every string in a JSON value (keys included), with its JSON path."""
    if isinstance(value, str):
        yield where, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield f"{where}.{key} (key)", key
            yield from _strings(item, f"{where}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, f"{where}[{index}]")


@pytest.mark.parametrize("path", RESULTS_JSON, ids=_rel)
def test_published_figures_name_no_absolute_path_of_a_machine(path):
    data = json.loads(path.read_text(encoding="utf-8"))
    hits = [f"{where}: {value!r}" for where, value in _strings(data) if MACHINE_PATH.search(value)]
    assert not hits, (f"{_rel(path)} names an absolute path of a machine (drop it or write it "
                      f"relative, ../shared/...):\n" + "\n".join(hits[:10]))  # fmt: skip


def test_the_machine_path_pattern():
    for path in ("/work/shared/data/camvid", "data_dir=/tmp/x", "'/home/u/runs'", "(/root/.keras)"):
        assert MACHINE_PATH.search(path), path
    for path in ("../shared/data/camvid", "~/fcn_runs/camvid", "runs/tmp/x", "a.work/x", "exports/"):
        assert not MACHINE_PATH.search(path), path


def test_the_narration_and_verdict_patterns():
    for text in ("in an earlier run of the same benchmark", "with the earlier 10 / 4 / 4 schedule",
                 "measured in a later run", "Earlier, smaller suite: 170 passed", "int8 first scored 27.22",
                 "Target >= 150 images/s: met", "**not met**", "Targets (ONNX <= 6 GB): met",
                 "target: keras within 1.25x: NOT met"):  # fmt: skip
        assert NARRATION.search(text) or VERDICT.search(text), text
    for text in ("Later objects occlude earlier ones", "the metadata of the model", "a fixed-size file",
                 "the target (>= 150 images/s). Measured on the VM"):  # fmt: skip
        assert not (NARRATION.search(text) or VERDICT.search(text)), text


# === Links ===

FENCE = re.compile(r"^ {0,3}(```|~~~).*?^ {0,3}\1[^\n]*$", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"(`+)(?!`).*?(?<!`)\1(?!`)", re.DOTALL)
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^ {0,3}#{1,6}[ \t]+(.*?)[ \t#]*$", re.MULTILINE)


def _prose(text):
    """The text without fenced code blocks and code spans (their brackets are not links)."""
    return CODE_SPAN.sub("", FENCE.sub("", text))


def github_anchor(heading):
    """The `#fragment` GitHub gives a heading: lowercase, punctuation dropped, spaces to hyphens.

    Example:
    >>> github_anchor("Inference latency (`bench/latency.py`)")
    'inference-latency-benchlatencypy'
    """
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading: its text
    text = re.sub(r"<[^>]+>", "", text).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path):
    """Every anchor of a Markdown file's headings, duplicates numbered as GitHub does (-1, -2, ...)."""
    seen, result = {}, set()
    for match in HEADING.finditer(FENCE.sub("", path.read_text(encoding="utf-8"))):
        anchor = github_anchor(match.group(1))
        count = seen.get(anchor, 0)
        seen[anchor] = count + 1
        result.add(anchor if count == 0 else f"{anchor}-{count}")
    return result


def test_github_anchor_rules():
    assert github_anchor("Export (`bench/export_onnx_memory.py`)") == "export-benchexport_onnx_memorypy"
    assert github_anchor("Fast inference: XLA, bfloat16, int8 ONNX") == "fast-inference-xla-bfloat16-int8-onnx"
    assert github_anchor("int8 on real data (`bench/int8_camvid.py`)") == "int8-on-real-data-benchint8_camvidpy"


@pytest.mark.parametrize("path", DOCS + ([CHANGELOG] if CHANGELOG.exists() else []), ids=_rel)
def test_relative_links_resolve(path):
    broken = []
    for target in LINK.findall(_prose(path.read_text(encoding="utf-8"))):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):  # https:, mailto:, ...
            continue
        file_part, _, fragment = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        if not linked.exists():
            broken.append(f"{target}: no file {linked}")
        elif fragment and linked.suffix == ".md" and fragment not in anchors(linked):
            broken.append(f"{target}: no heading with anchor #{fragment} in {_rel(linked)}")
    assert not broken, f"{_rel(path)} has broken links:\n" + "\n".join(broken)


def test_readme_starts_with_the_setup_and_demo_command_then_the_test_command():
    blocks = re.findall(r"^```bash\n(.*?)^```", (ROOT / "README.md").read_text(encoding="utf-8"),
                        re.MULTILINE | re.DOTALL)  # fmt: skip
    assert blocks[:2] == [
        'python3 -m venv .venv && .venv/bin/pip install -e ".[test]" && .venv/bin/fcn-keras demo\n',
        ".venv/bin/python -m pytest -q -n 2 --dist loadfile tests\n",
    ]
    assert ".venv/bin/python -m pytest -q -n 2 --dist loadfile tests" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")
