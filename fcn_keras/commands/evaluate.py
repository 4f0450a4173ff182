"""`fcn-keras evaluate`: the paper's four scores and per-class IoU of a model on a dataset split.

    fcn-keras evaluate runs/fcn8s/best.keras --source camvid --data-dir ../shared/data/camvid

Prints a Markdown table (or JSON). Without `--source`, a `.keras` model is
evaluated on the dataset it was trained on (its `dataset_info.name`; the
dataset's options, e.g. `--data-dir`, still come from the command line); a
model without one, or a `.weights.h5` file, needs `--source`. `--shift-and-stitch F`
scores the coarse map made F times denser by shift-and-stitch (the paper's
Section 3.2) instead of the model's own upsampling. `--crf` scores the
model followed by a dense CRF (`fcn_keras.DenseCRF`) with the settings saved
next to the model (`MODEL.crf.json`, see `fcn_keras.crf.save_crf_settings`),
else `--crf-settings FILE`, else the defaults; the output says which. `--tta`
scores the logits averaged over input scales and mirror images
(`fcn_keras.with_tta`; `--tta-scales 0.75,1,1.25`, `--no-tta-flip`), before
the CRF when both are given. Arguments are
declared here; the library is imported inside the handler (see
`fcn_keras/commands/__init__.py`).
"""

import argparse

from fcn_keras.choices import VARIANTS
from fcn_keras.commands.sources import add_source_arguments, source_kwargs
from fcn_keras.commands.tta import add_tta_arguments, tta_options

__all__ = ["register"]


def register(subparsers):
    """Add `fcn-keras evaluate` to the `fcn-keras` parser.

    Args:
        subparsers: the `add_subparsers()` object of the `fcn-keras` parser.
    """
    parser = subparsers.add_parser(
        "evaluate",
        help="pixel accuracy, mean accuracy, mean IU, frequency-weighted IU and per-class IoU",
        description="Evaluate a model on a dataset split; prints a Markdown table (or JSON).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("model", help="a .keras file, or a .weights.h5 with --variant etc.")
    add_source_arguments(parser, default=None, default_help="the model's own dataset")
    parser.add_argument("--split", default="val")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-batches", type=int, default=None)
    parser.add_argument("--variant", default=None,
                        help=f"for a .weights.h5 file: {', '.join(VARIANTS)}")  # fmt: skip
    parser.add_argument("--num-classes", type=int, default=None, help="for a .weights.h5 file")
    parser.add_argument("--fc-units", type=int, default=4096, help="for a .weights.h5 file")
    parser.add_argument("--trainable-upsampling", action="store_true",
                        help="for a .weights.h5 file trained with it")  # fmt: skip
    parser.add_argument("--shift-and-stitch", type=int, default=None, metavar="F",
                        help="make the coarse scores F times denser by shift-and-stitch "
                             "(a power of 2 dividing the coarse stride: 32 for FCN-32s, 16 "
                             "for FCN-16s, 8 for FCN-8s) and upsample them bilinearly")  # fmt: skip
    parser.add_argument("--crf", action="store_true",
                        help="refine the logits with a dense CRF, with the settings in MODEL.crf.json "
                             "when it exists, else the DenseCRF defaults")  # fmt: skip
    parser.add_argument("--crf-settings", default=None, metavar="FILE",
                        help="with --crf: read the CRF settings from FILE instead")  # fmt: skip
    add_tta_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print JSON instead of Markdown")
    parser.add_argument("--output", default=None,
                        help="also write <output>.json and <output>.md")  # fmt: skip
    parser.set_defaults(handler=run)


def _model_source(model, path):
    """The source string of the dataset `model` was trained on (its `dataset_info.name`)."""
    from fcn_keras.data.sources import source_class

    info = getattr(model, "dataset_info", None)
    if info is None:
        raise ValueError(f"{path!r} carries no dataset_info (the dataset it was trained on): "
                         "pass --source (and --data-dir) to name the data to evaluate on.")  # fmt: skip
    try:
        source_class(info.name)
    except ValueError:
        raise ValueError(f"{path!r} was trained on dataset {info.name!r}, which is not a source "
                         "name: pass --source (and its options) to evaluate on it.") from None  # fmt: skip
    return info.name


def run(args):
    """Evaluate the model `args` name and print the report; returns the exit code."""
    from fcn_keras.evaluation import evaluate, load_model, report_to_json, report_to_markdown

    options = source_kwargs(args)
    num_classes = args.num_classes
    weights_only = args.model.endswith(".weights.h5")
    if weights_only and args.source is None:
        raise ValueError(f"{args.model!r} holds weights only, with no dataset facts: pass --source "
                         "(and --data-dir) to name the data to evaluate on.")  # fmt: skip
    if weights_only and num_classes is None:
        from fcn_keras.data import dataset_info

        num_classes = dataset_info(args.source, **options).num_classes
    model = load_model(args.model, variant=args.variant, num_classes=num_classes,
                       fc_units=args.fc_units,
                       trainable_upsampling=args.trainable_upsampling)  # fmt: skip
    source = args.source if args.source is not None else _model_source(model, args.model)
    crf = None
    tta = tta_options(args)
    if tta is not None:
        if args.shift_and_stitch:
            raise ValueError("--tta and --shift-and-stitch cannot be combined: shift-and-stitch "
                             "reads the model's coarse map, which the averaged views do not have.")  # fmt: skip
        from fcn_keras.tta import with_tta

        model = with_tta(model, **tta)
    if args.crf_settings and not args.crf:
        raise ValueError("--crf-settings given without --crf: add --crf (or drop it).")
    if args.crf:
        if args.shift_and_stitch:
            raise ValueError("--crf and --shift-and-stitch cannot be combined: the CRF refines the "
                             "model's own full-resolution logits.")  # fmt: skip
        from fcn_keras.crf import with_saved_crf

        model, crf_options, crf_source = with_saved_crf(model, args.model, args.crf_settings)
        crf = {"settings": crf_options, "source": crf_source}
    report = evaluate(model, source, args.split, batch_size=args.batch_size,
                      max_batches=args.max_batches, source_kwargs=options,
                      shift_and_stitch=args.shift_and_stitch)  # fmt: skip
    if crf is not None:
        report["crf"] = crf
    if tta is not None:
        report["tta"] = {"scales": list(tta["scales"]), "flip": tta["flip"]}
    text_json = report_to_json(report)
    stitched = f", shift-and-stitch x{args.shift_and_stitch}" if args.shift_and_stitch else ""
    stitched += (f", TTA scales {','.join(f'{s:g}' for s in tta['scales'])}"
                 f"{' + flip' if tta['flip'] else ''}") if tta else ""
    stitched += f", dense CRF ({crf['source']})" if crf else ""
    text_md = report_to_markdown(report, title=f"{model.name} on {source} {args.split}{stitched}")
    if args.output:
        with open(args.output + ".json", "w") as f:
            f.write(text_json)
        with open(args.output + ".md", "w") as f:
            f.write(text_md)
    print(text_json if args.json else text_md)
    return 0
