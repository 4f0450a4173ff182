"""Resumable results runs: FCN-32s -> 16s -> 8s staged and FCN-8s at-once, trained and scored.

`run_stages(out_dir, stages, ...)` trains each requested row with
`fcn_keras.train` into `out_dir/<stage>/` and evaluates every finished model
with `fcn_keras.evaluate` (the paper's four metrics, per-class IoU and the
trimap mean IU near class boundaries) on the validation split and, when asked,
once on the test split. `bench/camvid_results.py` is its command line for
CamVid.

Rows (`STAGES`): `fcn32s` (from the backbone), `fcn16s` (`init_from` the
fcn32s row's final model), `fcn8s` (from the fcn16s row's) and
`fcn8s_atonce` (the at-once FCN-8s, one stage from the backbone).

Lever rows (`LEVERS`) each change one thing of the staged recipe, to be
compared on val with the row they change:

- training levers, a whole staged chain `fcn32s_<lever>` -> `fcn16s_<lever>`
  -> `fcn8s_<lever>`: `long` (the same recipe; the lever is the longer
  schedule `schedules` gives these rows), `fc4096` (fc6/fc7 4096 wide, the
  paper's width), `whole` (whole images instead of crops: `crop_size` None);
- finishing levers, one more stage from the staged `fcn8s`: `fcn8s_lovasz`
  (cross-entropy + Lovász-softmax, `make_loss("cross_entropy+lovasz")`) and
  `fcn8s_crf` (the FCN-8s fine-tuned with a dense CRF in the loop, CRF-as-RNN:
  `train(crf=...)`);
- evaluation levers, no training: `<row>+tta` (the row's final model under
  `with_tta`, scales 0.75/1/1.25 and flips) and `<row>+sas2` (shift-and-stitch,
  f = 2), scored from `<row>`'s `final.keras` (cached as
  `evaluation_<split>+<lever>.json` beside it).

`stages="levers"` names them all (with the staged rows they are compared to).
The final recipe combines the levers val kept (`final_levers`): the chain
`final32s` -> `final16s` -> `final8s` with every kept training lever
(schedules of the `_long` rows when `long` is kept), then each kept finishing
stage (`final8s_lovasz`, `final8s_crf`), then at most one kept evaluation
lever (`<last row>+tta`); `stages="final"` names that chain, and `"final"` in
`test` its scored row. `test` may name rows, so that only the final row (and
the row it is compared with) is scored on test.

Resuming: rerunning the same call skips every finished row and continues an
interrupted one.

- A row is finished when `out_dir/<stage>/final.keras` exists: it is written
  to `final.partial.keras` and renamed into place (atomic on one file
  system), after the row's `stage.json` (epochs, learning rate, training
  seconds).
- An interrupted row resumes from `out_dir/<stage>/backup/` (Keras's
  `BackupAndRestore`, kept by `fcn_keras.train` until the fit completes): at
  most the epoch that was running is repeated; `history.csv` is appended to.
- A row records its settings when it starts (`out_dir/<stage>/settings.json`,
  written atomically; see `ROW_SETTINGS`): epochs, learning rate, scale, crop
  size, augmentation and the `train` arguments that define the model and
  recipe (loss and its options, class weights, dropout, optimizer settings
  ...), each with `train`'s default filled in and in one spelling (a loss
  name as `{"name": ...}`, an augmentation as all `Augment` fields, weights
  paths absolute), so that equal settings compare equal. Before
  anything is trained, every requested row that is finished or has a backup
  is compared with the request; a difference is a `ValueError` naming the
  row and each differing setting (recorded vs requested): a finished row is
  never reused for, nor silently retrained with, other settings. Rows
  written before `settings.json` existed are compared on what they hold:
  `stage.json` (epochs, learning rate, scale, training crop) and
  `train_config.json` (`train`'s arguments, among them the augmentation as
  given to `train`, i.e. already scaled); a setting a row never recorded is
  not compared.
- Training wall time is the sum of the finished epochs' seconds
  (`epoch_times.jsonl`, one line per finished epoch, the last one of a
  repeated epoch counts), so time lost to an interruption is not counted.
- Evaluations are cached next to the model (`evaluation_<split>.json`, with
  the settings they were computed with under `evaluation_settings`: source,
  its options (data directory made absolute), split, scale, batch size,
  batch limit, trimap widths) and reused while those settings are the
  requested ones and `final.keras` is not newer. `full_split_evaluation`
  reads such a cache back for other tools, only when it covers a whole split.

Scale: with `scale < 1` the training crops and the augmentation's random
rescale range are multiplied by `scale` (the net sees images resized by that
factor, for slow hosts). The scale is saved with the model
(`train(input_scale=scale)`, `FCNModel.input_scale`), so evaluation, export
and prediction resize each image by it, predict, and resize the logits
bilinearly back to the labels' full size before the argmax
(`fcn_keras.evaluation.scaled_logits`): scores are always on full-size
labels. Rows saved before models carried their scale are read through
`stage.json` (`recorded_scale`, used by `fcn_keras.evaluation.load_model`).

Per-epoch validation is off (`val_split=None`; it would evaluate the whole
validation split every epoch): `best.keras` tracks the training mean IU, and
each row's `final.keras` is the model after its last epoch, scored on the
validation split after training.

Reference: Long et al. 2015, Section 4.2 (staged training), Section 5
(metrics); Shelhamer et al. 2016 (PAMI), Section 4 (at-once FCN-8s).
"""

import dataclasses
import json
import os
import time

from fcn_keras.metrics import SCORE_NAMES, TRIMAP_WIDTHS

__all__ = ["STAGES", "LEVERS", "EVALUATION_LEVERS", "PUBLISHED_CAMVID_MEAN_IU", "run_stages",
           "parse_stages", "stage_finished", "final_rows", "row_plan",
           "results_to_markdown", "figures_only", "is_machine_path",
           "recorded_scale",
           "full_split_evaluation"]  # fmt: skip

# Row -> (variant, at_once, the row whose final model it starts from).
STAGES = {
    "fcn32s": ("fcn32s", False, None),
    "fcn16s": ("fcn16s", False, "fcn32s"),
    "fcn8s": ("fcn8s", False, "fcn16s"),
    "fcn8s_atonce": ("fcn8s", True, None),
}

# Lever -> what it changes in the staged recipe: `crop_size` (None: whole images) and
# `train_kwargs` entries for training levers, the evaluation options for evaluation levers.
LEVERS = {
    "long": {"kind": "training", "changes": {}},  # the lever is the schedule given to its rows
    "fc4096": {"kind": "training", "changes": {"train_kwargs": {"fc_units": 4096}}},
    "whole": {"kind": "training", "changes": {"crop_size": None}},
    "lovasz": {"kind": "finishing", "changes": {"train_kwargs": {"loss": "cross_entropy+lovasz"}}},
    "crf": {"kind": "finishing",
            "changes": {"train_kwargs": {"crf": {"compatibility": "learned"}}}},
    "tta": {"kind": "evaluation", "changes": {"tta": {"scales": [0.75, 1.0, 1.25], "flip": True}}},
    "sas2": {"kind": "evaluation", "changes": {"shift_and_stitch": 2}},
}  # fmt: skip
EVALUATION_LEVERS = tuple(name for name, lever in LEVERS.items() if lever["kind"] == "evaluation")
_CHAIN = (("fcn32s", "32s"), ("fcn16s", "16s"), ("fcn8s", "8s"))
for _lever, _spec in LEVERS.items():
    if _spec["kind"] == "training":
        for _i, (_variant, _) in enumerate(_CHAIN):
            STAGES[f"{_variant}_{_lever}"] = (_variant, False,
                                               f"{_CHAIN[_i - 1][0]}_{_lever}" if _i else None)
    elif _spec["kind"] == "finishing":
        STAGES[f"fcn8s_{_lever}"] = ("fcn8s", False, "fcn8s")
# Every lever row with the staged rows they are compared with (`stages="levers"`).
LEVER_ROWS = ("fcn32s", "fcn16s", "fcn8s",
              *[f"fcn8s+{lever}" for lever in EVALUATION_LEVERS],
              *[name for name in STAGES if "_" in name and name != "fcn8s_atonce"])  # fmt: skip

# Published CamVid 11-class test mean IU (%), printed beside the rows.
PUBLISHED_CAMVID_MEAN_IU = {
    "FCN-8s (as reported by Yu & Koltun 2016)": 57.0,
    "SegNet (Badrinarayanan et al. 2017)": 60.1,
    "DeepLab-LargeFOV (as reported by Yu & Koltun 2016)": 61.6,
    "Dilation8 (Yu & Koltun 2016)": 65.3,
}

FINAL = "final.keras"
SETTINGS = "settings.json"

# `fcn_keras.TrainConfig` fields that define a row's model and recipe (besides epochs, learning
# rate, scale, crop size and augmentation): a finished or interrupted row is only continued
# or reused when these equal the request. `mixed_precision` is compared as requested (e.g.
# "auto").
RECIPE_ARGUMENTS = ("fc_units", "head", "dropout", "batch_size", "optimizer", "schedule",
                    "warmup_steps", "momentum", "weight_decay", "loss", "class_weights",
                    "mixed_precision", "backbone_weights", "seed", "steps_per_epoch",
                    "crf")  # fmt: skip
# `TrainConfig` fields `run_stages` sets for each row itself (not through `train_kwargs`).
_RECIPE_OWN = ("variant", "source", "out_dir", "source_kwargs", "val_split", "epochs",
               "learning_rate", "init_from", "at_once", "crop_size", "augment", "input_scale")  # fmt: skip
# Everything `settings.json` records, in the order errors list it. `augment` is the
# augmentation asked for (at full scale), `train_augment` the one `train` gets (its random
# rescale range multiplied by `scale`), as `crop_size` / `train_crop_size`.
ROW_SETTINGS = ("epochs", "learning_rate", "scale", "crop_size", "train_crop_size", "augment",
                "train_augment", *RECIPE_ARGUMENTS)  # fmt: skip


def final_rows(final_levers=()):
    """The final recipe's rows for the levers val kept: `{row: (variant, at_once, parent, changes)}`.

    Args:
        final_levers: names from `LEVERS` (a comma-separated string or a list).

    Returns:
        Ordered dict: `final32s`, `final16s`, `final8s` with every kept training
        lever's changes, then each kept finishing stage (`final8s_<lever>`,
        from the previous row), then `<last>+<lever>` for a kept evaluation
        lever (its `changes` are the evaluation options). The last entry is
        the row scored on test.

    Example:
    >>> list(final_rows("whole,lovasz,tta"))
    ['final32s', 'final16s', 'final8s', 'final8s_lovasz', 'final8s_lovasz+tta']
    """
    levers = _names(final_levers)
    unknown = [name for name in levers if name not in LEVERS]
    if unknown:
        raise ValueError(f"final levers: unknown {unknown}; expected a subset of {list(LEVERS)}.")
    evaluation = [name for name in levers if LEVERS[name]["kind"] == "evaluation"]
    if len(evaluation) > 1:
        raise ValueError(
            f"final levers: at most one evaluation lever ({', '.join(EVALUATION_LEVERS)}) can score "
            f"a row; received {evaluation}."
        )
    changes = {}
    for name in levers:
        if LEVERS[name]["kind"] == "training":
            changes = _merged(changes, LEVERS[name]["changes"])
    rows, parent = {}, None
    for variant, short in _CHAIN:
        rows[f"final{short}"] = (variant, False, parent, changes)
        parent = f"final{short}"
    for name in levers:
        if LEVERS[name]["kind"] == "finishing":
            row = f"{parent}_{name}"
            rows[row] = ("fcn8s", False, parent, _merged(changes, LEVERS[name]["changes"]))
            parent = row
    for name in evaluation:
        rows[f"{parent}+{name}"] = ("fcn8s", False, parent, LEVERS[name]["changes"])
    return rows


def row_plan(final_levers=()):
    """Every row `run_stages` can run: `{row: (variant, at_once, parent, changes)}`.

    The `STAGES` rows (lever rows with their `LEVERS` changes, staged rows with
    none), `final_rows(final_levers)`, and `<row>+<lever>` for every trained
    row and evaluation lever (parent: the row it scores).

    Args:
        final_levers: the final recipe's levers. Defaults to none.

    Returns:
        Dict as described.

    Example:
    >>> row_plan()["fcn16s_whole"]
    ('fcn16s', False, 'fcn32s_whole', {'crop_size': None})
    """
    plan = {}
    for row, (variant, at_once, parent) in STAGES.items():
        lever = row.split("_", 1)[1] if "_" in row else None
        plan[row] = (variant, at_once, parent, LEVERS[lever]["changes"] if lever in LEVERS else {})
    plan.update(final_rows(final_levers))
    for row in [name for name in plan if "+" not in name]:
        for lever in EVALUATION_LEVERS:
            plan.setdefault(f"{row}+{lever}", (plan[row][0], plan[row][1], row,
                                               LEVERS[lever]["changes"]))  # fmt: skip
    return plan


def _names(text):
    names = text.split(",") if isinstance(text, str) else list(text or ())
    return [n.strip().lower() for n in names if n.strip()]


def _merged(changes, more):
    """`changes` with `more` applied (`train_kwargs` merged key by key)."""
    merged = dict(changes, **{key: value for key, value in more.items() if key != "train_kwargs"})
    if "train_kwargs" in changes or "train_kwargs" in more:
        merged["train_kwargs"] = {**changes.get("train_kwargs", {}), **more.get("train_kwargs", {})}
    return merged


def parse_stages(text, final_levers=()):
    """Parse `"fcn32s,fcn16s,fcn8s,fcn8s+tta"` into a tuple of row names (validated).

    `levers` stands for `LEVER_ROWS`, `final` for `final_rows(final_levers)`.

    Args:
        text: comma-separated row names, or a list of them.
        final_levers: the final recipe's levers (for `final`). Defaults to none.

    Returns:
        Tuple of names in the given order (duplicates removed).

    Example:
    >>> parse_stages("fcn32s,fcn16s")
    ('fcn32s', 'fcn16s')
    """
    names = []
    for name in _names(text):
        names += (list(LEVER_ROWS) if name == "levers"
                  else list(final_rows(final_levers)) if name == "final" else [name])  # fmt: skip
    plan = row_plan(final_levers)
    unknown = [n for n in names if n not in plan]
    if unknown or not names:
        raise ValueError(
            f"stages: unknown or empty {unknown or text!r}; expected a comma-separated "
            f"subset of {list(STAGES)}, a row and an evaluation lever (e.g. fcn8s+tta; levers "
            f"{list(EVALUATION_LEVERS)}), 'levers' or 'final'."
        )
    return tuple(dict.fromkeys(names))


def stage_finished(stage_dir):
    """Whether a row is finished: its `final.keras` exists (it is only ever renamed into place).

    Args:
        stage_dir: the row's directory, `out_dir/<stage>`.

    Returns:
        True when `stage_dir/final.keras` exists.

    Example:
    >>> stage_finished("/tmp/runs/camvid/fcn32s")
    False
    """
    return os.path.isfile(os.path.join(stage_dir, FINAL))


def recorded_scale(model_path):
    """The input scale a results row was trained at, read from the `stage.json` beside its model.

    Args:
        model_path: a row's `final.keras` (or any file in a row's directory).

    Returns:
        `(scale, where)`: the scale (1.0 when no `stage.json` is there) and a
        few words saying where it came from.

    Example:
    >>> recorded_scale("runs/camvid/fcn8s/final.keras")
    (0.5, 'scale recorded in runs/camvid/fcn8s/stage.json')
    """
    stage = os.path.join(os.path.dirname(os.path.abspath(model_path)), "stage.json")
    if not os.path.isfile(stage):
        return 1.0, "no stage.json beside the model"
    return float(_read_json(stage).get("scale", 1.0)), f"scale recorded in {stage}"


def _read_json(path):
    with open(path) as f:
        return json.load(f)


def _crop_pair(crop):
    """A crop size as `[h, w]` (an int means a square), or None."""
    if crop is None:
        return None
    if isinstance(crop, (int, float)):
        return [int(crop), int(crop)]
    return [int(c) for c in crop]


def _scaled_crop(crop_size, scale):
    """The training crop at `scale`: each side scaled and rounded, at least 32 px."""
    if crop_size is None or scale == 1.0:
        return crop_size
    crop = (crop_size, crop_size) if isinstance(crop_size, int) else crop_size
    return tuple(max(int(round(c * scale)), 32) for c in crop)


def _train_augment(augment, scale):
    """The augmentation `train` gets: `augment` with its random rescale range times `scale`.

    None (the default augmentation) and False (none) are kept as they are at
    full scale; False stays False at any scale.
    """
    from fcn_keras.data.transforms import Augment

    if scale == 1.0 or augment is False:
        return augment
    lo, hi = Augment.coerce(True if augment is None else augment).scale_range
    if isinstance(augment, Augment):
        augment = dataclasses.asdict(augment)
    fields = augment if isinstance(augment, dict) else {}  # None / True: the default fields
    return dict(fields, scale_range=(lo * scale, hi * scale))


def _augment_setting(augment):
    """An augmentation in one spelling: every `Augment` field (None means the default), or False.

    Values that are not an augmentation (e.g. `"<Augment>"`, how an older
    `train_config.json` wrote an `Augment` object) are returned as they are.
    """
    from fcn_keras.data.transforms import Augment

    if isinstance(augment, str):
        return augment
    coerced = Augment.coerce(True if augment is None else augment)
    return False if coerced is None else json.loads(json.dumps(dataclasses.asdict(coerced)))


def _loss_setting(loss):
    """A loss in one spelling: `{"name": ..., **options}` without options left at None.

    A name and `{"name": name}` are the same loss; a `keras.losses.Loss`
    object is recorded by its type name, as `train_config.json` writes it.
    """
    if isinstance(loss, str):
        return loss if loss.startswith("<") else {"name": loss}
    if isinstance(loss, dict):
        return {key: value for key, value in loss.items() if value is not None}
    from fcn_keras.train_config import _jsonable

    return _jsonable(loss)


def _requested_settings(epochs, learning_rate, scale, crop_size, augment, train_kwargs):
    """The `ROW_SETTINGS` of a request, as JSON would hold them (train()'s defaults filled in)."""
    from fcn_keras.train_config import TrainConfig

    kwargs = dict(train_kwargs or {})
    defaults = TrainConfig.defaults()
    settings = {
        "epochs": int(epochs),
        "learning_rate": None if learning_rate is None else float(learning_rate),
        "scale": float(scale),
        "crop_size": _crop_pair(crop_size),
        "train_crop_size": _crop_pair(_scaled_crop(crop_size, scale)),
        "augment": augment,
        "train_augment": _train_augment(augment, scale),
    }
    for key in RECIPE_ARGUMENTS:
        settings[key] = kwargs.get(key, defaults[key])
    return _normalised(settings)


def _path_or_name(value):
    """A weights path made absolute (so `a/w.h5` and `./a/w.h5` compare equal); names as given."""
    if isinstance(value, os.PathLike) or (isinstance(value, str) and os.sep in value):
        return os.path.abspath(os.fspath(value))
    return value


# One spelling of each setting whose equal values can be written several ways; applied to
# requested and recorded settings alike.
_NORMALISE = {"backbone_weights": _path_or_name, "loss": _loss_setting,
              "augment": _augment_setting, "train_augment": _augment_setting}  # fmt: skip


def _normalised(settings):
    """`settings` with `_NORMALISE` applied, as JSON holds them (tuples as lists)."""
    from fcn_keras.train_config import _jsonable

    settings = {key: _NORMALISE.get(key, lambda v: v)(value) for key, value in settings.items()}
    return json.loads(json.dumps(_jsonable(settings)))


def _recorded_settings(stage_dir):
    """`(settings, files)` a row recorded: its `settings.json`, completed by what older files hold.

    Rows written before `settings.json` existed have `train_config.json`
    (`train`'s arguments, rewritten at each start) and, once finished,
    `stage.json` (epochs, learning rate, scale, the training crop); a
    `settings.json` written before a setting joined `ROW_SETTINGS` takes that
    setting from them.
    """
    path = os.path.join(stage_dir, SETTINGS)
    if os.path.isfile(path):
        recorded = _read_json(path)
        if all(key in recorded for key in ROW_SETTINGS):
            return recorded, [path]
        older, files = _older_settings(stage_dir)
        return _normalised({**older, **recorded}), [path, *files]
    return _older_settings(stage_dir)


def _older_settings(stage_dir):
    """`(settings, files)` from a row's `train_config.json` and `stage.json`."""
    recorded, files = {}, []
    config_path = os.path.join(stage_dir, "train_config.json")
    if os.path.isfile(config_path):
        arguments = _read_json(config_path).get("arguments", {})
        for key in ("epochs", "learning_rate", *RECIPE_ARGUMENTS):
            if key in arguments:
                recorded[key] = arguments[key]
        if "crop_size" in arguments:
            recorded["train_crop_size"] = _crop_pair(arguments["crop_size"])
        if "augment" in arguments:  # as given to train: already scaled
            recorded["train_augment"] = arguments["augment"]
        files.append(config_path)
    stage_path = os.path.join(stage_dir, "stage.json")
    if os.path.isfile(stage_path):
        stage = _read_json(stage_path)
        for key in ("epochs", "learning_rate", "scale"):
            if key in stage:
                recorded[key] = stage[key]
        if "crop_size" in stage:
            recorded["train_crop_size"] = _crop_pair(stage["crop_size"])
        files.append(stage_path)
    return _normalised(recorded), files


def _check_settings(stage, stage_dir, requested):
    """Raise when a finished or interrupted row recorded settings other than `requested`."""
    finished = stage_finished(stage_dir)
    if not finished and not os.path.isdir(os.path.join(stage_dir, "backup")):
        return  # nothing trained to keep: the row starts afresh
    recorded, files = _recorded_settings(stage_dir)
    differing = [key for key in ROW_SETTINGS
                 if key in recorded and key in requested and recorded[key] != requested[key]]
    if differing:
        shown = "; ".join(f"{key}: recorded {recorded[key]!r}, requested {requested[key]!r}"
                          for key in differing)  # fmt: skip
        state = "finished" if finished else "interrupted (it has a backup)"
        raise ValueError(
            f"row {stage!r} in {stage_dir!r} is {state} with settings other than the requested "
            f"ones ({shown}; recorded in {', '.join(files)}). Its model and scores do not "
            "answer this request and it is not trained over: give another output directory "
            "(--out) for these settings, or request the recorded ones to reuse or resume it."
        )


def _source_options(source_kwargs):
    """A source's options as JSON holds them, `data_dir` made absolute."""
    kwargs = dict(source_kwargs or {})
    if kwargs.get("data_dir") is not None:
        kwargs["data_dir"] = os.path.abspath(os.fspath(kwargs["data_dir"]))
    return json.loads(json.dumps(kwargs, default=str))


def _source_setting(source, source_kwargs):
    """`{"source", "source_kwargs"}` as an evaluation cache records them (`data_dir` absolute)."""
    if not isinstance(source, str):
        source = f"<{type(source).__name__}>"
    return {"source": source, "source_kwargs": _source_options(source_kwargs)}


def full_split_evaluation(model_path, split, scale, source_kwargs=None):
    """The cached evaluation of a results row on a whole split at `scale`, or why there is none.

    Reads `evaluation_<split>.json` beside the model (written by
    `run_stages`) and returns its report only when it is not older than the
    model and its `evaluation_settings` say it covers the whole split
    (no batch limit) at input scale `scale` and, when both record one, the
    same data directory.

    Args:
        model_path: a row's `final.keras`.
        split: the split, e.g. `"test"`.
        scale: the input scale the model is evaluated at.
        source_kwargs: the source options of the comparison (`data_dir`);
            None compares no data directory. Defaults to None.

    Returns:
        `(report, reason)`: the cached report (a dict with `mean_iu`,
        `pixel_accuracy`, `images` ...) and None, or None and a few words
        saying why the cache does not answer.

    Example:
    >>> report, why = full_split_evaluation("runs/camvid/fcn8s/final.keras", "test", 1.0)
    >>> report["images"] if report else why
    233
    """
    cache = os.path.join(os.path.dirname(os.path.abspath(model_path)), f"evaluation_{split}.json")
    if not os.path.isfile(cache):
        return None, f"no {cache}"
    if os.path.getmtime(cache) < os.path.getmtime(model_path):
        return None, f"{cache} is older than the model"
    report = _read_json(cache)
    recorded = report.get("evaluation_settings")
    if not isinstance(recorded, dict):
        return None, f"{cache} does not record the settings it was computed with"
    wanted = {"split": split, "scale": float(scale), "max_batches": None}
    data_dir = _source_options(source_kwargs).get("data_dir")
    if data_dir is not None and "source_kwargs" in recorded:
        wanted["data_dir"] = data_dir
        recorded = dict(recorded, data_dir=recorded["source_kwargs"].get("data_dir"))
    differing = {key: recorded.get(key) for key, value in wanted.items()
                 if recorded.get(key) != value}  # fmt: skip
    if differing:
        expected = {key: wanted[key] for key in differing}
        return None, f"{cache} was computed with {differing}, not {expected}"
    return report, None


def _epoch_timer(path):
    import keras

    class EpochTimes(keras.callbacks.Callback):
        """Append `{"epoch": e, "seconds": s}` to a JSON-lines file at every finished epoch."""

        def on_epoch_begin(self, epoch, logs=None):
            self._start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            record = {"epoch": int(epoch), "seconds": time.perf_counter() - self._start}
            with open(path, "a") as f:
                f.write(json.dumps(record) + "\n")

    return EpochTimes()


def _training_seconds(path):
    """Sum of the finished epochs' seconds (the last record of a repeated epoch counts)."""
    if not os.path.isfile(path):
        return 0.0, 0
    seconds = {}
    with open(path) as f:
        for line in f:
            if line.strip():
                record = json.loads(line)
                seconds[record["epoch"]] = record["seconds"]
    return float(sum(seconds.values())), len(seconds)


def _host():
    from fcn_keras.distribute import cpu_model_name

    host = {"cpu": cpu_model_name(), "cpu_count": os.cpu_count()}
    try:
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        host["gpus"] = [tf.config.experimental.get_device_details(g).get("device_name", g.name)
                        for g in gpus]  # fmt: skip
    except Exception as e:  # noqa: BLE001 - a host description must not stop a run
        host["gpus"] = f"unknown ({e})"
    return host


def _train_stage(stage, stage_dir, out_dir, *, source, source_kwargs, epochs, learning_rate,
                 scale, crop_size, augment, train_kwargs, settings, log, row=None):  # fmt: skip
    from fcn_keras.files import write_json
    from fcn_keras.training import TrainConfig, train

    variant, at_once, parent = row or STAGES[stage]
    init_from = None
    if parent is not None:
        init_from = os.path.join(out_dir, parent, FINAL)
        if not os.path.isfile(init_from):
            raise ValueError(
                f"row {stage!r} starts from {parent}'s final model {init_from!r}, which does "
                f"not exist: add {parent} to the stages (it runs first) or finish it."
            )
    os.makedirs(stage_dir, exist_ok=True)
    resuming = os.path.isdir(os.path.join(stage_dir, "backup"))
    times = os.path.join(stage_dir, "epoch_times.jsonl")
    if not resuming and os.path.isfile(times):
        os.remove(times)  # a fresh start repeats every epoch: earlier records are stale
    write_json(os.path.join(stage_dir, SETTINGS), settings)
    log(f"{stage}: {'resuming from its backup' if resuming else 'training'} "
        f"({epochs} epochs, learning rate {learning_rate:g}"
        f"{', init from ' + parent if parent else ''})")  # fmt: skip
    if scale != 1.0:
        augment = _train_augment(augment, scale)
        crop_size = _scaled_crop(crop_size, scale)
    kwargs = dict(train_kwargs or {})
    callbacks = [_epoch_timer(times)]
    callbacks += list(kwargs.pop("callbacks", None) or [])
    row_config = TrainConfig(variant, source, out_dir=stage_dir, source_kwargs=source_kwargs,
                             val_split=None, epochs=epochs, learning_rate=learning_rate,
                             init_from=init_from, at_once=at_once, crop_size=crop_size,
                             augment=augment, callbacks=callbacks, input_scale=scale, **kwargs)  # fmt: skip
    model, _ = train(**row_config.arguments())
    seconds, counted = _training_seconds(times)
    config = _read_json(os.path.join(stage_dir, "train_config.json"))
    write_json(os.path.join(stage_dir, "stage.json"), {
        "stage": stage, "variant": config["derived"]["variant"], "epochs": epochs,
        "epochs_timed": counted, "learning_rate": learning_rate, "train_seconds": seconds,
        "precision": config["derived"]["precision"], "scale": scale, "crop_size": crop_size,
        "init_from": init_from,
    })  # fmt: skip
    partial = os.path.join(stage_dir, "final.partial.keras")
    model.save(partial)
    os.replace(partial, os.path.join(stage_dir, FINAL))
    log(f"{stage}: finished in {seconds:.0f} s of training")


def _evaluate_stage(stage_dir, split, *, source, source_kwargs, scale, trimap_widths,
                    batch_size, max_batches, log, lever=None):  # fmt: skip
    """Evaluate a row's final model on `split` (cached); `lever` names an evaluation lever."""
    from fcn_keras.evaluation import evaluate, load_model
    from fcn_keras.files import write_json

    final = os.path.join(stage_dir, FINAL)
    cache = os.path.join(stage_dir, f"evaluation_{split}{'+' + lever if lever else ''}.json")
    key = {**_source_setting(source, source_kwargs), "split": split, "scale": float(scale),
           "batch_size": int(batch_size),
           "max_batches": None if max_batches is None else int(max_batches),
           "trimap_widths": [int(w) for w in trimap_widths or ()]}  # fmt: skip
    options = {}
    if lever:
        options = json.loads(json.dumps(LEVERS[lever]["changes"]))
        key["lever"] = {"name": lever, **options}
    if os.path.isfile(cache) and os.path.getmtime(cache) >= os.path.getmtime(final):
        cached = _read_json(cache)
        if cached.get("evaluation_settings") == key:
            return cached
        log(f"{os.path.basename(stage_dir)} on {split}: cached evaluation was computed with "
            f"{cached.get('evaluation_settings', 'unrecorded settings')}, requested {key}: "
            "evaluating again")  # fmt: skip
    start = time.perf_counter()
    model = load_model(final)
    if "tta" in options:
        from fcn_keras.tta import with_tta

        model = with_tta(model, **options["tta"])
    report = evaluate(model, source, split, batch_size=batch_size,
                      source_kwargs=source_kwargs, trimap_widths=trimap_widths,
                      input_scale=None if scale == 1.0 else scale, max_batches=max_batches,
                      **({"shift_and_stitch": options["shift_and_stitch"]}
                         if "shift_and_stitch" in options else {}))  # fmt: skip
    report.pop("confusion_matrix", None)
    report["evaluate_seconds"] = time.perf_counter() - start
    report["evaluation_settings"] = key
    write_json(cache, report)
    log(f"{os.path.basename(stage_dir)}{'+' + lever if lever else ''} on {split}: "
        f"mean IU {report['mean_iu']:.4f}, "
        f"pixel accuracy {report['pixel_accuracy']:.4f}")  # fmt: skip
    return _read_json(cache)  # JSON's view (trimap widths as strings), as when reused


def run_stages(out_dir, stages, *, schedules, source="camvid", source_kwargs=None, scale=1.0,
               crop_size=None, augment=None, test=False, val_split="val", test_split="test",
               trimap_widths=TRIMAP_WIDTHS, eval_batch_size=1, max_eval_batches=None,
               train_kwargs=None, settings=None, log=print, final_levers=()):  # fmt: skip
    """Train and evaluate the requested rows, skipping finished ones; write `results.json`.

    Args:
        out_dir: run directory (weights, logs, results); created.
        stages: row names or a comma-separated string (see `STAGES`, `LEVERS`,
            `parse_stages`), run in the given order; `<row>+<lever>` is
            scored after `<row>`, which it needs finished or requested.
        schedules: `{stage: (epochs, learning_rate)}` for every requested
            trained row; the final rows default to their levers' rows'
            (`final8s`: `fcn8s_long` when `long` is kept, else `fcn8s`;
            `final8s_lovasz`: `fcn8s_lovasz` ...).
        source: data source name. Defaults to `"camvid"`.
        source_kwargs: the source's options (`data_dir` ...).
        scale: image scale of training and evaluation input, in (0, 1].
            Defaults to 1.0.
        crop_size: training crop at full scale (int or `(h, w)`), or None.
        augment: training augmentation as a dict of `Augment` fields, or
            None (the default augmentation).
        test: also evaluate every row on `test_split` (True), or only the rows
            named (a list or comma-separated string; `final` is the final
            recipe's scored row). Defaults to False.
        val_split: split evaluated for choosing. Defaults to `"val"`.
        test_split: the held-out split. Defaults to `"test"`.
        trimap_widths: band widths of the trimap mean IU. Defaults to (2, 4, 8, 16).
        eval_batch_size: evaluation batch size. Defaults to 1.
        max_eval_batches: limit on evaluation batches (quick checks). Defaults to all.
        train_kwargs: further `fcn_keras.train` arguments (batch_size,
            fc_units, optimizer, mixed_precision, backbone_weights, seed,
            steps_per_epoch, callbacks, ...).
        settings: dict recorded as `settings` in results.json (e.g. the
            command line). Defaults to None.
        log: progress printer. Defaults to `print`.
        final_levers: the levers the final recipe combines (see
            `final_rows`). Defaults to none.

    Returns:
        The results dict written to `out_dir/results.json`: `settings`,
        `host`, and `rows` (`{stage: {"variant", "epochs", "learning_rate",
        "train_seconds", "precision", "scale", "val": report, "test": report}}`;
        an evaluation lever's row adds `evaluated_from` and `evaluation`).

    Example:
    >>> run_stages("/tmp/runs/camvid", "fcn32s,fcn16s,fcn8s",
    ...            schedules={"fcn32s": (60, 1e-4), "fcn16s": (30, 1e-5), "fcn8s": (30, 1e-5)},
    ...            source_kwargs={"data_dir": "../shared/data/camvid"}, crop_size=(352, 480),
    ...            train_kwargs={"backbone_weights": "vgg16.weights.h5"})
    """
    from fcn_keras.files import write_json
    from fcn_keras.training import TrainConfig

    plan = row_plan(final_levers)
    stages = parse_stages(stages, final_levers)
    if not 0 < float(scale) <= 1:
        raise ValueError(f"scale must be in (0, 1]; received {scale!r}.")
    recipe = set(_RECIPE_OWN) & set(train_kwargs or {})
    if recipe:
        raise ValueError(
            f"train_kwargs sets {sorted(recipe)}, which run_stages sets itself for each row "
            "(schedules, scale, crop_size, augment, source, source_kwargs)."
        )
    TrainConfig().replace(**dict(train_kwargs or {}))  # names and values checked before any work
    scale = float(scale)
    trained = [s for s in stages if "+" not in s]
    schedules = _with_final_schedules(schedules, trained, final_levers)
    missing = [s for s in trained if s not in schedules]
    if missing:
        raise ValueError(f"schedules has no (epochs, learning_rate) for {missing}.")
    for stage in stages:
        parent = plan[stage][2]
        if "+" in stage and parent not in stages and not stage_finished(os.path.join(out_dir, parent)):
            raise ValueError(
                f"row {stage!r} scores {parent}'s final model, which is neither finished in "
                f"{out_dir!r} nor requested: add {parent} before it in the stages."
            )
    test_rows = _test_rows(test, stages, final_levers)
    row_crop, row_kwargs = {}, {}
    for stage in trained:
        changes = plan[stage][3]
        row_crop[stage] = changes["crop_size"] if "crop_size" in changes else crop_size
        row_kwargs[stage] = {**(train_kwargs or {}), **changes.get("train_kwargs", {})}
    requested = {stage: _requested_settings(*schedules[stage], scale, row_crop[stage], augment,
                                            row_kwargs[stage])
                 for stage in trained}  # fmt: skip
    for stage in trained:  # before any training: a mismatch later on would waste the rows before
        _check_settings(stage, os.path.join(out_dir, stage), requested[stage])
    os.makedirs(out_dir, exist_ok=True)
    results = {"settings": dict(settings or {}), "host": _host(), "rows": {}}
    if final_levers:
        results["settings"].setdefault("final_levers", _names(final_levers))
    results_path = os.path.join(out_dir, "results.json")
    for stage in stages:
        variant, at_once, parent, changes = plan[stage]
        lever = stage.split("+", 1)[1] if "+" in stage else None
        stage_dir = os.path.join(out_dir, parent if lever else stage)
        if lever:
            log(f"{stage}: {parent}'s final model scored with {lever} {changes}")
        elif stage_finished(stage_dir):
            log(f"{stage}: finished earlier ({os.path.join(stage_dir, FINAL)}); skipped")
        else:
            epochs, learning_rate = schedules[stage]
            _train_stage(stage, stage_dir, out_dir, source=source, source_kwargs=source_kwargs,
                         epochs=epochs, learning_rate=learning_rate, scale=scale,
                         crop_size=row_crop[stage], augment=augment,
                         train_kwargs=row_kwargs[stage], settings=requested[stage], log=log,
                         row=(variant, at_once, parent))  # fmt: skip
        row = _read_json(os.path.join(stage_dir, "stage.json"))
        if lever:
            row.update(evaluated_from=parent, evaluation={"lever": lever, **changes})
        splits = [val_split] + ([test_split] if stage in test_rows else [])
        for split in splits:
            row[split] = _evaluate_stage(stage_dir, split, source=source,
                                         source_kwargs=source_kwargs, scale=scale,
                                         trimap_widths=trimap_widths,
                                         batch_size=eval_batch_size,
                                         max_batches=max_eval_batches, log=log,
                                         lever=lever)  # fmt: skip
        row["files"] = {"model": os.path.join(stage_dir, FINAL), "logs": stage_dir}
        results["rows"][stage] = row
        write_json(results_path, results)  # after every row: partial runs keep their figures
    return results


def _with_final_schedules(schedules, trained, final_levers):
    """`schedules` completed with the final rows' defaults: the schedule of each one's lever row."""
    levers = _names(final_levers)
    schedules = dict(schedules)
    base = {"final32s": "fcn32s", "final16s": "fcn16s", "final8s": "fcn8s"}
    for stage in trained:
        if stage in schedules or not stage.startswith("final"):
            continue
        if stage in base:
            source = base[stage] + ("_long" if "long" in levers else "")
        else:  # a finishing stage: final8s_<lever>[_<lever>]; its own lever is the last
            source = f"fcn8s_{stage.rsplit('_', 1)[1]}"
        if source in schedules:
            schedules[stage] = schedules[source]
    return schedules


def _test_rows(test, stages, final_levers):
    """The rows scored on the test split: all (`test` True), none, or those named."""
    if test is True:
        return set(stages)
    if not test:
        return set()
    names = set()
    for name in _names(test):
        names.add(list(final_rows(final_levers))[-1] if name == "final" else name)
    unknown = sorted(names - set(stages))
    if unknown:
        raise ValueError(f"test rows {unknown} are not among the requested stages {list(stages)}.")
    return names


def figures_only(results):
    """A copy of `results` without paths of the machine, to publish beside the code (no weights, no paths).

    Settings holding paths (`out`, `data_dir`, `json_copy`) are dropped,
    `backbone_weights` is reduced to its file name, rows lose `files` and
    `init_from`, every report's `evaluation_settings.source_kwargs` loses its
    `data_dir`, and any other string that is an absolute path (or starts
    with `~`) is reduced to its file name: the copy names no folder of the
    machine that ran it.

    Args:
        results: a `run_stages` result (or `results.json` as loaded).

    Returns:
        A new dict; `results` is unchanged.

    Example:
    >>> results = json.load(open("/tmp/runs/camvid/results.json"))
    >>> json.dump(figures_only(results), open("docs/results/camvid.json", "w"), indent=2)
    """
    copy = json.loads(json.dumps(results))
    settings = copy.get("settings", {})
    for key in ("out", "data_dir", "json_copy"):
        settings.pop(key, None)
    if settings.get("backbone_weights"):
        settings["backbone_weights"] = os.path.basename(settings["backbone_weights"])
    for row in copy.get("rows", {}).values():
        row.pop("files", None)
        row.pop("init_from", None)
        for report in row.values():
            recorded = report.get("evaluation_settings") if isinstance(report, dict) else None
            if isinstance(recorded, dict) and isinstance(recorded.get("source_kwargs"), dict):
                recorded["source_kwargs"].pop("data_dir", None)
    return _without_absolute_paths(copy)


def is_machine_path(value):
    """Whether `value` is a string naming a folder of this machine: an absolute or `~` path.

    Args:
        value: any JSON value.

    Returns:
        True for strings such as `"/work/data"`, `"~/runs"` or `"C:\\data"`.

    Example:
    >>> is_machine_path("/work/shared/data/camvid"), is_machine_path("vgg16.weights.h5")
    (True, False)
    """
    if not isinstance(value, str) or not value:
        return False
    return os.path.isabs(value) or value.startswith("~") or (len(value) > 2 and value[1:3] in (":\\", ":/"))


def _without_absolute_paths(value):
    """`value` with every machine path (`is_machine_path`) reduced to its file name."""
    if isinstance(value, dict):
        return {key: _without_absolute_paths(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_without_absolute_paths(item) for item in value]
    if is_machine_path(value):
        return os.path.basename(value.replace("\\", "/").rstrip("/"))
    return value


def results_to_markdown(results, split="val"):
    """A Markdown table of the rows on `split`, with the published CamVid figures beside them.

    The trimap columns are the band widths the reports hold (any row's), in
    increasing order.

    Args:
        results: a `run_stages` result (or `results.json` as loaded).
        split: the split whose reports are shown. Defaults to `"val"`;
            rows without a report on it are left out.

    Returns:
        The Markdown text (a host line, the table, the published figures).

    Example:
    >>> print(results_to_markdown(json.load(open("/tmp/runs/camvid/results.json")), "test"))
    """
    pct = lambda v: "n/a" if v is None else f"{100 * v:.1f}"  # noqa: E731
    rows = results.get("rows", {})
    widths = sorted({str(w) for row in rows.values()
                     for w in ((row.get(split) or {}).get("trimap_mean_iu") or {})},
                    key=float)  # fmt: skip
    host = results.get("host", {})
    lines = [
        f"Split `{split}`; host: {host.get('cpu', '?')} ({host.get('cpu_count', '?')} cores)"
        + (f", GPU {', '.join(host['gpus'])}" if isinstance(host.get("gpus"), list)
           and host.get("gpus") else "") + ".",  # fmt: skip
        "",
        "| Row | Pixel acc. | Mean acc. | Mean IU | f.w. IU | "
        + " | ".join(f"Trimap {w} px" for w in widths)
        + " | Train time | Precision | Scale |",
        "| --- " + "| ---: " * (7 + len(widths)) + "|",
    ]
    for stage, row in rows.items():
        report = row.get(split)
        if report is None:
            continue
        trimap = {str(w): v for w, v in (report.get("trimap_mean_iu") or {}).items()}
        cells = [pct(report.get(name)) for name in SCORE_NAMES]
        cells += [pct(trimap.get(w)) for w in widths]
        cells += [f"{row.get('train_seconds', 0) / 60:.1f} min", str(row.get("precision")),
                  f"{row.get('scale', 1.0):g}"]  # fmt: skip
        lines.append(f"| {stage} | " + " | ".join(cells) + " |")
    lines += ["", "Published CamVid 11-class test mean IU, for comparison:", ""]
    lines += [f"- {name}: {value:.1f}" for name, value in PUBLISHED_CAMVID_MEAN_IU.items()]
    return "\n".join(lines) + "\n"
