"""Figure: why skips help, CamVid test images segmented by FCN-32s, FCN-16s and FCN-8s side by side.

One PNG grid, one row per image: image | ground truth | one column per model
(`--models name=path.keras ...`, any number, in the given order), under a
title row, with a legend of the class colours at the bottom. Masks are
coloured with the model's `dataset_info` palette (CamVid's when the model
carries none), void black; each prediction cell shows that image's mean IU
(void ignored, `fcn_keras.metrics`). Predictions are made at full size
(480x360, the Keras model run in float32 through `fcn_keras.export.Predictor`,
which applies the input scale a model trained at reduced scale carries), then
every cell is downscaled to `--cell` (masks with nearest neighbour,
`fcn_keras.visualize.comparison_figure`) and the PNG is optimised.

The default images are 4 spread evenly over the split (deterministic).
The PNG may go under docs/ (it holds no weights); anywhere else inside the
repository is refused.

Usage:
    .venv/bin/python bench/camvid_figure.py --out docs/results/camvid_skips.png \
        --models FCN-32s=/tmp/fcn_keras_runs/camvid/fcn32s/final.keras \
                 FCN-16s=/tmp/fcn_keras_runs/camvid/fcn16s/final.keras \
                 FCN-8s=/tmp/fcn_keras_runs/camvid/fcn8s/final.keras
    (defaults: --data-dir ../shared/data/camvid, --split test, --cell 240x180)
"""

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # bench/: _common
from _common import CAMVID_DIR, DOCS, existing_dir, inside_repo_error, named_model, positive_int  # noqa: E402

DEFAULT_IMAGES = 4


def _cell_size(text):
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        width = height = 0
    if width < 16 or height < 16:
        raise argparse.ArgumentTypeError(f"--cell {text!r}: expected WIDTHxHEIGHT, each >= 16, e.g. 240x180")
    return width, height


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--models", type=named_model, nargs="+", required=True, metavar="NAME=PATH",
                        help="one column per model, e.g. FCN-32s=runs/fcn32s/final.keras")
    parser.add_argument("--out", required=True, help="PNG file (outside the repo, or under docs/)")
    parser.add_argument("--data-dir", type=existing_dir, default=CAMVID_DIR, help="CamVid in SegNet layout")
    parser.add_argument("--split", default="test")
    parser.add_argument("--indices", type=int, nargs="+", default=None,
                        help=f"image indices in the split (default: {DEFAULT_IMAGES} spread evenly)")
    parser.add_argument("--cell", type=_cell_size, default=(240, 180), metavar="WxH",
                        help="size of each cell in the PNG")
    parser.add_argument("--colors", type=int, default=256,
                        help="palette colours of the PNG (smaller file); 0 keeps full RGB")
    parser.add_argument("--threads", type=positive_int, default=None, help="threads per engine (default: all)")
    args = parser.parse_args(argv)
    if not args.out.lower().endswith(".png"):
        parser.error(f"--out {args.out!r}: expected a .png file")
    error = inside_repo_error(args.out, what="the figure", allowed=DOCS)
    if error:
        parser.error(error)
    names = [name for name, _ in args.models]
    if len(set(names)) != len(names):
        parser.error(f"--models: each NAME once (one column each); received {names}")
    if args.indices is not None and min(args.indices) < 0:
        parser.error(f"--indices must be >= 0; received {args.indices}")
    if not 0 <= args.colors <= 256:
        parser.error(f"--colors must be in [0, 256]; received {args.colors}")

    import numpy as np

    from fcn_keras.data import dataset_info, load_dataset
    from fcn_keras.evaluation import load_model
    from fcn_keras.export import Predictor, float32_model
    from fcn_keras.visualize import comparison_figure, spread_indices

    start = time.perf_counter()
    source_info = dataset_info("camvid", data_dir=args.data_dir)
    total = source_info.num_examples.get(args.split)
    if total is None:
        raise SystemExit(f"CamVid at {args.data_dir!r} has no split {args.split!r}.")
    indices = spread_indices(total, DEFAULT_IMAGES) if args.indices is None else sorted(set(args.indices))
    if indices[-1] >= total:
        raise SystemExit(f"--indices {indices}: the {args.split} split has {total} images "
                         f"(0..{total - 1}).")  # fmt: skip

    models = [(name, load_model(path)) for name, path in args.models]
    info = next((m.dataset_info for _, m in models if getattr(m, "dataset_info", None)), source_info)
    for name, model in models:
        if int(model.output_shape[-1]) != info.num_classes:
            raise SystemExit(f"--models {name}: predicts {int(model.output_shape[-1])} classes; "
                             f"CamVid has {info.num_classes}.")  # fmt: skip

    wanted, examples = set(indices), {}
    data = load_dataset("camvid", args.split, batch_size=1, augment=False, shuffle=False,
                        ignore_label=info.ignore_label, data_dir=args.data_dir)  # fmt: skip
    for index, (image, mask) in enumerate(data):
        if index in wanted:
            examples[index] = (np.asarray(image)[0], np.asarray(mask)[0])
        if index >= indices[-1]:
            break
    predictions = {}
    for name, model in models:
        predictor = Predictor(float32_model(model), engine="keras", num_threads=args.threads)
        predictions[name] = [predictor.predict_classes(examples[i][0]) for i in indices]
    figure, scores = comparison_figure([examples[i][0] for i in indices], [examples[i][1] for i in indices],
                                       predictions, info.palette, info.class_names,
                                       ignore_label=info.ignore_label, captions=[f"#{i}" for i in indices],
                                       cell=args.cell, colors=args.colors)  # fmt: skip
    for name in predictions:
        for i, miou in zip(indices, scores[name]):
            print(f"{name} on {args.split} #{i}: mean IU {100 * miou['mean_iu']:.1f}, pixel accuracy "
                  f"{100 * miou['pixel_accuracy']:.1f}", flush=True)  # fmt: skip
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    figure.save(args.out, optimize=True)
    print(f"wrote {args.out}: {figure.size[0]}x{figure.size[1]} px, "
          f"{os.path.getsize(args.out) / 1024:.0f} KiB, {len(indices)} images {indices}, "
          f"{len(models)} models, in {time.perf_counter() - start:.0f} s")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
