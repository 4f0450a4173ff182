"""`fcn-keras model`: build an FCN variant and print its layer and parameter counts, or describe a file.

    fcn-keras model fcn8s --json
    fcn-keras model fcn16s --num-classes 12 --fc-units 512 --summary
    fcn-keras model --describe fcn8s_mobile_int8_360x480.tflite

`--describe FILE` prints what a `.tflite` file's TFLite Model Metadata holds
(name, version, licence, input and output tensors, labels, MediaPipe's
segmenter activation, palette, ignore label, packed files), read with
`fcn_keras.export.tflite_metadata.describe_tflite`.

Arguments are declared here; the library is imported inside the handler (see
`fcn_keras/commands/__init__.py`).
"""

from fcn_keras.choices import VARIANTS

__all__ = ["register"]


def register(subparsers):
    """Add `fcn-keras model` to the `fcn-keras` parser.

    Args:
        subparsers: the `add_subparsers()` object of the `fcn-keras` parser.
    """
    parser = subparsers.add_parser(
        "model",
        help="build an FCN variant and print its layers and parameter count",
        description="Build an FCN variant (random weights unless given) and print a summary.",
    )
    parser.add_argument("variant", nargs="?", default=None, help=", ".join(VARIANTS))
    parser.add_argument("--describe", metavar="FILE", default=None,
                        help="print what a .tflite file's metadata holds (instead of building a "
                             "variant)")  # fmt: skip
    parser.add_argument("--num-classes", type=int, default=21)
    parser.add_argument("--fc-units", type=int, default=4096)
    parser.add_argument("--at-once", action="store_true", help="at-once FCN-8s")
    parser.add_argument(
        "--backbone-weights",
        default=None,
        help="'imagenet' or a VGG16 weights file (default: random weights)",
    )
    parser.add_argument("--summary", action="store_true", help="print Keras's layer table")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.set_defaults(handler=run)


def _describe(args):
    import json
    import os

    from fcn_keras.export.tflite_metadata import describe_tflite

    if args.variant is not None:
        raise ValueError(f"--describe reads a file; drop the variant {args.variant!r}.")
    if not os.path.isfile(args.describe):
        raise FileNotFoundError(f"--describe: no file {args.describe!r} (expected a .tflite file).")
    if not args.describe.endswith(".tflite"):
        raise ValueError(f"--describe reads TFLite files; received {args.describe!r} (expected .tflite).")
    facts = describe_tflite(args.describe)
    if args.json:
        print(json.dumps(facts, indent=2))
        return 0
    print(f"file: {facts['file']} ({facts['bytes']:,} bytes)")
    if facts["name"] is None:
        print("TFLite Model Metadata: none")
    for key in ("name", "version", "author", "license", "min_parser_version", "description"):
        if facts[key] is not None:
            print(f"{key}: {facts[key]}")
    for kind in ("inputs", "outputs"):
        for tensor in facts[kind]:
            line = f"{kind[:-1]} {tensor.get('name') or tensor['tensor']}: {tensor['dtype']} {tensor['shape']}"
            if tensor.get("image"):
                line += f", image {tensor['image']['color_space']}"
            if tensor.get("normalization"):
                line += f", normalization mean {tensor['normalization'][0]} std {tensor['normalization'][1]}"
            elif kind == "inputs" and tensor.get("image"):
                line += ", no normalization"
            for name, kind_of_file in tensor.get("associated_files") or []:
                line += f", {name} ({kind_of_file})"
            print(line)
    print(f"segmenter activation: {facts['activation'] or 'not stored'}")
    labels = facts["labels"]
    print(f"labels ({len(labels)}): {', '.join(labels)}" if labels else "labels: not stored")
    ignore = facts["ignore_label"]
    print(f"ignore label: {ignore} (void: no score channel, no label)" if ignore is not None
          else "ignore label: not stored")  # fmt: skip
    if facts["palette"]:
        print("palette: " + ", ".join(f"{name} #{r:02x}{g:02x}{b:02x}"
                                      for name, (r, g, b) in facts["palette"].items()))  # fmt: skip
    else:
        print("palette: not stored")
    if facts["quantization"]:
        print(f"quantization: {facts['quantization']}")
    print("packed files: " + (", ".join(f"{name} ({size:,} bytes)" for name, size in facts["files"].items())
                              or "none"))  # fmt: skip
    return 0


def run(args):
    """Build the model `args` describe and print its figures; returns the exit code."""
    import json

    if args.describe is not None:
        return _describe(args)
    if args.variant is None:
        raise ValueError(f"give a variant ({', '.join(VARIANTS)}) or --describe FILE.")

    from fcn_keras.models import build_fcn, normalize_variant

    kwargs = {"num_classes": args.num_classes, "fc_units": args.fc_units,
              "backbone_weights": args.backbone_weights}  # fmt: skip
    if args.at_once:
        if normalize_variant(args.variant) != "fcn8s":
            raise ValueError(f"--at-once applies to fcn8s only; received variant {args.variant!r}.")
        kwargs["at_once"] = True
    model = build_fcn(args.variant, **kwargs)
    if args.summary:
        model.summary()
    figures = {"model": model.name, "parameters": model.count_params(),
               "trainable_parameters": sum(int(w.numpy().size) for w in model.trainable_weights),
               "layers": len(model.layers)}  # fmt: skip
    if args.json:
        print(json.dumps(figures))
    else:
        for key, value in figures.items():
            print(f"{key}: {value:,}" if isinstance(value, int) else f"{key}: {value}")
    return 0
