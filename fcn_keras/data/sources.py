"""The registry of data sources: turns a source string and its options into a `Source`.

The `Source` interface itself is in `fcn_keras/data/base.py` (re-exported
here); every source module builds on it, and this registry sits above them,
importing a source's module only when that source is asked for.

Source strings:
    "synthetic"                   built-in shapes (fcn_keras/data/synthetic.py)
    "voc"                         PASCAL VOC layout, `data_dir=` (voc.py)
    "sbd"                         SBD layout (cls/*.mat), `data_dir=` (voc.py)
    "folders"                     paired folders or a list file (folders.py)
    "camvid"                      CamVid in SegNet layout, `data_dir=` (folders.py)
    "tfds:NAME"                   a TensorFlow Datasets set, e.g. "tfds:oxford_iiit_pet"
An object with the `Source` methods is accepted as is.

A source's options are its constructor's keyword arguments (those of its base
classes too, when it passes `**kwargs` on); `source_options(name)` lists them
and `resolve_source` refuses any other with a `ValueError` naming it.
"""

import importlib
import inspect

from fcn_keras.data.base import Source

__all__ = ["Source", "resolve_source", "source_class", "source_options", "SOURCE_NAMES"]

SOURCE_NAMES = ("synthetic", "voc", "sbd", "folders", "camvid", "tfds:NAME")

# Registry key -> (module, class, constructor arguments the source fills in itself:
# its name, or a fixed class count, which a user cannot also pass).
_REGISTRY = {
    "synthetic": ("fcn_keras.data.synthetic", "SyntheticSource", ()),
    "voc": ("fcn_keras.data.voc", "VOCSource", ("name",)),
    "sbd": ("fcn_keras.data.voc", "SBDSource", ("name",)),
    "folders": ("fcn_keras.data.folders", "FolderSource", ()),
    "camvid": ("fcn_keras.data.folders", "CamVidSource", ("name", "num_classes")),
    "tfds": ("fcn_keras.data.tfds_source", "TFDSSource", ("name",)),
}


def _registry_key(source):
    lowered = source.strip().lower()
    key = "tfds" if lowered.startswith("tfds:") else lowered
    if key not in _REGISTRY:
        raise ValueError(
            f"unknown data source {source!r}; expected one of {', '.join(SOURCE_NAMES)} "
            "or a Source instance."
        )
    return key


def source_class(source):
    """Return the `Source` subclass a source string names (importing its module).

    Args:
        source: a source string such as "camvid" or "tfds:oxford_iiit_pet".

    Returns:
        The class, e.g. `fcn_keras.data.folders.CamVidSource`.

    Example:
    >>> source_class("synthetic").__name__
    'SyntheticSource'
    """
    module, name, _ = _REGISTRY[_registry_key(source)]
    return getattr(importlib.import_module(module), name)


def _constructor_options(cls):
    """Keyword arguments `cls(...)` takes: its `__init__`'s, and its bases' while `**kwargs` passes on.

    Returns None when the chain ends in a bare `**kwargs` (anything is accepted).
    """
    names = []
    for klass in cls.__mro__:
        if klass is object:
            return None
        if "__init__" not in vars(klass):
            continue
        params = list(inspect.signature(klass.__init__).parameters.values())[1:]  # drop self
        for p in params:
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in names:
                names.append(p.name)
        if not any(p.kind == p.VAR_KEYWORD for p in params):
            return names
    return None


def source_options(source):
    """The options (keyword arguments) a source string's source takes.

    Args:
        source: a source string such as "camvid" or "tfds:oxford_iiit_pet".

    Returns:
        A tuple of option names in constructor order, or None when the source
        takes any option.

    Example:
    >>> "image_size" in source_options("synthetic"), "image_size" in source_options("camvid")
    (True, False)
    """
    key = _registry_key(source)
    options = _constructor_options(source_class(source))
    if options is None:
        return None
    fixed = _REGISTRY[key][2]
    return tuple(n for n in options if n not in fixed)


def resolve_source(source, **kwargs):
    """Return a `Source` for a source string (see the module docstring) or a `Source`.

    Args:
        source: a source string or a `Source` instance.
        **kwargs: the source's own options (e.g. `data_dir=`, `image_size=`);
            see `source_options(source)`.

    Returns:
        A `Source`.

    Raises:
        ValueError: the source string is unknown, or an option is not one the
            source takes (the message names the option and lists those it takes).

    Example:
    >>> resolve_source("synthetic", image_size=32).info().num_classes
    6
    """
    if isinstance(source, Source):
        ignore_label = kwargs.pop("ignore_label", None)
        own = source.info().ignore_label
        if ignore_label is not None and ignore_label != own:
            raise ValueError(
                f"the {source.info().name} source was built with ignore_label={own} but "
                f"ignore_label={ignore_label} was asked for; pass the same value to both."
            )
        if kwargs:
            raise ValueError(
                f"source options {sorted(kwargs)} were given with a Source instance; "
                "pass them to the source's constructor instead."
            )
        return source
    if not isinstance(source, str):
        raise ValueError(f"source must be a string or a Source; received {source!r}.")
    name = source.strip()
    cls = source_class(name)
    options = source_options(name)
    if options is not None:
        unknown = sorted(set(kwargs) - set(options))
        if unknown:
            raise ValueError(f"source {name!r} does not take option(s) {unknown}; "
                             f"it takes: {', '.join(options)}.")  # fmt: skip
    if _registry_key(name) == "tfds":
        return cls(name[len("tfds:") :], **kwargs)
    return cls(**kwargs)
