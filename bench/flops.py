"""Analytic FLOP count of an FCN, shared by the benchmark scripts.

Counts the multiply-adds of every convolution, transposed convolution and
dense layer as 2 FLOPs each (the convention of the FLOP/s figures in
docs/benchmarks.md); element-wise layers (ReLU, pooling, adds, crop) are left
out, as they are well under 1% of an FCN's work.

Usage:
    python bench/flops.py --variant fcn8s --size 512 512
"""

import argparse

import keras

__all__ = ["model_flops"]

_COUNTED = (keras.layers.Conv2D, keras.layers.Conv2DTranspose, keras.layers.Dense)


def model_flops(model, height, width):
    """Return the forward-pass FLOPs of one `height` x `width` image through `model`.

    Args:
        model: a functional `keras.Model` taking `(batch, H, W, 3)` images.
        height: int, image height in pixels.
        width: int, image width in pixels.

    Returns:
        int, FLOPs (2 per multiply-add) of the convolution-like layers.

    Example:
    >>> model_flops(fcn_keras.FCN8s(backbone_weights=None), 512, 512) / 1e9  # ~222
    """
    layers = [layer for layer in model.layers if isinstance(layer, _COUNTED)]
    probe = keras.Model(model.inputs, [layer.output for layer in layers])
    in_probe = keras.Model(model.inputs, [layer.input for layer in layers])
    shape = (1, height, width, 3)
    outputs = probe.compute_output_shape(shape)
    inputs = in_probe.compute_output_shape(shape)
    total = 0
    for layer, out_shape, in_shape in zip(layers, outputs, inputs):
        kernel = layer.kernel.shape
        if isinstance(layer, keras.layers.Dense):
            total += 2 * kernel[0] * kernel[1]
        elif isinstance(layer, keras.layers.Conv2DTranspose):
            # Every input position scatters a kh x kw x C_out patch per input channel.
            kh, kw, c_out, c_in = kernel
            total += 2 * kh * kw * c_in * c_out * in_shape[1] * in_shape[2]
        else:
            kh, kw, c_in, c_out = kernel
            total += 2 * kh * kw * c_in * c_out * out_shape[1] * out_shape[2]
    return int(total)


def main():
    import fcn_keras

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", default="fcn8s")
    parser.add_argument("--num-classes", type=int, default=21)
    parser.add_argument("--fc-units", type=int, default=4096)
    parser.add_argument("--size", type=int, nargs=2, default=(512, 512), metavar=("H", "W"))
    args = parser.parse_args()
    model = fcn_keras.build_fcn(args.variant, num_classes=args.num_classes,
                                fc_units=args.fc_units, backbone_weights=None)  # fmt: skip
    flops = model_flops(model, *args.size)
    print(f"{model.name} at {args.size[0]}x{args.size[1]}: {flops / 1e9:.1f} GFLOP per image (forward)")


if __name__ == "__main__":
    main()
