"""CAVlib's models (GoogLeNet inception5h, MobileNet v1) and its layer strings.

`GooglenetModel` and `MobilenetModel` run the frozen graphs CAVlib's TFLite
files were converted from, with CAVlib's input value ranges and layer names.
`MODEL_LAYERS` maps CAVlib's `model_layer` strings to a model class and a
layer; `resolve_model_layer` turns a string, or a `(model, layer_ref)` pair for
your own model, into `(Model instance, layer name)`.
"""

from __future__ import annotations

import collections
import os
import pathlib
import threading
from typing import Any

from keras_interp._validation import received
from keras_interp.models.base import KerasModel, Model
from keras_interp.models.download import CACHE_ENV, SOURCES, resolve_graph_path
from keras_interp.models.frozen import FrozenGraphModel, load_graph_def

#: inception5h layers CAVlib exposes (its TFLite outputs), in depth order.
GOOGLENET_LAYERS = (
    "mixed3a",
    "mixed3b",
    "mixed4a",
    "mixed4b",
    "mixed4c",
    "mixed4d",
    "mixed4e",
    "mixed5a",
    "mixed5b",
)

_MOBILENET = "MobilenetV1/MobilenetV1/Conv2d_{}/Relu6"

#: MobileNet v1 layers CAVlib exposes: depthwise 2, 4..13 and pointwise 4..13.
CAVLIB_MOBILENET_LAYERS = tuple(
    [_MOBILENET.format(f"{i}_depthwise") for i in (2, *range(4, 14))]
    + [_MOBILENET.format(f"{i}_pointwise") for i in range(4, 14)]
)

#: Every MobileNet v1 block output, in depth order (a superset of CAVlib's).
MOBILENET_LAYERS = (_MOBILENET.format(0),) + tuple(
    _MOBILENET.format(f"{i}_{kind}")
    for i in range(1, 14)
    for kind in ("depthwise", "pointwise")
)

#: The labels file of inception5h.zip (1008 lines, the first is "dummy").
GOOGLENET_LABELS_FILE = "imagenet_comp_graph_label_strings.txt"


class GooglenetModel(FrozenGraphModel):
    """GoogLeNet (Inception v1) from inception5h's `tensorflow_inception_graph.pb`.

    Input `input`, fed `255 * x - 117` for an image `x` in [0, 1] (value range
    `(-117, 138)`), 224x224 by default though the graph takes any size; layers
    `mixed3a` .. `mixed5b` (`mixed4d` 14x14x528, `mixed5b` 7x7x1024 at 224);
    logits `softmax2_pre_activation`, 1008 classes whose index 0 is `"dummy"`.
    Only at 224x224 is there one row of logits per image: the graph's average
    pool is 7x7 VALID with stride 1 and its reshape is `(-1, 1024)`, so a
    299x299 image gives 16 rows (TCAV keeps every 16th).

    Args:
        model_path: a local `tensorflow_inception_graph.pb`. Defaults to `None`:
            `$KERAS_INTERP_GOOGLENET_PATH`, else the cache, else a download
            (see `keras_interp.models.download`).

    Attributes:
        labels: the 1008 class names, from `imagenet_comp_graph_label_strings.txt`
            beside the graph when present, else `"dummy"`, `"1"`, ... `"1007"`.

    Raises:
        DownloadError: no local file and the download failed; the message says
            where to put the file.
        ValueError: the file is not the inception5h graph.

    Example:
        >>> model = GooglenetModel()  # doctest: +SKIP
        >>> model.get_activation_for_image(  # doctest: +SKIP
        ...     "photo.png", "mixed4d").shape
        (103488,)

    References:
        Szegedy et al., Going Deeper with Convolutions, CVPR 2015.
        arXiv:1409.4842. Google Research, CAVlib, `models.py`, 2022.
    """

    _source = "googlenet"

    def __init__(self, model_path: Any = None) -> None:
        path = resolve_graph_path(self._source, model_path)
        graph_def = load_graph_def(path)
        super().__init__(
            graph_def,
            input_name="input",
            output_names=_present(graph_def, GOOGLENET_LAYERS, path, "inception5h"),
            input_value_range=(-117, 138),
            logits_name="softmax2_pre_activation",
            image_size=224,
        )
        self.model_path = path
        self.labels = _labels(path.with_name(GOOGLENET_LABELS_FILE), 1008, "dummy")

    @property
    def name(self) -> str:
        return "googlenet"


class MobilenetModel(FrozenGraphModel):
    """MobileNet v1 1.0/224 from `mobilenet_v1_1.0_224_frozen.pb`.

    Fed the [0, 1] image unchanged, value range `(0, 1)`, exactly as CAVlib
    does (the network was trained on [-1, 1]; CAVlib's concept vectors were
    computed this way, so we keep it). Layers: every
    `MobilenetV1/MobilenetV1/Conv2d_{i}[_depthwise|_pointwise]/Relu6` present
    in the graph (CAVlib's list, `CAVLIB_MOBILENET_LAYERS`, is a subset;
    `Conv2d_12_depthwise` is 7x7x512). Logits `MobilenetV1/Logits/SpatialSqueeze`,
    1001 classes whose index 0 is the background.

    Args:
        model_path: a local `mobilenet_v1_1.0_224_frozen.pb`. Defaults to
            `None`: `$KERAS_INTERP_MOBILENET_PATH`, else the cache, else a
            download (see `keras_interp.models.download`).

    Attributes:
        labels: `"background"`, `"1"`, ... `"1000"`.

    Raises:
        DownloadError: no local file and the download failed; the message says
            where to put the file.
        ValueError: the file is not the MobileNet v1 graph.

    Example:
        >>> model = MobilenetModel()  # doctest: +SKIP
        >>> layer = "MobilenetV1/MobilenetV1/Conv2d_12_depthwise/Relu6"
        >>> model.get_activation_for_image("photo.png", layer).shape  # doctest: +SKIP
        (25088,)

    References:
        Howard et al., MobileNets: Efficient Convolutional Neural Networks for
        Mobile Vision Applications, 2017. arXiv:1704.04861.
    """

    _source = "mobilenet"

    def __init__(self, model_path: Any = None) -> None:
        path = resolve_graph_path(self._source, model_path)
        graph_def = load_graph_def(path)
        super().__init__(
            graph_def,
            input_name="input",
            output_names=_present(graph_def, MOBILENET_LAYERS, path, "MobileNet v1"),
            input_value_range=(0, 1),
            logits_name="MobilenetV1/Logits/SpatialSqueeze",
            image_size=224,
        )
        self.model_path = path
        self.labels = _labels(None, 1001, "background")

    @property
    def name(self) -> str:
        return "mobilenet"


def _present(graph_def: Any, layers: tuple, path: pathlib.Path, what: str) -> list:
    names = {node.name for node in graph_def.node}
    found = [layer for layer in layers if layer in names]
    if not found:
        raise ValueError(
            f"`model_path` is not the {what} frozen graph: it has none of the "
            f"layers {layers[0]!r} .. {layers[-1]!r}. "
            f"{received('model_path', str(path))}"
        )
    return found


def _labels(path: pathlib.Path | None, count: int, first: str) -> list[str]:
    if path is not None and path.is_file():
        lines = path.read_text(encoding="utf-8").splitlines()
        if len(lines) == count:
            return lines
    return [first] + [str(i) for i in range(1, count)]


#: CAVlib's `model_layer` strings: `(model class, layer name)`.
MODEL_LAYERS: dict[str, tuple[type, str]] = {
    "googlenet_4d": (GooglenetModel, "mixed4d"),
    "googlenet_5b": (GooglenetModel, "mixed5b"),
    "mobilenet_12d": (MobilenetModel, _MOBILENET.format("12_depthwise")),
}

_singletons: dict[tuple, Model] = {}
_wrappers: collections.OrderedDict[int, KerasModel] = collections.OrderedDict()
_lock = threading.Lock()
#: How many raw Keras models keep their `KerasModel` wrapper cached.
_MAX_WRAPPERS = 8


def get_model(model_class: type) -> Model:
    """The shared instance of `GooglenetModel` or `MobilenetModel`.

    One instance per class and per setting of its environment variables (so
    pointing `KERAS_INTERP_GOOGLENET_PATH` elsewhere gives a new instance),
    built on first use (which may download the graph).

    Args:
        model_class: `GooglenetModel` or `MobilenetModel` (or a subclass).

    Returns:
        The shared instance.
    """
    source = SOURCES[model_class._source]
    key = (model_class, os.environ.get(source.env_var), os.environ.get(CACHE_ENV))
    with _lock:
        if key not in _singletons:
            _singletons[key] = model_class()
        return _singletons[key]


def clear_model_cache() -> None:
    """Forget the shared models and the cached Keras wrappers."""
    with _lock:
        _singletons.clear()
        _wrappers.clear()


def resolve_model_layer(model_layer: Any) -> tuple[Model, str]:
    """A CAVlib `model_layer` string, or a `(model, layer_ref)` pair, as
    `(Model instance, layer name)`.

    Args:
        model_layer: one of `MODEL_LAYERS` (`"googlenet_4d"`, `"googlenet_5b"`,
            `"mobilenet_12d"`), giving the shared frozen-graph model; or a pair
            `(model, layer_ref)` where `model` is a `Model` (`KerasModel`,
            `FrozenGraphModel`, ...) or a raw Keras model. A raw Keras model is
            wrapped in `KerasModel(model)` with input range `(0, 1)` (the
            wrapper is cached for the last few models; wrap it yourself for
            another range). For a `KerasModel`, `layer_ref` is anything
            `inspection.find_layer` accepts and is returned as its path string
            when that is unambiguous; for other models, a layer name.

    Returns:
        `(model, layer_name)`.

    Raises:
        ValueError: an unknown string or any other value (the message lists the
            valid strings), or an unknown layer.
        DownloadError: a string model whose graph cannot be found or fetched.

    Example:
        >>> model, layer = resolve_model_layer("googlenet_4d")  # doctest: +SKIP
        >>> layer  # doctest: +SKIP
        'mixed4d'

        A Keras model of your own, with its layer found at any depth:

        >>> backbone = keras.Sequential(
        ...     [keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3, name="out_relu")],
        ...     name="backbone")
        >>> net = keras.Sequential([keras.Input((8, 8, 3)), backbone,
        ...     keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(2)])
        >>> model, layer = resolve_model_layer((KerasModel(net, (-1, 1)), "out_relu"))
        >>> layer
        'backbone/out_relu'

    References:
        Google Research, CAVlib, `activations.get_model_layer_info`, 2022.
    """
    if isinstance(model_layer, str) and model_layer in MODEL_LAYERS:
        model_class, layer = MODEL_LAYERS[model_layer]
        return get_model(model_class), layer
    if isinstance(model_layer, (tuple, list)) and len(model_layer) == 2:
        model, layer_ref = model_layer
        if not isinstance(model, Model) and hasattr(model, "layers"):
            model = _wrap(model)
        if isinstance(model, KerasModel):
            return model, _keras_layer_name(model, layer_ref)
        if isinstance(model, Model):
            return model, model.check_layer(layer_ref)
    raise ValueError(
        "`model_layer` must be one of "
        f"{', '.join(map(repr, MODEL_LAYERS))}, or a pair (model, layer) where "
        "model is a keras_interp.models.Model (KerasModel, FrozenGraphModel, "
        f"...) or a Keras model. {received('model_layer', model_layer)}"
    )


def _wrap(keras_model: Any) -> KerasModel:
    with _lock:
        wrapper = _wrappers.get(id(keras_model))
        if wrapper is None or wrapper.keras_model is not keras_model:
            wrapper = KerasModel(keras_model, input_value_range=(0, 1))
        _wrappers[id(keras_model)] = wrapper
        _wrappers.move_to_end(id(keras_model))
        while len(_wrappers) > _MAX_WRAPPERS:
            _wrappers.popitem(last=False)
        return wrapper


def _keras_layer_name(model: KerasModel, layer_ref: Any) -> Any:
    from keras_interp.inspection import find_layer, iter_layers

    layer = find_layer(model.keras_model, layer_ref)
    for path, candidate in iter_layers(model.keras_model):
        if candidate is layer:
            try:
                if find_layer(model.keras_model, path) is layer:
                    return path
            except ValueError:
                break
    return layer_ref if isinstance(layer_ref, str) else layer
