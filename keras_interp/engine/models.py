"""What the engine accepts as a model, and what it can know about one up front.

`resolve_model` turns the `model` argument of `explain()` and of every shortcut
into something callable (loading model files), or raises a clear error before
anything is traced. `model_facts` reads, without running the model, what the
engine checks inputs against: the image shape the model declares and the number
of units of the explained output.
"""

from __future__ import annotations

import collections
import dataclasses
import os
import pathlib
import threading
import weakref
from typing import Any

import keras
import numpy as np

from keras_interp._validation import received
from keras_interp.engine.cache import cached_variant
from keras_interp.engine.tracing import traced_function

#: Models loaded from paths, kept per (resolved path, modification time); the
#: least recently used is dropped beyond this many.
MAX_LOADED_MODELS = 4

_LOADED: collections.OrderedDict[tuple[str, int], Any] = collections.OrderedDict()
_LOCK = threading.RLock()

_KERAS_FILES = (".keras", ".h5", ".hdf5")


def resolve_model(model: Any, arg: str = "model") -> Any:
    """The model to explain, checked (and loaded from a path) before tracing.

    Accepted: a Keras 3 or tf_keras model, any callable `fn(images) -> scores`
    (a TF-Hub layer, a `tf.function`, a `FrozenGraphModel`), or a path
    (`str` or `os.PathLike`) to a `.keras`/`.h5` file or to a Keras SavedModel
    directory, which is loaded once (`compile=False`) and cached per resolved
    path and modification time: the same file gives the same model object (and
    so the same compiled functions) until it changes on disk.

    Args:
        model: the model, callable or path.
        arg: the argument's name in error messages.

    Returns:
        `model` itself, or the model loaded from the path.

    Raises:
        TypeError: `model` is `None` or neither a model, a callable nor a path.
        FileNotFoundError: no file or directory at the path.
        ValueError: the path is not a model file or SavedModel directory, the
            file cannot be read, or the SavedModel holds no Keras model (the
            message says how to load it).

    Example:
        >>> import tempfile
        >>> net = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Dense(2)])
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "net.keras"
        >>> net.save(path)
        >>> resolve_model(path) is resolve_model(str(path))
        True
        >>> resolve_model(net) is net
        True
    """
    if isinstance(model, (str, os.PathLike)):
        return _load(model, arg)
    if model is None or not callable(model):
        raise TypeError(
            f"`{arg}` must be a Keras model, a callable `fn(images) -> scores`, or "
            "a path to a .keras/.h5 file or a SavedModel directory. "
            f"{received(arg, model)}"
        )
    return model


def clear_loaded() -> None:
    """Forget the models `resolve_model` loaded from paths."""
    with _LOCK:
        _LOADED.clear()


def _load(path: Any, arg: str) -> Any:
    """Load (or reuse) the model at `path`."""
    resolved = pathlib.Path(os.fspath(path)).expanduser()
    if not resolved.exists():
        raise FileNotFoundError(
            f"`{arg}` names no file or directory. {received(arg, os.fspath(path))}"
        )
    resolved = resolved.resolve()
    if resolved.is_dir():
        marker = resolved / "saved_model.pb"
        if not marker.is_file():
            raise ValueError(
                f"`{arg}` is a directory but not a SavedModel (it has no "
                "saved_model.pb); pass a .keras/.h5 file or a SavedModel "
                f"directory. {received(arg, os.fspath(path))}"
            )
        stamp = marker.stat().st_mtime_ns
    elif resolved.suffix.lower() in _KERAS_FILES:
        stamp = resolved.stat().st_mtime_ns
    else:
        raise ValueError(
            f"`{arg}` must be a .keras or .h5 model file or a SavedModel "
            f"directory; load other formats yourself and pass the model. "
            f"{received(arg, os.fspath(path))}"
        )
    key = (str(resolved), stamp)
    with _LOCK:
        if key in _LOADED:
            _LOADED.move_to_end(key)
            return _LOADED[key]
        for old in [k for k in _LOADED if k[0] == key[0]]:
            del _LOADED[old]  # The file changed on disk.
        loaded = (
            _load_saved_model(resolved, path, arg)
            if resolved.is_dir()
            else _load_file(resolved, path, arg)
        )
        _LOADED[key] = loaded
        while len(_LOADED) > MAX_LOADED_MODELS:
            _LOADED.popitem(last=False)
        return loaded


def _load_file(resolved: pathlib.Path, path: Any, arg: str) -> Any:
    """A `.keras`/`.h5` file with Keras 3, else (a Keras 2 file) tf_keras."""
    try:
        return keras.models.load_model(resolved, compile=False)
    except Exception as keras_error:  # noqa: BLE001 - tf_keras next, then ours
        if resolved.suffix.lower() != ".keras":
            try:
                import tf_keras

                return tf_keras.models.load_model(str(resolved), compile=False)
            except Exception:  # noqa: BLE001, S110 - report Keras 3's error
                pass
        raise ValueError(
            f"`{arg}` could not be loaded as a Keras model "
            f"({type(keras_error).__name__}: {_first_line(keras_error)}). "
            f"{received(arg, os.fspath(path))}"
        ) from keras_error


def _load_saved_model(resolved: pathlib.Path, path: Any, arg: str) -> Any:
    """A tf_keras SavedModel directory with tf_keras; other SavedModels refused."""
    how = (
        "load it with `keras_interp.models.load_saved_model(path)` (a "
        "differentiable frozen graph; mind its `input_value_range`) and pass "
        "the result"
    )
    if not (resolved / "keras_metadata.pb").is_file():
        raise ValueError(
            f"`{arg}` is a SavedModel without a Keras model in it; {how}. "
            f"{received(arg, os.fspath(path))}"
        )
    try:
        import tf_keras

        return tf_keras.models.load_model(str(resolved), compile=False)
    except ImportError:
        raise ValueError(
            f"`{arg}` is a Keras 2 SavedModel, which needs the tf_keras package; "
            f"install it, or {how}. {received(arg, os.fspath(path))}"
        ) from None
    except Exception as error:  # noqa: BLE001 - TensorFlow's loader errors
        raise ValueError(
            f"`{arg}` could not be loaded as a SavedModel ({type(error).__name__}: "
            f"{_first_line(error)}); {how}. {received(arg, os.fspath(path))}"
        ) from error


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0][:200] if text else ""


@dataclasses.dataclass(frozen=True)
class ModelFacts:
    """What is known about a model without running it.

    Attributes:
        input_shapes: the declared shape of each input without the batch axis
            (entries `None` where free), or `None` when unknown.
        input_names: the names of the inputs (for dict inputs), or `None`.
        units: the number of units of the model's only output when it is
            `(batch, units)`, else `None`. Not read for exposed models, whose
            explained output depends on the method.
    """

    input_shapes: tuple[tuple[int | None, ...], ...] | None = None
    input_names: tuple[str, ...] | None = None
    units: int | None = None


def model_facts(model: Any) -> ModelFacts:
    """The declared inputs and (single) output width of `model`.

    Works for Keras 3 and tf_keras models and anything with `inputs`/`outputs`
    tensors; exposed models are read through their `source_model` (inputs
    only); other callables give `None`s.

    Example:
        >>> net = keras.Sequential([keras.Input((4, 4, 1), name="image"),
        ...                         keras.layers.Flatten(), keras.layers.Dense(2)])
        >>> model_facts(net)
        ModelFacts(input_shapes=((4, 4, 1),), input_names=('image',), units=2)
    """
    exposed = hasattr(model, "_endpoint_pairs") and hasattr(model, "source_model")
    source = model.source_model if exposed else model
    inputs = _safe(lambda: source.inputs)
    shapes = names = None
    if isinstance(inputs, (list, tuple)) and inputs:
        shapes = tuple(_shape_of(t) for t in inputs)
        if any(shape is None or not shape for shape in shapes):
            shapes = None
        else:
            shapes = tuple(shape[1:] for shape in shapes)
            names = tuple(_input_name(t) for t in inputs)
    units = None
    outputs = None if exposed else _safe(lambda: source.outputs)
    if isinstance(outputs, (list, tuple)) and len(outputs) == 1:
        shape = _shape_of(outputs[0])
        if shape is not None and len(shape) == 2 and shape[-1] is not None:
            units = shape[-1]
    return ModelFacts(shapes, names, units)


def _input_name(tensor: Any) -> str:
    name = str(getattr(tensor, "name", ""))
    return name.split(":")[0]


def _shape_of(value: Any) -> tuple[int | None, ...] | None:
    shape = getattr(value, "shape", None)
    if shape is None:
        return None
    try:
        return tuple(None if d is None else int(d) for d in tuple(shape))
    except (TypeError, ValueError):
        return None


def _safe(read: Any) -> Any:
    """An attribute that may raise (unbuilt models) read as `None`."""
    try:
        return read()
    except Exception:  # noqa: BLE001 - any failure means "unknown"
        return None


def check_inputs(model: Any, x: Any, spatial_axis: tuple[int, ...]) -> None:
    """Check `x` (an array or a nest of arrays) against the model's inputs.

    Ranks and the channel count must match what the model declares; a
    mismatched height or width is refused only if the model cannot run at that
    size (probed by tracing one forward pass, once per size).

    Args:
        model: the resolved model.
        x: a batch `(B, ...)` or a tuple/list/dict of them (numpy or tensors).
        spatial_axis: the height and width axes of image inputs.

    Raises:
        ValueError: a rank, channel count, input count or size the model does
            not take, or dict keys that are not the model's input names.
    """
    facts = model_facts(model)
    if facts.input_shapes is None:
        return
    if isinstance(x, dict):
        names = facts.input_names or ()
        if set(x) != set(names) or len(names) != len(facts.input_shapes):
            raise ValueError(
                f"`x` as a dict must have the model's input names {list(names)} "
                f"as keys. Received: x with keys {sorted(x)}"
            )
        pairs = [(f"x[{k!r}]", x[k], s) for k, s in zip(names, facts.input_shapes)]
    elif isinstance(x, (tuple, list)):
        if len(x) != len(facts.input_shapes):
            raise ValueError(
                f"`x` must hold one array per model input ({len(facts.input_shapes)}"
                f"), got {len(x)}. {received('x', x)}"
            )
        pairs = [
            (f"x[{i}]", v, s) for i, (v, s) in enumerate(zip(x, facts.input_shapes))
        ]
    elif len(facts.input_shapes) != 1:
        raise ValueError(
            f"The model takes {len(facts.input_shapes)} inputs: pass `x` as a tuple "
            f"or a dict (keys {list(facts.input_names or ())}). {received('x', x)}"
        )
    else:
        pairs = [("x", x, facts.input_shapes[0])]
    resize_probe = False
    for arg, value, declared in pairs:
        resize_probe |= _check_one(
            arg, tuple(np.shape(value))[1:], declared, spatial_axis
        )
    if resize_probe:
        _probe(model, x, pairs)


def _check_one(arg: str, got: tuple, declared: tuple, spatial_axis: tuple) -> bool:
    """Compare one input's shape with the declared one; `True` if only the
    height or width differ (to be probed)."""
    if len(got) != len(declared):
        raise ValueError(
            f"`{arg}` must have rank {len(declared) + 1} (batch, "
            f"{', '.join(str(d) for d in declared)}) for this model, got rank "
            f"{len(got) + 1}. Received: {arg}=<shape (batch, "
            f"{', '.join(map(str, got))})>"
        )
    spatial = set()
    if len(got) == 3:
        spatial = {int(a) % 4 - 1 for a in spatial_axis if -4 <= int(a) < 4}
    for axis, (have, want) in enumerate(zip(got, declared)):
        if want is None or have == want or axis in spatial:
            continue
        what = "channels" if len(got) == 3 else f"size {want} on axis {axis + 1}"
        raise ValueError(
            f"`{arg}` must have {want} {what} (axis {axis + 1}) for this model, "
            f"got {have}. "
            f"Received: {arg}=<shape (batch, {', '.join(map(str, got))})>"
        )
    return any(
        want is not None and have != want
        for axis, (have, want) in enumerate(zip(got, declared))
        if axis in spatial
    )


def _probe(model: Any, x: Any, pairs: list) -> None:
    """Refuse a height/width the model cannot run at (traced once per size)."""
    import tensorflow as tf

    key = tuple(tuple(np.shape(v))[1:] for _, v, _ in pairs)
    # The sizes this model was probed at (a fresh dict when not cacheable).
    probed = cached_variant(model, "probed sizes", dict)
    if key not in probed:
        specs = tf.nest.map_structure(
            lambda v: tf.TensorSpec((None, *np.shape(v)[1:]), tf.float32), x
        )
        try:
            traced_function(lambda t: model(t, training=False)).get_concrete_function(
                specs
            )
            probed[key] = True
        except Exception:  # noqa: BLE001 - any failure: the size is refused
            probed[key] = False
    if not probed[key]:
        arg, value, declared = pairs[0]
        raise ValueError(
            f"`{arg}` has a height and width the model cannot take: it declares "
            f"inputs of shape (batch, {', '.join(map(str, declared))}); resize the "
            f"images. Received: {arg} of shape {tuple(np.shape(value))}"
        )


def prepare(model: Any, method: Any) -> Any:
    """The model `method` should be given: exposed if it needs to be.

    `explain()` calls it, so a plain model can be given to every method: an
    already exposed model, or one for a method that needs no exposing, is
    returned as is; otherwise the method record's `exposer` (`expose`, or for
    `full_gradients` the model exposing every layer with a bias) is applied
    once per model and exposer, cached by weak reference. Public as
    `keras_interp.shortcuts.prepare`.

    Args:
        model: a Keras model (or any callable).
        method: a method name, spec or function (wrapped or not).

    Returns:
        `model`, or the exposed model the method takes.

    Example:
        >>> model = keras_interp.testing.models.gap_dense()
        >>> prepare(model, "gradients") is model
        True
        >>> prepare(model, "smooth(gradcam)") is prepare(model, "gradcam")
        True
    """
    from keras_interp import methods
    from keras_interp.inspection.expose import is_exposed
    from keras_interp.inspection.graph import has_graph

    if is_exposed(model) or not methods.needs_exposed(method):
        return model
    if not has_graph(model):
        # Any other callable follows the contract as given (e.g. a frozen
        # graph's `exposed(layer)` returning `[scores, activations]`).
        return model
    from keras_interp.inspection.expose import hand_exposed

    if hand_exposed(model):
        return model
    exposer = methods.record(method).exposer
    try:
        proxy = weakref.proxy(model)
    except TypeError:  # not weakly referenceable: expose without caching
        return exposer(model)
    return cached_variant(model, ("exposed", exposer), lambda: exposer(proxy))
