"""PASCAL VOC segmentation and SBD, the data the FCN paper trained and evaluated on.

Source "voc", `data_dir=` the VOC2012 folder (or a folder holding
`VOCdevkit/VOC2012` or `VOC2012`):
    JPEGImages/{id}.jpg
    SegmentationClass/{id}.png        palette PNGs: index = class id, 255 = void
    ImageSets/Segmentation/{split}.txt   one image id per line (train, val, trainval, ...)
`mask_dir=` picks another mask folder (e.g. "SegmentationClassAug", grayscale ids).

Source "sbd", `data_dir=` the SBD `dataset` folder (or `benchmark_RELEASE`
holding it):
    img/{id}.jpg
    cls/{id}.mat                      GTcls.Segmentation, 0 = background
    {split}.txt                       train.txt / val.txt

Both yield the 21 VOC classes with 255 (or the configured ignore label) for void.

Reference: Long et al. 2015, section 4: SBD train (8498 images) for training,
a VOC 2011/2012 val subset for evaluation.
"""

import os

from fcn_keras.data.files import FileSource
from fcn_keras.visualize import voc_palette

__all__ = ["VOCSource", "SBDSource", "VOC_CLASS_NAMES"]

VOC_CLASS_NAMES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat",
    "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant",
    "sheep", "sofa", "train", "tvmonitor",
)  # fmt: skip


def _read_ids(split_file, source):
    if not os.path.isfile(split_file):
        raise FileNotFoundError(f"{source}: split file {split_file} does not exist.")
    with open(split_file) as f:
        return [line.split()[0] for line in f if line.strip()]


def _txt_stems(folder):
    if not os.path.isdir(folder):
        return ()
    return tuple(sorted(n[:-4] for n in os.listdir(folder) if n.endswith(".txt")))


def _find_root(data_dir, candidates, marker, source):
    if data_dir is None:
        raise ValueError(f"{source}: data_dir= is required.")
    if not os.path.isdir(data_dir):
        raise FileNotFoundError(f"{source}: data directory {data_dir} does not exist.")
    for sub in candidates:
        root = os.path.join(data_dir, sub) if sub else data_dir
        if os.path.isdir(os.path.join(root, marker)):
            return root
    raise FileNotFoundError(
        f"{source}: {data_dir} has no {marker}/ folder (also looked in "
        f"{', '.join(c for c in candidates if c)}); expected the {source.upper()} layout."
    )


class _VOCClasses(FileSource):
    def __init__(self, name, ignore_label=255, **kwargs):
        # VOC's own void id is 255: it becomes the configured ignore label.
        void = () if ignore_label == 255 else (255,)
        kwargs.setdefault("void_ids", void)
        kwargs.setdefault("class_names", VOC_CLASS_NAMES)
        kwargs.setdefault("draw_palette", voc_palette(21))
        super().__init__(name, kwargs.pop("num_classes", 21), ignore_label=ignore_label, **kwargs)


class VOCSource(_VOCClasses):
    """PASCAL VOC layout (source string "voc"); see the module docstring.

    Args:
        data_dir: the VOC2012 folder, or one above it.
        mask_dir: mask folder under the root. Defaults to "SegmentationClass".
        image_ext: image extension. Defaults to ".jpg".
        **kwargs: `FileSource` options (`ignore_label`, `label_map`, ...).
    """

    def __init__(self, data_dir=None, mask_dir="SegmentationClass", image_ext=".jpg", **kwargs):
        self.root = _find_root(data_dir, ("", "VOC2012", os.path.join("VOCdevkit", "VOC2012")),
                               "JPEGImages", "voc")  # fmt: skip
        self.mask_dir, self.image_ext = mask_dir, image_ext
        kwargs.setdefault("description", f"PASCAL VOC at {self.root}")
        super().__init__("voc", **kwargs)

    def known_splits(self):
        return _txt_stems(os.path.join(self.root, "ImageSets", "Segmentation"))

    def pairs(self, split):
        ids = _read_ids(os.path.join(self.root, "ImageSets", "Segmentation", f"{split}.txt"), "voc")
        return [(os.path.join(self.root, "JPEGImages", i + self.image_ext),
                 os.path.join(self.root, self.mask_dir, i + ".png")) for i in ids]  # fmt: skip


class SBDSource(_VOCClasses):
    """Semantic Boundaries Dataset layout (source string "sbd"); see the module docstring.

    Args:
        data_dir: the SBD `dataset` folder, or `benchmark_RELEASE` above it.
        **kwargs: `FileSource` options.
    """

    def __init__(self, data_dir=None, **kwargs):
        self.root = _find_root(data_dir, ("", "dataset"), "cls", "sbd")
        kwargs.setdefault("description", f"SBD at {self.root}")
        super().__init__("sbd", **kwargs)

    def known_splits(self):
        return _txt_stems(self.root)

    def pairs(self, split):
        ids = _read_ids(os.path.join(self.root, f"{split}.txt"), "sbd")
        return [(os.path.join(self.root, "img", i + ".jpg"),
                 os.path.join(self.root, "cls", i + ".mat")) for i in ids]  # fmt: skip
