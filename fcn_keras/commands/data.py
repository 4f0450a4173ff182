"""`fcn-keras data`: a dataset's size, class pixel frequencies and colourised samples.

    fcn-keras data synthetic --samples 4 --out samples/
    fcn-keras data camvid --data-dir ../shared/data/camvid --split val --scan
    fcn-keras data folders --source-arg num_classes=3 --source-arg list_file=pairs.txt

The source arguments are the shared ones (`fcn_keras/commands/sources.py`),
with the source positional. Arguments are declared here; the library is
imported inside the handler (see `fcn_keras/commands/__init__.py`).
"""

import argparse

from fcn_keras.commands.sources import add_source_arguments, source_kwargs

__all__ = ["register"]


def register(subparsers):
    """Add `fcn-keras data` to the `fcn-keras` parser.

    Args:
        subparsers: the `add_subparsers()` object of the `fcn-keras` parser.
    """
    parser = subparsers.add_parser(
        "data",
        help="print a dataset's size and class pixel frequencies; write sample PNGs",
        description="Read one split of a data source (no augmentation) and print its number "
        "of examples, image sizes and per-class pixel frequencies; with --out, write the "
        "first --samples examples as PNGs (image | colourised mask | overlay).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_source_arguments(parser, positional=True)
    parser.add_argument("--split", default="train", help="split to read")
    parser.add_argument("--samples", type=int, default=4, help="sample PNGs to write with --out")
    parser.add_argument("--out", default=None, help="directory for the sample PNGs")
    parser.add_argument("--max-examples", type=int, default=None,
                        help="count frequencies over the first N examples only")  # fmt: skip
    parser.add_argument("--ignore-label", type=int, default=255, help="id of void pixels")
    parser.add_argument("--scan", action="store_true",
                        help="check every example first; report bad files instead of failing")  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.set_defaults(handler=run)


def run(args):
    """Read the split `args` name and print its figures (and write samples); returns the exit code."""
    import json
    import os

    import numpy as np

    from fcn_keras.data import dataset_info, load_dataset
    from fcn_keras.data.pipeline import scan_dataset
    from fcn_keras.data.sources import resolve_source
    from fcn_keras.visualize import colorize, overlay, voc_palette

    if args.samples < 0:
        raise ValueError(f"--samples must be >= 0; received {args.samples}.")
    options = source_kwargs(args)
    if "ignore_label" in options:
        raise ValueError("give the ignore label as --ignore-label, not --source-arg ignore_label=...")
    # One Source, built from the source options alone: a `--source-arg seed=3` is the
    # source's own seed, never load_dataset's shuffling seed.
    source = resolve_source(args.source, ignore_label=args.ignore_label, **options)
    info = dataset_info(source)
    figures = {"source": info.name, "split": args.split, "num_classes": info.num_classes}
    if args.scan:
        good, report = scan_dataset(source, args.split, skip_bad=True,
                                    ignore_label=args.ignore_label)  # fmt: skip
        figures["bad_examples"] = report.count
        figures["bad_files"] = [str(f) for f in report.files]
    ds = load_dataset(source, args.split, batch_size=1, augment=False, shuffle=False,
                      ignore_label=args.ignore_label, skip_bad=args.scan)  # fmt: skip
    palette = info.palette if info.palette is not None else voc_palette()
    counts = np.zeros(info.num_classes, np.int64)
    ignored = total = examples = 0
    sizes = set()
    for image, mask in ds.as_numpy_iterator():
        image, mask = image[0], mask[0]
        examples += 1
        sizes.add(mask.shape)
        valid = mask[mask != info.ignore_label]
        counts += np.bincount(valid.ravel(), minlength=info.num_classes)[: info.num_classes]
        ignored += mask.size - valid.size
        total += mask.size
        if args.out and examples <= args.samples:
            from PIL import Image

            os.makedirs(args.out, exist_ok=True)
            colours = colorize(mask, palette, info.ignore_label)
            blend = overlay(image, mask, palette, 0.5, info.ignore_label)
            path = os.path.join(args.out, f"{args.split}_{examples - 1:03d}.png")
            Image.fromarray(np.concatenate([image, colours, blend], axis=1)).save(path)
        if args.max_examples and examples >= args.max_examples:
            break
    labelled = max(int(counts.sum()), 1)
    figures.update({
        "examples": examples,
        "examples_in_split": info.num_examples.get(args.split),
        "image_sizes": sorted(f"{w}x{h}" for h, w in sizes)[:10],
        "ignored_pixel_fraction": round(ignored / max(total, 1), 6),
        "class_frequencies": {name: round(int(c) / labelled, 6)
                              for name, c in zip(info.class_names, counts)},
        "samples_written": min(args.samples, examples) if args.out else 0,
    })  # fmt: skip
    if args.json:
        print(json.dumps(figures))
        return 0
    print(f"source: {figures['source']}  split: {args.split}  examples: {examples}"
          f"{'' if figures['examples_in_split'] in (None, examples) else ' (of ' + str(figures['examples_in_split']) + ')'}")  # fmt: skip
    print(f"classes: {info.num_classes}  ignore label: {info.ignore_label}  image sizes "
          f"(WxH): {', '.join(figures['image_sizes'])}{' ...' if len(sizes) > 10 else ''}")  # fmt: skip
    print(f"ignored pixels: {100 * figures['ignored_pixel_fraction']:.2f}%")
    print("class pixel frequencies (of labelled pixels):")
    for i, (name, c) in enumerate(zip(info.class_names, counts)):
        print(f"  {i:3d} {name:<16s} {100 * c / labelled:6.2f}%  ({int(c):,} px)")
    if args.scan:
        print(f"bad examples skipped: {figures['bad_examples']}"
              + "".join(f"\n  {f}" for f in figures["bad_files"]))  # fmt: skip
    if args.out:
        print(f"wrote {figures['samples_written']} sample PNG(s) to {args.out}")
    return 0
