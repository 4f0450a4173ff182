"""Paired image/mask folders and list files, and CamVid in the SegNet layout.

Source "folders" finds a split's pairs in one of three ways (first that applies):

1. `list_file=`: a text file of `image_path mask_path` lines (whitespace
   separated; `#` comments and blank lines skipped), relative to `root=`
   (default: the list file's folder). `{split}` in the path is replaced.
2. `image_dir=` and `mask_dir=`: images paired with masks by file stem
   (`mask_suffix=` is appended to the stem, e.g. "_mask"; any image/mask
   extension). `{split}` in the paths is replaced. An image without a mask
   is an error naming it.
3. `data_dir=`: `data_dir/{split}.txt` if it exists (as 1), else the SegNet
   layout `data_dir/{split}/` + `data_dir/{split}annot/` (as 2).

Source "camvid" is "folders" with CamVid's 11 classes, id 11 (Unlabelled)
mapped to the ignore label and the usual CamVid colours for drawing; give it
`data_dir=` (e.g. ../shared/data/camvid).
"""

import os

import numpy as np

from fcn_keras.data.files import FileSource

__all__ = ["FolderSource", "CamVidSource", "CAMVID_CLASS_NAMES", "CAMVID_PALETTE"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
MASK_EXTENSIONS = (".png", ".bmp", ".gif", ".tif", ".tiff", ".mat")

CAMVID_CLASS_NAMES = ("Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol",
                      "Fence", "Car", "Pedestrian", "Bicyclist")  # fmt: skip
# The SegNet tutorial's CamVid colours, for drawing masks.
CAMVID_PALETTE = np.array([
    (128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128), (60, 40, 222),
    (128, 128, 0), (192, 128, 128), (64, 64, 128), (64, 0, 128), (64, 64, 0), (0, 128, 192),
], np.uint8)  # fmt: skip


def read_list_file(list_file, root=None):
    """Parse a list file of `image mask` lines into absolute path pairs.

    Args:
        list_file: path of the list.
        root: folder the relative paths start from. Defaults to the list's folder.

    Returns:
        A list of `(image_path, mask_path)`.
    """
    if not os.path.isfile(list_file):
        raise FileNotFoundError(f"list file {list_file} does not exist.")
    root = os.path.dirname(os.path.abspath(list_file)) if root is None else root
    pairs = []
    with open(list_file) as f:
        for number, line in enumerate(f, 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            parts = line.split()
            if len(parts) != 2:
                raise ValueError(
                    f"{list_file}:{number}: expected 'image_path mask_path'; received {line!r}."
                )
            pairs.append(tuple(p if os.path.isabs(p) else os.path.join(root, p) for p in parts))
    return pairs


def pair_folders(image_dir, mask_dir, mask_suffix=""):
    """Pair every image in `image_dir` with the mask of the same stem in `mask_dir`."""
    for folder, what in ((image_dir, "image"), (mask_dir, "mask")):
        if not os.path.isdir(folder):
            raise FileNotFoundError(f"{what} directory {folder} does not exist.")
    masks = {}
    for name in os.listdir(mask_dir):
        stem, ext = os.path.splitext(name)
        if ext.lower() in MASK_EXTENSIONS:
            masks[stem] = os.path.join(mask_dir, name)
    pairs, orphans = [], []
    for name in sorted(os.listdir(image_dir)):
        stem, ext = os.path.splitext(name)
        if ext.lower() not in IMAGE_EXTENSIONS:
            continue
        mask = masks.get(stem + mask_suffix)
        if mask is None:
            orphans.append(name)
        else:
            pairs.append((os.path.join(image_dir, name), mask))
    if orphans:
        shown = ", ".join(orphans[:5]) + (f" and {len(orphans) - 5} more" if len(orphans) > 5 else "")
        raise ValueError(
            f"{len(orphans)} image(s) in {image_dir} have no mask '<stem>{mask_suffix}.<ext>' "
            f"in {mask_dir}: {shown}."
        )
    return pairs


class FolderSource(FileSource):
    """Paired folders or list files (source string "folders"); see the module docstring.

    Args:
        num_classes: number of classes (required).
        data_dir: a folder with `{split}.txt` lists or SegNet `{split}/` +
            `{split}annot/` folders.
        list_file: a list file (may contain `{split}`).
        root: folder the list's relative paths start from.
        image_dir, mask_dir: paired folders (may contain `{split}`).
        mask_suffix: appended to an image's stem to name its mask. Defaults to "".
        **kwargs: `FileSource` options: `class_names`, `ignore_label`,
            `void_ids`, `label_map`, `palette`.

    Example:
    >>> src = FolderSource(num_classes=11, data_dir="../shared/data/camvid", void_ids=[11])
    >>> # load_dataset(src, "train") or load_dataset("folders", num_classes=11, data_dir=...)
    """

    def __init__(self, num_classes=None, data_dir=None, list_file=None, root=None,
                 image_dir=None, mask_dir=None, mask_suffix="", name="folders", **kwargs):  # fmt: skip
        if num_classes is None:
            raise ValueError(f"{name}: num_classes= is required for a folders source.")
        if list_file is None and image_dir is None and data_dir is None:
            raise ValueError(
                f"{name}: give data_dir=, list_file= or image_dir= and mask_dir=; received none."
            )
        if (image_dir is None) != (mask_dir is None):
            raise ValueError(f"{name}: image_dir= and mask_dir= go together; received only one.")
        if data_dir is not None and not os.path.isdir(data_dir):
            raise FileNotFoundError(f"{name}: data directory {data_dir} does not exist.")
        self.data_dir, self.list_file, self.root = data_dir, list_file, root
        self.image_dir, self.mask_dir, self.mask_suffix = image_dir, mask_dir, mask_suffix
        kwargs.setdefault("description", f"paired files from {data_dir or list_file or image_dir}")
        super().__init__(name, num_classes, **kwargs)

    def known_splits(self):
        if self.data_dir is None:
            return ()
        names = os.listdir(self.data_dir)
        lists = {n[:-4] for n in names if n.endswith(".txt")}
        segnet = {n for n in names if n + "annot" in names}
        return tuple(sorted(lists | segnet))

    def pairs(self, split):
        if self.list_file is not None:
            return read_list_file(self.list_file.replace("{split}", split), self.root)
        if self.image_dir is not None:
            return pair_folders(self.image_dir.replace("{split}", split),
                                self.mask_dir.replace("{split}", split), self.mask_suffix)  # fmt: skip
        listed = os.path.join(self.data_dir, f"{split}.txt")
        if os.path.isfile(listed):
            return read_list_file(listed, self.root or self.data_dir)
        images, masks = (os.path.join(self.data_dir, d) for d in (split, f"{split}annot"))
        if os.path.isdir(images) and os.path.isdir(masks):
            return pair_folders(images, masks, self.mask_suffix)
        raise FileNotFoundError(
            f"{self._info.name}: no split {split!r} in {self.data_dir}: expected a list file "
            f"{listed} or folders {images} and {masks}."
        )


class CamVidSource(FolderSource):
    """CamVid in the SegNet layout (source string "camvid").

    11 classes (`CAMVID_CLASS_NAMES`); raw id 11 (Unlabelled) becomes the
    ignore label (255 by default; pass `void_ids=()` and `ignore_label=11`
    to keep 11 as is).

    Args:
        data_dir: the CamVid folder (with train.txt, val.txt or train/, trainannot/, ...).
        **kwargs: `FolderSource` options.
    """

    def __init__(self, data_dir=None, **kwargs):
        if data_dir is None:
            raise ValueError("camvid: data_dir= is required (e.g. ../shared/data/camvid).")
        kwargs.setdefault("void_ids", (11,))
        kwargs.setdefault("class_names", CAMVID_CLASS_NAMES)
        kwargs.setdefault("draw_palette", CAMVID_PALETTE)
        kwargs.setdefault("description", f"CamVid (SegNet layout) at {data_dir}")
        super().__init__(num_classes=11, data_dir=data_dir, name="camvid", **kwargs)
