"""The model card: what a trained network predicts and how it is fed, in one typed record.

Three kinds of file carry a card: a project checkpoint (its top-level keys), an exported ONNX
graph (its ``<file>.onnx.json`` sidecar) and a TensorRT engine (its ``<file>.engine.json``
sidecar, which embeds the ONNX one). :meth:`ModelCard.from_dict` is the one reader of those
keys (every field checked against its bounds before anything is allocated for it, by the same
rules for every reader: the node, the bag evaluator, evaluation, export, packaging) and
:meth:`ModelCard.to_dict` the one writer; the files' own records (hashes, cache keys,
training state) stay beside the card in each format.

A checkpoint fixes what the network is (model, classes, normalisation, a default network
size); an exported file also fixes how it runs (channel order, precision, outputs, input size),
so those fields are None on a checkpoint's card.

:func:`card_class_set` is the one policy for a card's class set: a class set name that is not
known (a card from a newer or a private training setup) falls back to the known set with the
card's class count.

This module imports neither torch nor onnx: the ROS node's configuration reads it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from bisestdc_core.classes import CLASS_SETS, MAX_CLASSES, ClassSet, get_class_set
from bisestdc_core.normalization import IMAGENET_MEAN, IMAGENET_STD

# The numeric precisions a network can be stored or run at (the engines' registry says which
# engine runs which).
PRECISIONS = ("fp32", "fp16", "bf16", "int8")
# The maps an exported graph can return, in their output order.
OUTPUTS = ("labels", "confidence")
CHANNEL_ORDERS = ("rgb", "bgr")
# The network names (the choices of --model-name): here, where the torch-free tools (bag-eval
# on a Jetson) read them; bisestdc_core.models.registry maps each to its architecture and
# refuses to import when the two differ.
NETWORK_NAMES = ("bisestdc", "stdc1", "stdc2")
# Networks run at most at Cityscapes' full 1024 x 2048 in either orientation (larger inputs
# would only cost start-up memory: a hostile card asked for 8192 x 16384).
MIN_NETWORK_SIDE, MAX_NETWORK_SIDE = 32, 2048
# The deepest feature map is at 1/32 of the input: a network side that is not a multiple of it
# leaves the decoder's upsampled maps misaligned with the shallower ones (and the engines'
# fixed shapes and the node's network_height/width take only such sides).
NETWORK_STRIDE = 32
# A fixed graph input may be any camera size, up to twice the largest network side.
MAX_INPUT_SIDE = 2 * MAX_NETWORK_SIDE


class ModelCardError(ValueError):
    """A card field out of bounds; the message names the file and the field."""


@dataclass(frozen=True)
class ModelCard:
    """What a trained network predicts and how it is fed.

    Attributes:
        model: network name (a key of ``bisestdc_core.models.MODEL_REGISTRY``).
        num_classes: classes the network predicts.
        class_set: name of the class set of its train ids (None: unknown, e.g. seed files).
        class_names: the class names where the file stores them.
        mean, std: RGB normalisation on the 0..1 scale.
        network_size: (H, W) the network runs at (None: the file does not say).
        eval_scale: the evaluation scale the network was validated at (checkpoints).
        channel_order: ``rgb`` or ``bgr`` input of an exported graph.
        precision: one of :data:`PRECISIONS` for an exported graph or engine.
        outputs: the maps an exported graph returns (``labels`` first).
        input_size: (H, W) of a fixed-size graph's input (None: any size).
        labels_at_input_size: whether the graph's maps come at the input size.
        float_layers: roles left float in an int8 graph.
        source: the file the card was read from (for messages; not compared).
    """

    model: str
    num_classes: int
    class_set: str | None = None
    class_names: tuple[str, ...] | None = None
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    network_size: tuple[int, int] | None = None
    eval_scale: float | None = None
    channel_order: str | None = None
    precision: str | None = None
    outputs: tuple[str, ...] | None = None
    input_size: tuple[int, int] | None = None
    labels_at_input_size: bool | None = None
    float_layers: tuple[str, ...] | None = None
    source: str = field(default="", compare=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str | os.PathLike,
                  known_models: Collection[str] | None = None) -> ModelCard:
        """Read and check a card (a checkpoint's keys or a sidecar's); other keys are ignored.

        Args:
            data: the stored dict.
            source: the file, named in messages and kept in :attr:`source`.
            known_models: the network names the card may name (None: any non-empty name).

        Raises:
            ModelCardError: ``"<file>: card field '<name>' = <value>: <requirement>"``.
        """
        source = str(source)
        if not isinstance(data, Mapping):
            raise ModelCardError(f"{source}: holds no model card (found {type(data).__name__})")

        def refuse(name: str, requirement: str) -> ModelCardError:
            shown = repr(data[name]) if name in data else "missing"
            if len(shown) > 80:
                shown = shown[:77] + "..."
            return ModelCardError(f"{source}: card field {name!r} = {shown}: {requirement}")

        model = data.get("model")
        if not isinstance(model, str) or not model or (
                known_models is not None and model not in known_models):
            raise refuse("model", f"must be one of {sorted(known_models)}"
                         if known_models is not None else "must be a network name")
        num_classes = data.get("num_classes")
        if not _is_int(num_classes) or not 1 <= num_classes <= MAX_CLASSES:
            raise refuse("num_classes", f"must be an integer in [1, {MAX_CLASSES}]")
        stats = {}
        for name, default in (("mean", IMAGENET_MEAN), ("std", IMAGENET_STD)):
            if name in data and not _finite_numbers(data[name], 3):
                raise refuse(name, "must be 3 finite numbers")
            stats[name] = tuple(float(v) for v in data.get(name, default))
        if min(stats["std"]) <= 0:
            raise refuse("std", "must be > 0 for every channel")
        if "class_set" in data and not isinstance(data["class_set"], str):
            raise refuse("class_set", "must be a class set name")
        class_names = data.get("classes")
        if class_names is not None and not (
                isinstance(class_names, (list, tuple)) and len(class_names) == num_classes
                and all(isinstance(n, str) for n in class_names)):
            raise refuse("classes", f"must be {num_classes} class names")
        eval_scale = data.get("eval_scale")
        if eval_scale is not None and not (
                _finite_numbers([eval_scale], 1) and eval_scale > 0):
            raise refuse("eval_scale", "must be a number > 0")
        channel_order = data.get("channel_order")
        if channel_order is not None and channel_order not in CHANNEL_ORDERS:
            raise refuse("channel_order", f"must be one of {CHANNEL_ORDERS}")
        precision = data.get("precision")
        if precision is not None and precision not in PRECISIONS:
            raise refuse("precision", f"must be one of {PRECISIONS}")
        outputs = data.get("outputs")
        # Older ONNX sidecars store {name: {dtype, shape}}; the names are what counts.
        if isinstance(outputs, Mapping):
            outputs = list(outputs)
        if outputs is not None and not (
                isinstance(outputs, (list, tuple)) and outputs and outputs[0] == "labels"
                and all(o in OUTPUTS for o in outputs) and len(set(outputs)) == len(outputs)):
            raise refuse("outputs", f"must list 'labels' first, then any of {OUTPUTS[1:]}")
        labels_at_input = data.get("labels_at_input_size")
        if labels_at_input is not None and not isinstance(labels_at_input, bool):
            raise refuse("labels_at_input_size", "must be true or false")
        float_layers = data.get("float_layers")
        if float_layers is None and isinstance(data.get("quantization"), Mapping):
            float_layers = list(data["quantization"].get("float_layers") or ())
        if float_layers is not None and not (
                isinstance(float_layers, (list, tuple))
                and all(isinstance(r, str) for r in float_layers)):
            raise refuse("float_layers", "must be a list of layer roles")
        network_size = _size(data, "network_size", refuse, MIN_NETWORK_SIDE, MAX_NETWORK_SIDE)
        if network_size is not None and any(side % NETWORK_STRIDE for side in network_size):
            raise refuse("network_size", NETWORK_SIZE_RULE)
        return cls(
            model=model, num_classes=num_classes, class_set=data.get("class_set"),
            class_names=tuple(class_names) if class_names is not None else None,
            mean=stats["mean"], std=stats["std"],
            network_size=network_size,
            eval_scale=float(eval_scale) if eval_scale is not None else None,
            channel_order=channel_order, precision=precision,
            outputs=tuple(outputs) if outputs is not None else None,
            input_size=_size(data, "input_size", refuse, 1, MAX_INPUT_SIDE),
            labels_at_input_size=labels_at_input,
            float_layers=tuple(float_layers) if float_layers is not None else None,
            source=source,
        )

    def to_dict(self) -> dict[str, Any]:
        """The card's stored keys (JSON-ready lists); fields that are None are left out."""
        stored = {
            "model": self.model, "num_classes": self.num_classes, "class_set": self.class_set,
            "classes": _listed(self.class_names), "mean": list(self.mean),
            "std": list(self.std), "network_size": _listed(self.network_size),
            "eval_scale": self.eval_scale, "channel_order": self.channel_order,
            "precision": self.precision, "outputs": _listed(self.outputs),
            "input_size": _listed(self.input_size),
            "labels_at_input_size": self.labels_at_input_size,
            "float_layers": _listed(self.float_layers),
        }
        return {k: v for k, v in stored.items() if v is not None}

    def replace(self, **changes: Any) -> ModelCard:
        """A copy with ``changes`` (the card is frozen)."""
        return replace(self, **changes)


NETWORK_SIZE_RULE = (f"must be [height, width], multiples of {NETWORK_STRIDE} (the network's "
                     f"deepest stride) in [{MIN_NETWORK_SIDE}, {MAX_NETWORK_SIDE}]")


def check_network_size(size: Any, source: str | os.PathLike,
                       name: str = "network_size") -> tuple[int, int]:
    """``size`` as (H, W) if a card would accept it as its ``network_size`` (the one rule, for
    sizes given as options too: ``--network-size``).

    Raises:
        ModelCardError: ``"<source>: card field '<name>' = <value>: <requirement>"``.
    """
    card = ModelCard.from_dict({"model": "any", "num_classes": 1, "network_size": size}, source)
    if card.network_size is None:
        raise ModelCardError(f"{source}: card field {name!r} = None: {NETWORK_SIZE_RULE}")
    return card.network_size


def card_class_set(card: ModelCard, requested: str | ClassSet | None = None) -> ClassSet | None:
    """The class set of ``card``'s train ids, by the one policy of every reader.

    ``requested`` (an option) wins; else the card's class set if it is a known one; else (an
    unknown name, or none) the known class set with the card's class count. None: no known
    class set has that many classes (callers number the classes).

    Raises:
        ModelCardError: ``requested`` is unknown, or its class count is not the card's.
    """
    if isinstance(requested, ClassSet):
        chosen: ClassSet | None = requested
    elif requested is not None:
        try:
            chosen = get_class_set(requested)
        except ValueError as error:
            raise ModelCardError(f"{card.source}: {error}") from None
    elif card.class_set in CLASS_SETS:
        chosen = CLASS_SETS[card.class_set]
    else:
        chosen = next((c for c in CLASS_SETS.values() if c.num_classes == card.num_classes),
                      None)
    if chosen is not None and chosen.num_classes != card.num_classes:
        raise ModelCardError(f"{card.source}: class set {chosen.name!r} has "
                             f"{chosen.num_classes} classes but the network predicts "
                             f"{card.num_classes}")
    return chosen


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _finite_numbers(value: Any, count: int) -> bool:
    return (isinstance(value, (list, tuple)) and len(value) == count
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                    for v in value))


def _size(data: Mapping[str, Any], name: str, refuse: Any, low: int,
          high: int) -> tuple[int, int] | None:
    size = data.get(name)
    if size is None:
        return None
    if not (isinstance(size, (list, tuple)) and len(size) == 2 and all(map(_is_int, size))
            and all(low <= side <= high for side in size)):
        raise refuse(name, f"must be [height, width] in [{low}, {high}]")
    return int(size[0]), int(size[1])


def _listed(values: tuple | None) -> list | None:
    return list(values) if values is not None else None
