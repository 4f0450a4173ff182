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

Resuming: rerunning the same call skips every finished row and continues an
interrupted one.

- A row is finished when `out_dir/<stage>/final.keras` exists: it is written
  to `final.partial.keras` and renamed into place (atomic on one file
  system), after the row's `stage.json` (epochs, learning rate, training
  seconds), so a row killed while saving is simply trained again from its
  backup.
- An interrupted row resumes from `out_dir/<stage>/backup/` (Keras's
  `BackupAndRestore`, kept by `fcn_keras.train` until the fit completes): at
  most the epoch that was running is repeated; `history.csv` is appended to.
- Training wall time is the sum of the finished epochs' seconds
  (`epoch_times.jsonl`, one line per finished epoch, the last one of a
  repeated epoch counts), so time lost to an interruption is not counted.
- Evaluations are cached next to the model (`evaluation_<split>.json`) and
  reused while `final.keras` is not newer.

Scale: with `scale < 1` the training crops and the augmentation's random
rescale range are multiplied by `scale` (the net sees images resized by that
factor, for slow hosts), and evaluation resizes each image by `scale`,
predicts, and resizes the logits bilinearly back to the labels' full size
before the argmax (`evaluate(input_scale=...)`): scores are always on
full-size labels.

Per-epoch validation is off (`val_split=None`; it would evaluate the whole
validation split every epoch): `best.keras` tracks the training mean IU, and
each row's `final.keras` is the model after its last epoch, scored on the
validation split after training.

Reference: Long et al. 2015, Section 4.2 (staged training), Section 5
(metrics); Shelhamer et al. 2016 (PAMI), Section 4 (at-once FCN-8s).
"""

import json
import os
import time

from fcn_keras.metrics import SCORE_NAMES, TRIMAP_WIDTHS

__all__ = ["STAGES", "PUBLISHED_CAMVID_MEAN_IU", "run_stages", "parse_stages", "stage_finished",
           "results_to_markdown", "figures_only"]  # fmt: skip

# Row -> (variant, at_once, the row whose final model it starts from).
STAGES = {
    "fcn32s": ("fcn32s", False, None),
    "fcn16s": ("fcn16s", False, "fcn32s"),
    "fcn8s": ("fcn8s", False, "fcn16s"),
    "fcn8s_atonce": ("fcn8s", True, None),
}

# Published CamVid 11-class test mean IU (%), printed beside the rows.
PUBLISHED_CAMVID_MEAN_IU = {
    "FCN-8s (as reported by Yu & Koltun 2016)": 57.0,
    "SegNet (Badrinarayanan et al. 2017)": 60.1,
    "DeepLab-LargeFOV (as reported by Yu & Koltun 2016)": 61.6,
    "Dilation8 (Yu & Koltun 2016)": 65.3,
}

FINAL = "final.keras"


def parse_stages(text):
    """Parse `"fcn32s,fcn16s,fcn8s,fcn8s_atonce"` into a tuple of row names (validated).

    Args:
        text: comma-separated row names, or a list of them.

    Returns:
        Tuple of names in the given order (duplicates removed).

    Example:
    >>> parse_stages("fcn32s,fcn16s")
    ('fcn32s', 'fcn16s')
    """
    names = text.split(",") if isinstance(text, str) else list(text)
    names = [n.strip().lower() for n in names if n.strip()]
    unknown = [n for n in names if n not in STAGES]
    if unknown or not names:
        raise ValueError(
            f"stages: unknown or empty {unknown or text!r}; expected a comma-separated "
            f"subset of {list(STAGES)}."
        )
    return tuple(dict.fromkeys(names))


def stage_finished(stage_dir):
    """Whether a row is finished: its `final.keras` exists (it is only ever renamed into place)."""
    return os.path.isfile(os.path.join(stage_dir, FINAL))


def _write_json(path, data):
    """Write JSON atomically: a partial file renamed into place."""
    with open(path + ".partial", "w") as f:
        json.dump(data, f, indent=2)
    os.replace(path + ".partial", path)


def _read_json(path):
    with open(path) as f:
        return json.load(f)


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
                 scale, crop_size, augment, train_kwargs, log):  # fmt: skip
    from fcn_keras.training import train

    variant, at_once, parent = STAGES[stage]
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
    log(f"{stage}: {'resuming from its backup' if resuming else 'training'} "
        f"({epochs} epochs, learning rate {learning_rate:g}"
        f"{', init from ' + parent if parent else ''})")  # fmt: skip
    if scale != 1.0:
        lo, hi = (augment or {}).get("scale_range", (0.5, 2.0))
        augment = dict(augment or {}, scale_range=(lo * scale, hi * scale))
        if crop_size is not None:
            crop = (crop_size, crop_size) if isinstance(crop_size, int) else crop_size
            crop_size = tuple(max(int(round(c * scale)), 32) for c in crop)
    kwargs = dict(train_kwargs or {})
    callbacks = [_epoch_timer(os.path.join(stage_dir, "epoch_times.jsonl"))]
    callbacks += list(kwargs.pop("callbacks", None) or [])
    model, _ = train(variant, source, out_dir=stage_dir, source_kwargs=source_kwargs,
                     val_split=None, epochs=epochs, learning_rate=learning_rate,
                     init_from=init_from, at_once=at_once, crop_size=crop_size,
                     augment=augment, callbacks=callbacks, **kwargs)  # fmt: skip
    seconds, counted = _training_seconds(os.path.join(stage_dir, "epoch_times.jsonl"))
    config = _read_json(os.path.join(stage_dir, "train_config.json"))
    _write_json(os.path.join(stage_dir, "stage.json"), {
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
                    batch_size, max_batches, log):  # fmt: skip
    from fcn_keras.evaluation import evaluate, load_model

    final = os.path.join(stage_dir, FINAL)
    cache = os.path.join(stage_dir, f"evaluation_{split}.json")
    if os.path.isfile(cache) and os.path.getmtime(cache) >= os.path.getmtime(final):
        return _read_json(cache)
    start = time.perf_counter()
    report = evaluate(load_model(final), source, split, batch_size=batch_size,
                      source_kwargs=source_kwargs, trimap_widths=trimap_widths,
                      input_scale=None if scale == 1.0 else scale,
                      max_batches=max_batches)  # fmt: skip
    report.pop("confusion_matrix", None)
    report["evaluate_seconds"] = time.perf_counter() - start
    _write_json(cache, report)
    log(f"{os.path.basename(stage_dir)} on {split}: mean IU {report['mean_iu']:.4f}, "
        f"pixel accuracy {report['pixel_accuracy']:.4f}")  # fmt: skip
    return _read_json(cache)  # JSON's view (trimap widths as strings), as when reused


def run_stages(out_dir, stages, *, schedules, source="camvid", source_kwargs=None, scale=1.0,
               crop_size=None, augment=None, test=False, val_split="val", test_split="test",
               trimap_widths=TRIMAP_WIDTHS, eval_batch_size=1, max_eval_batches=None,
               train_kwargs=None, settings=None, log=print):  # fmt: skip
    """Train and evaluate the requested rows, skipping finished ones; write `results.json`.

    Args:
        out_dir: run directory (weights, logs, results); created.
        stages: row names or a comma-separated string (see `STAGES`), run in
            the given order.
        schedules: `{stage: (epochs, learning_rate)}` for every requested row.
        source: data source name. Defaults to `"camvid"`.
        source_kwargs: the source's options (`data_dir` ...).
        scale: image scale of training and evaluation input, in (0, 1].
            Defaults to 1.0.
        crop_size: training crop at full scale (int or `(h, w)`), or None.
        augment: training augmentation as a dict of `Augment` fields, or
            None (the default augmentation).
        test: also evaluate every finished row on `test_split`. Defaults to False.
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

    Returns:
        The results dict written to `out_dir/results.json`: `settings`,
        `host`, and `rows` (`{stage: {"variant", "epochs", "learning_rate",
        "train_seconds", "precision", "scale", "val": report, "test": report}}`).

    Example:
    >>> run_stages("/tmp/runs/camvid", "fcn32s,fcn16s,fcn8s",
    ...            schedules={"fcn32s": (60, 1e-4), "fcn16s": (30, 1e-5), "fcn8s": (30, 1e-5)},
    ...            source_kwargs={"data_dir": "../shared/data/camvid"}, crop_size=(352, 480),
    ...            train_kwargs={"backbone_weights": "vgg16.weights.h5"})
    """
    stages = parse_stages(stages)
    if not 0 < float(scale) <= 1:
        raise ValueError(f"scale must be in (0, 1]; received {scale!r}.")
    scale = float(scale)
    missing = [s for s in stages if s not in schedules]
    if missing:
        raise ValueError(f"schedules has no (epochs, learning_rate) for {missing}.")
    os.makedirs(out_dir, exist_ok=True)
    results = {"settings": dict(settings or {}), "host": _host(), "rows": {}}
    results_path = os.path.join(out_dir, "results.json")
    for stage in stages:
        stage_dir = os.path.join(out_dir, stage)
        epochs, learning_rate = schedules[stage]
        if stage_finished(stage_dir):
            log(f"{stage}: finished earlier ({os.path.join(stage_dir, FINAL)}); skipped")
        else:
            _train_stage(stage, stage_dir, out_dir, source=source, source_kwargs=source_kwargs,
                         epochs=epochs, learning_rate=learning_rate, scale=scale,
                         crop_size=crop_size, augment=augment, train_kwargs=train_kwargs,
                         log=log)  # fmt: skip
        row = _read_json(os.path.join(stage_dir, "stage.json"))
        splits = [val_split] + ([test_split] if test else [])
        for split in splits:
            row[split] = _evaluate_stage(stage_dir, split, source=source,
                                         source_kwargs=source_kwargs, scale=scale,
                                         trimap_widths=trimap_widths,
                                         batch_size=eval_batch_size,
                                         max_batches=max_eval_batches, log=log)  # fmt: skip
        row["files"] = {"model": os.path.join(stage_dir, FINAL), "logs": stage_dir}
        results["rows"][stage] = row
        _write_json(results_path, results)  # after every row: partial runs keep their figures
    return results


def figures_only(results):
    """A copy of `results` without file paths, to publish beside the code (no weights, no paths).

    Settings holding paths (`out`, `data_dir`, `json_copy`) are dropped and
    `backbone_weights` is reduced to its file name.
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
    return copy


def results_to_markdown(results, split="val"):
    """A Markdown table of the rows on `split`, with the published CamVid figures beside them."""
    pct = lambda v: "n/a" if v is None else f"{100 * v:.1f}"  # noqa: E731
    rows = results.get("rows", {})
    widths = [str(w) for w in TRIMAP_WIDTHS]
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
        trimap = report.get("trimap_mean_iu") or {}
        cells = [pct(report.get(name)) for name in SCORE_NAMES]
        cells += [pct(trimap.get(w)) for w in widths]
        cells += [f"{row.get('train_seconds', 0) / 60:.1f} min", str(row.get("precision")),
                  f"{row.get('scale', 1.0):g}"]  # fmt: skip
        lines.append(f"| {stage} | " + " | ".join(cells) + " |")
    lines += ["", "Published CamVid 11-class test mean IU, for comparison:", ""]
    lines += [f"- {name}: {value:.1f}" for name, value in PUBLISHED_CAMVID_MEAN_IU.items()]
    return "\n".join(lines) + "\n"
