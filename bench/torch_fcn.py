"""A PyTorch FCN (32s/16s/8s) of exactly the Keras geometry, loaded from a Keras model: the benchmark's PyTorch reference.

It exists so that `bench/latency.py` compares PyTorch eager with the other
runtimes on the same network: the same weights (copied from the Keras model)
and the same padding scheme, so the outputs match to float32 rounding:

    image (uint8, NHWC) -> RGB->BGR, minus the ImageNet BGR mean   (CaffePreprocess)
          -> zero pad bottom/right to a multiple of 32               (PadToMultiple)
          -> VGG16 ("same" 3x3 convolutions, 2x2/2 max pooling)
          -> fc6 (7x7 "same"), fc7, score_fr -> skip fusions with
             half-pixel bilinear transposed convolutions (kernel 2f,
             stride f, padding f/2: TF's "same" transposed convolution)
          -> crop to the image's H x W                                (CropToReference)

Input and output follow the Keras model: raw RGB `uint8` `(N, H, W, 3)` in,
float32 logits `(N, H, W, num_classes)` out (a channels-last view, no copy).
`channels_last=True` runs every convolution on NHWC tensors (oneDNN's
preferred layout on x86); the maths is the same.

torch is a benchmark-only dependency (`pip install -e .[bench]`); the package
never imports this file.

Usage:
    python bench/torch_fcn.py --size 97 131 --fc-units 64    # checks the outputs against Keras
"""

import argparse

import numpy as np

__all__ = ["TorchFCN", "from_keras"]

_VGG16_BLOCKS = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))
_BGR_MEAN = (103.939, 116.779, 123.68)  # fcn_keras.preprocessing.IMAGENET_BGR_MEAN
_SKIP_NAMES = {16: "pool4", 8: "pool3"}


def _torch():
    try:
        import torch
    except ImportError as e:
        raise ImportError(
            "the PyTorch reference needs torch, a benchmark-only extra: pip install -e .[bench] "
            "(on a CPU-only machine add --extra-index-url https://download.pytorch.org/whl/cpu "
            "to get the CPU build instead of the CUDA one)."
        ) from e
    return torch


_CLASS = []


def _module_class():
    """The `torch.nn.Module` class, defined once torch is imported (torch is optional)."""
    if _CLASS:
        return _CLASS[0]
    torch = _torch()
    nn = torch.nn

    class TorchFCN(nn.Module):
        """FCN-32s/16s/8s in PyTorch with the Keras model's geometry (see the module docstring).

        Args:
            num_classes: classes of the score layers.
            fc_units: width of fc6/fc7.
            skip_strides: strides of the fused skips, coarsest first: `()` for
                FCN-32s, `(16,)` for FCN-16s, `(16, 8)` for FCN-8s.
            skip_scales: `{stride: factor}` scaling of the skip inputs (the
                at-once FCN-8s), or `{}`. Defaults to `{}`.
        """

        def __init__(self, num_classes, fc_units, skip_strides, skip_scales=None):
            super().__init__()
            self.skip_strides = tuple(skip_strides)
            self.skip_scales = dict(skip_scales or {})
            self.channels_last = False
            self.register_buffer("mean", torch.tensor(_BGR_MEAN, dtype=torch.float32).view(1, 3, 1, 1))
            blocks, channels = [], 3
            for widths in _VGG16_BLOCKS:
                convs = []
                for width in widths:
                    convs.append(nn.Conv2d(channels, width, 3, padding=1))
                    channels = width
                blocks.append(nn.ModuleList(convs))
            self.blocks = nn.ModuleList(blocks)
            self.fc6 = nn.Conv2d(512, fc_units, 7, padding=3)
            self.fc7 = nn.Conv2d(fc_units, fc_units, 1)
            self.score_fr = nn.Conv2d(fc_units, num_classes, 1)
            self.score_skips = nn.ModuleDict()
            self.upscores = nn.ModuleList()
            stride = 32
            for skip in self.skip_strides:
                self.upscores.append(_upsampling(num_classes, stride // skip))
                self.score_skips[str(skip)] = nn.Conv2d(512 if skip == 16 else 256, num_classes, 1)
                stride = skip
            self.upscores.append(_upsampling(num_classes, stride))

        def forward(self, image):
            height, width = image.shape[1], image.shape[2]
            x = image.permute(0, 3, 1, 2).float()
            x = x[:, [2, 1, 0]] - self.mean  # RGB -> BGR, mean subtracted (exact, as in Keras)
            pad_h, pad_w = (32 - height % 32) % 32, (32 - width % 32) % 32
            x = nn.functional.pad(x, (0, pad_w, 0, pad_h))
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            taps = {}
            for index, block in enumerate(self.blocks):
                for conv in block:
                    x = torch.relu(conv(x))
                x = nn.functional.max_pool2d(x, 2)
                taps[2 ** (index + 1)] = x
            x = torch.relu(self.fc6(x))
            x = torch.relu(self.fc7(x))
            scores = self.score_fr(x)
            for upscore, skip in zip(self.upscores, self.skip_strides):
                skip_input = taps[skip] * self.skip_scales[skip] if skip in self.skip_scales else taps[skip]
                scores = upscore(scores) + self.score_skips[str(skip)](skip_input)
            scores = self.upscores[-1](scores)
            return scores[:, :, :height, :width].permute(0, 2, 3, 1)

        def use_channels_last(self, enabled=True):
            """Run the convolutions on NHWC (channels-last) tensors; returns the module."""
            self.channels_last = bool(enabled)
            return self.to(memory_format=torch.channels_last if enabled else torch.contiguous_format)

    _CLASS.append(TorchFCN)
    return TorchFCN


def _upsampling(channels, factor):
    """TF's "same" transposed convolution, kernel 2f and stride f: padding f/2 on each side."""
    torch = _torch()
    return torch.nn.ConvTranspose2d(channels, channels, 2 * factor, stride=factor, padding=factor // 2,
                                    bias=False)  # fmt: skip


def TorchFCN(num_classes, fc_units, skip_strides, skip_scales=None):  # noqa: N802 - builds the module
    """Build the PyTorch FCN (random weights); `from_keras` builds it with a Keras model's.

    Args:
        num_classes: classes of the score layers.
        fc_units: width of fc6/fc7.
        skip_strides: `()` (FCN-32s), `(16,)` (FCN-16s) or `(16, 8)` (FCN-8s).
        skip_scales: `{stride: factor}` scaling the skip inputs (at-once FCN-8s),
            or None. Defaults to None.

    Returns:
        The `torch.nn.Module`.

    Example:
    >>> TorchFCN(21, 4096, (16, 8)).fc6.weight.shape
    torch.Size([4096, 512, 7, 7])
    """
    return _module_class()(num_classes, fc_units, skip_strides, skip_scales)


def from_keras(model, channels_last=False):
    """Build the PyTorch twin of an fcn_keras FCN and copy its weights into it.

    Args:
        model: an FCN `keras.Model` from `fcn_keras` (FCN-32s, 16s, 8s or
            the at-once 8s), any dtype policy (weights are copied as float32).
        channels_last: run the convolutions on NHWC tensors. Defaults to False.

    Returns:
        The `torch.nn.Module` in eval mode: uint8 `(N, H, W, 3)` in,
        float32 logits `(N, H, W, num_classes)` out.

    Example:
    >>> twin = from_keras(fcn_keras.FCN8s(num_classes=5, fc_units=32, backbone_weights=None))
    >>> twin(torch.zeros(1, 97, 131, 3, dtype=torch.uint8)).shape
    torch.Size([1, 97, 131, 5])
    """
    torch = _torch()
    from fcn_keras.models import variant_of

    variant = variant_of(model)
    skip_strides = {"fcn32s": (), "fcn16s": (16,)}.get(variant.replace("_atonce", ""), (16, 8))
    skip_scales = {}
    for stride in skip_strides:
        name = f"scale_{_SKIP_NAMES[stride]}"
        if any(layer.name == name for layer in model.layers):
            skip_scales[stride] = float(model.get_layer(name).scale)
    num_classes = model.get_layer("score_fr").filters
    twin = TorchFCN(num_classes, model.get_layer("fc6").filters, skip_strides, skip_scales)

    def conv(module, layer_name):
        kernel, bias = (np.asarray(w, dtype=np.float32) for w in model.get_layer(layer_name).get_weights())
        module.weight.data = torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)))
        module.bias.data = torch.from_numpy(bias)

    for index, block in enumerate(twin.blocks):
        for conv_index, module in enumerate(block):
            conv(module, f"block{index + 1}_conv{conv_index + 1}")
    for name in ("fc6", "fc7", "score_fr"):
        conv(getattr(twin, name), name)
    stride, upscore_names = 32, []
    for skip in skip_strides:
        conv(twin.score_skips[str(skip)], f"score_{_SKIP_NAMES[skip]}")
        upscore_names.append("upscore2" if stride == 32 else f"upscore_{_SKIP_NAMES[stride]}")
        stride = skip
    upscore_names.append(f"upscore{stride}")
    for module, name in zip(twin.upscores, upscore_names):
        (kernel,) = model.get_layer(name).get_weights()  # (kh, kw, out, in) -> (in, out, kh, kw)
        module.weight.data = torch.from_numpy(np.ascontiguousarray(
            np.asarray(kernel, dtype=np.float32).transpose(3, 2, 0, 1)))  # fmt: skip
    twin.eval()
    if channels_last:
        twin.use_channels_last()
    return twin


def main():
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    import fcn_keras

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", default="fcn8s")
    parser.add_argument("--num-classes", type=int, default=21)
    parser.add_argument("--fc-units", type=int, default=64)
    parser.add_argument("--size", type=int, nargs=2, default=(97, 131), metavar=("H", "W"))
    args = parser.parse_args()
    torch = _torch()
    keras.utils.set_random_seed(0)
    model = fcn_keras.build_fcn(args.variant, num_classes=args.num_classes, fc_units=args.fc_units,
                                backbone_weights=None)  # fmt: skip
    rng = np.random.default_rng(0)
    for layer in model.layers:  # the score layers start at zero: give them weights to compare
        if layer.name.startswith("score"):
            layer.set_weights([rng.normal(0, 0.01, w.shape).astype("float32") for w in layer.get_weights()])
    image = rng.integers(0, 256, (1, *args.size, 3), dtype=np.uint8)
    reference = np.asarray(model(image, training=False))
    for channels_last in (False, True):
        with torch.inference_mode():
            out = from_keras(model, channels_last)(torch.from_numpy(image)).numpy()
        print(f"channels_last={channels_last}: max |delta logit| {np.abs(out - reference).max():.3g} "
              f"(logit scale {np.abs(reference).max():.3g}), argmax agreement "
              f"{100 * np.mean(out.argmax(-1) == reference.argmax(-1)):.3f}%")  # fmt: skip


if __name__ == "__main__":
    main()
