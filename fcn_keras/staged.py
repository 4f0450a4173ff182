"""Staged training 32s -> 16s -> 8s: initialise each finer FCN from the coarser one.

The paper trains FCN-32s first, then FCN-16s starting from it, then FCN-8s
from FCN-16s. Every layer the two nets share is copied by name; the new skip
score layer starts at zero, so the new net starts from the old net's score map
(exactly at stride 32, see `fcn16s_from_fcn32s`).

Reference: Long et al. 2015, Section 4.2 ("the new parameters are initialized
to zero so that the net starts with unmodified predictions").
"""

from fcn_keras.models import FCN8s, FCN16s, head_of, variant_of

__all__ = ["transfer_weights", "fcn16s_from_fcn32s", "fcn8s_from_fcn16s"]


def transfer_weights(source, target):
    """Copy the weights of every layer `source` and `target` share by name.

    Args:
        source: the trained `keras.Model`.
        target: the `keras.Model` to initialise.

    Returns:
        Sorted list of the names of the layers whose weights were copied.

    Raises:
        ValueError: a layer exists in both models with different weight shapes
            (for example a different `num_classes` or `fc_units`).
    """
    source_layers = {layer.name: layer for layer in source.layers if layer.weights}
    copied = []
    for layer in target.layers:
        if not layer.weights or layer.name not in source_layers:
            continue
        values = source_layers[layer.name].get_weights()
        expected = [tuple(w.shape) for w in layer.weights]
        received = [tuple(v.shape) for v in values]
        if expected != received:
            raise ValueError(
                f"Cannot transfer layer {layer.name!r} from {source.name!r} to "
                f"{target.name!r}: weight shapes {received} do not match {expected}."
            )
        layer.set_weights(values)
        copied.append(layer.name)
    return sorted(copied)


def _check_source(model, target, expected):
    """Raise unless `model` is an fcn_keras `expected` variant (told by `variant_of`)."""
    try:
        found = variant_of(model)
    except (ValueError, AttributeError):
        found = "not an fcn_keras FCN"
    if found != expected:
        raise ValueError(
            f"To initialise {target} the source model must be an {expected}; "
            f"{getattr(model, 'name', model)!r} is not ({found}). Build it with "
            "fcn_keras.build_fcn or train it with fcn_keras.train."
        )


def _config_of(model):
    upscore = next(layer for layer in model.layers if layer.name.startswith("upscore"))
    return {
        "num_classes": model.get_layer("score_fr").filters,
        "input_shape": tuple(model.input_shape[1:]),
        "fc_units": model.get_layer("fc6").filters,
        "head": head_of(model),
        "dropout": model.get_layer("drop6").rate,
        "trainable_upsampling": upscore.trainable,
    }


def _staged(builder, source, target, expected, name):
    _check_source(source, target, expected)
    target_model = builder(backbone_weights=None, name=name, **_config_of(source))
    transfer_weights(source, target_model)
    target_model.dataset_info = getattr(source, "dataset_info", None)
    return target_model


def fcn16s_from_fcn32s(fcn32s, name=None):
    """Build an FCN-16s initialised from a trained FCN-32s.

    All shared layers (VGG16, fc6, fc7, score_fr) are copied; `score_pool4`
    starts at zero and `upscore2`/`upscore16` at bilinear. So the new net's
    stride-32 scores equal the old net's, and its stride-16 fused scores are
    their bilinear 2x upsampling. The final logits match the old net's up to
    the difference between one x32 bilinear interpolation and x2 followed by
    x16 (largest at score-map knots and borders; measured in the tests).

    Args:
        fcn32s: a trained model from `fcn_keras.FCN32s`.
        name: optional name of the new model.

    Returns:
        A new FCN-16s `keras.Model` with the same classes, input shape,
        fc_units, dropout and upsampling trainability.

    Example:
    >>> fcn16 = fcn16s_from_fcn32s(fcn32)
    >>> fcn16.compile(...); fcn16.fit(...)
    """
    return _staged(FCN16s, fcn32s, "fcn16s", "fcn32s", name)


def fcn8s_from_fcn16s(fcn16s, name=None):
    """Build an FCN-8s initialised from a trained FCN-16s.

    All shared layers (VGG16, fc6, fc7, score_fr, upscore2, score_pool4) are
    copied; `score_pool3` starts at zero. See `fcn16s_from_fcn32s`.

    Args:
        fcn16s: a trained model from `fcn_keras.FCN16s` (or
            `fcn16s_from_fcn32s`).
        name: optional name of the new model.

    Returns:
        A new staged (not at-once) FCN-8s `keras.Model`.

    Example:
    >>> fcn8 = fcn8s_from_fcn16s(fcn16)
    """
    return _staged(FCN8s, fcn16s, "fcn8s", "fcn16s", name)


def staged_from(model, variant, name=None):
    """Initialise `variant` ("fcn16s" or "fcn8s") from `model`, one stage coarser.

    What `fcn_keras.train(init_from=...)` calls for a finer stage. The source
    variant is told by `fcn_keras.models.variant_of`; a ValueError names the
    expected source variant when the stages do not follow each other (the
    at-once FCN-8s has no coarser stage: it trains from the backbone).

    Args:
        model: the trained coarser FCN.
        variant: `"fcn16s"` (from an FCN-32s) or `"fcn8s"` (from an FCN-16s).
        name: optional name of the new model.

    Returns:
        The new model (its `dataset_info` copied from `model`).

    Example:
    >>> fcn16 = staged_from(keras.saving.load_model("fcn32s/best.keras"), "fcn16s")
    """
    steps = {"fcn16s": fcn16s_from_fcn32s, "fcn8s": fcn8s_from_fcn16s}
    if variant not in steps:
        raise ValueError(
            f"Staged initialisation builds 'fcn16s' (from fcn32s) or 'fcn8s' (from "
            f"fcn16s); received target variant {variant!r}."
        )
    return steps[variant](model, name=name)
