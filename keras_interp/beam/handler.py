"""`ExplainModelHandler`: Apache Beam's RunInference running an explaining method.

The handler follows Beam's TensorFlow handlers (`TFModelHandlerNumpy`):
`load_model` runs once per worker (Beam caches the loaded object across
bundles, and `large_model=True` shares one copy across a worker's processes),
`run_inference` takes a list of images and returns one `PredictionResult` per
image. What it loads is an `Explainer`: the model, the model as the method
needs it (`keras_interp.shortcuts.prepare`) and the engine's compiled step
(`keras_interp.engine.compiled_function`), so every bundle reuses one trace.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
from apache_beam.io.filesystems import FileSystems
from apache_beam.ml.inference.base import ModelHandler, PredictionResult

from keras_interp._validation import check_one_of, check_positive_int, received
from keras_interp.beam.explainer import (
    DEFAULT_CHUNK_SIZE,
    Explainer,
    check_targets,
    resolve_method,
    static_image_size,
)

#: How model scores become probabilities.
ACTIVATIONS = ("softmax", "sigmoid", None)


class ExplainModelHandler(ModelHandler[Any, PredictionResult, Explainer]):
    """A Beam `ModelHandler` whose inference is an explaining method.

    Each element is one image (anything `keras_interp.load_image` reads: a
    float `(H, W, 3)` array in [0, 1], a uint8 array, ...). A batch is
    resized to `image_size`, stacked, passed through `preprocessing`, and
    explained; each `PredictionResult.inference` is a dict:

    - `logits` `(K,)`: the scores the method explains (for exposed methods,
      such as the CAM family, the pre-softmax logits of the model);
    - `probabilities` `(K,)`: `activation` applied to `logits`;
    - `predicted_class`: the arg-max of `logits`;
    - `classes` `(L,)`: the explained units; `explained_logits` `(L,)`;
    - `maps` `(H, W, L)`: the maps, post-processed and resized to the image.

    The numbers are those of `keras_interp.explain(method, prepare(model,
    method), preprocessing(images), classes, postprocessing=...)`.

    Args:
        model_uri_or_loader: a `.keras` or `.h5` file or a SavedModel folder,
            local or on any filesystem Beam supports (copied to a local
            temporary folder first), or a function returning the model.
        method: a method, registry name or spec (`"smooth(gradcam, seed=0)"`).
        targets: `"predicted"` (the `top_k` highest-scoring units of each
            image), a unit index or a list of them (the same for every
            image), or `None` (every unit).
        top_k: how many predicted units to explain with `"predicted"`.
        preprocessing: `fn(images) -> model inputs` applied to the float
            `(B, H, W, 3)` batch in [0, 1] (e.g. the model's own scaling), or
            `None`.
        image_size: `(height, width)` (or an int) images are resized to with
            `resize_mode`; `None` reads it from the model's input shape, and
            leaves images as they are when that is not static.
        resize_mode: `"crop"` or `"stretch"` (see `keras_interp.load_image`).
        postprocessing: `"natural"` (the method's natural post-processing,
            what the shortcuts apply), a function `fn(maps, axis)`, or `None`.
        activation: `"softmax"`, `"sigmoid"` or `None` (the scores already
            are probabilities).
        jit_compile: compile the explaining step with XLA.
        min_batch_size: the smallest batch Beam's `BatchElements` forms.
        max_batch_size: the largest batch; also the `batch_size` of methods
            that chunk their forward passes.
        large_model: load one model per machine, shared by its processes.
        **method_options: options of `method` (checked now).

    Raises:
        TypeError: `model_uri_or_loader` is neither a path nor callable.
        ValueError: an unknown method or option, bad `targets`, `top_k`,
            `image_size`, `resize_mode`, `postprocessing` or `activation`.

    Example:
        >>> handler = ExplainModelHandler(gap_dense, "gradcam", top_k=2)
        >>> images = [np.zeros((8, 8, 3), "float32")]
        >>> results = handler.run_inference(images, handler.load_model())
        >>> results[0].inference["maps"].shape
        (8, 8, 2)

        In a pipeline: `images | RunInference(handler)`.
    """

    def __init__(
        self,
        model_uri_or_loader: str | os.PathLike | Callable[[], Any],
        method: str | Callable,
        *,
        targets: str | int | Sequence[int] | None = "predicted",
        top_k: int = 1,
        preprocessing: Callable | None = None,
        image_size: int | Sequence[int] | None = None,
        resize_mode: str = "crop",
        postprocessing: str | Callable | None = "natural",
        activation: str | None = "softmax",
        jit_compile: bool = False,
        min_batch_size: int | None = None,
        max_batch_size: int | None = None,
        large_model: bool = False,
        **method_options: Any,
    ) -> None:
        if isinstance(model_uri_or_loader, os.PathLike):
            model_uri_or_loader = os.fspath(model_uri_or_loader)
        if not (isinstance(model_uri_or_loader, str) or callable(model_uri_or_loader)):
            raise TypeError(
                "`model_uri_or_loader` must be a model path or a function "
                "returning the model. "
                + received("model_uri_or_loader", model_uri_or_loader)
            )
        batching = {}
        for name, value in (("min_batch_size", min_batch_size),):
            if value is not None:
                batching[name] = check_positive_int(value, name)
        if max_batch_size is not None:
            batching["max_batch_size"] = check_positive_int(
                max_batch_size, "max_batch_size"
            )
        super().__init__(large_model=bool(large_model), **batching)
        self._source = model_uri_or_loader
        self._method = method
        self._targets = check_targets(targets)
        self._top_k = check_positive_int(top_k, "top_k")
        if preprocessing is not None and not callable(preprocessing):
            raise TypeError(
                "`preprocessing` must be a function or None. "
                f"{received('preprocessing', preprocessing)}"
            )
        self._preprocessing = preprocessing
        self._image_size = _check_size(image_size)
        self._resize_mode = check_one_of(
            resize_mode, ("crop", "stretch"), "resize_mode"
        )
        self._activation = check_one_of(activation, ACTIVATIONS, "activation")
        if not isinstance(jit_compile, bool):
            raise TypeError(
                f"`jit_compile` must be a bool. {received('jit_compile', jit_compile)}"
            )
        self._jit_compile = jit_compile
        self._chunk_size = batching.get("max_batch_size", DEFAULT_CHUNK_SIZE)
        # Resolve once now, so a bad method, option or post-processing fails
        # at pipeline construction rather than on a worker.
        resolve_method(method, postprocessing, method_options)
        self._postprocessing = postprocessing
        self._method_options = dict(method_options)

    @property
    def image_size(self) -> tuple[int, int] | None:
        """The `(height, width)` given, or `None` (read from the model)."""
        return self._image_size

    @property
    def resize_mode(self) -> str:
        """How images are resized: `"crop"` or `"stretch"`."""
        return self._resize_mode

    def resolve_image_size(self) -> tuple[int, int]:
        """`image_size`, or the model's static input size (loading the model).

        Raises:
            ValueError: no `image_size` and the model's input size is not static.
        """
        if self._image_size is not None:
            return self._image_size
        source = self._source
        model = source() if callable(source) else load_model(source)
        size = static_image_size(model)
        if size is None:
            raise ValueError(
                "The model's input has no static height and width: pass "
                f"`image_size`. {received('image_size', self._image_size)}"
            )
        return size

    def describe(self) -> dict[str, Any]:
        """The handler's options as JSON-friendly values (for a manifest)."""
        method = self._method
        method = method if isinstance(method, str) else getattr(method, "__name__", "")
        post = self._postprocessing
        if post is not None and not isinstance(post, str):
            post = getattr(post, "__name__", type(post).__name__)
        targets = self._targets
        return {
            "model": self.model_id,
            "method": method,
            "method_options": {
                k: repr(v) for k, v in sorted(self._method_options.items())
            },
            "targets": list(targets) if isinstance(targets, tuple) else targets,
            "top_k": self._top_k,
            "resize_mode": self._resize_mode,
            "postprocessing": post,
            "activation": self._activation,
            "preprocessing": None
            if self._preprocessing is None
            else getattr(self._preprocessing, "__name__", "function"),
        }

    @property
    def model_id(self) -> str:
        """The model path, or the loader's name."""
        if isinstance(self._source, str):
            return self._source
        return getattr(self._source, "__name__", type(self._source).__name__)

    def load_model(self) -> Explainer:
        """Load the model and compile the explaining step (once per worker)."""
        model = self._source() if callable(self._source) else load_model(self._source)
        return Explainer(
            model,
            self._method,
            targets=self._targets,
            top_k=self._top_k,
            preprocessing=self._preprocessing,
            image_size=self._image_size,
            resize_mode=self._resize_mode,
            postprocessing=self._postprocessing,
            activation=self._activation,
            jit_compile=self._jit_compile,
            chunk_size=self._chunk_size,
            method_options=self._method_options,
        )

    def run_inference(
        self,
        batch: Sequence[Any],
        model: Explainer,
        inference_args: dict[str, Any] | None = None,
    ) -> Iterable[PredictionResult]:
        """Explain one batch of images.

        Args:
            batch: images, as `load_image` reads them.
            model: the `Explainer` from `load_model`.
            inference_args: must be empty (options are set on the handler).

        Returns:
            One `PredictionResult(example, inference, model_id)` per image.
        """
        self.validate_inference_args(inference_args)
        outputs = model.explain(list(batch))
        return [
            PredictionResult(example, inference, self.model_id)
            for example, inference in zip(batch, outputs)
        ]

    def validate_inference_args(self, inference_args: dict[str, Any] | None) -> None:
        """Options belong to the handler: per-call `inference_args` are refused."""
        if inference_args:
            raise ValueError(
                "ExplainModelHandler takes no `inference_args`; set the method's "
                f"options on the handler. {received('inference_args', inference_args)}"
            )

    def get_num_bytes(self, batch: Sequence[Any]) -> int:
        """The bytes of the batch's images."""
        return sum(int(np.asarray(element).nbytes) for element in batch)

    def get_metrics_namespace(self) -> str:
        """The namespace of RunInference's metrics for this handler."""
        return "KerasInterpExplain"


def load_model(uri: str) -> Any:
    """Load a `.keras`/`.h5` file or a SavedModel folder from any filesystem.

    A path Beam's `FileSystems` reaches but the local disk does not (e.g.
    `gs://bucket/model.keras`) is copied to a temporary folder first; the
    local path is loaded by `keras_interp.engine.resolve_model` (Keras 3, then
    tf_keras; loaded once per file and modification time).

    Raises:
        FileNotFoundError: nothing at `uri`.
        ValueError: the model cannot be read.
    """
    from keras_interp.engine import resolve_model

    local = uri if os.path.exists(uri) else _copy_to_local(uri)
    return resolve_model(local)


def _copy_to_local(uri: str) -> str:
    """Copy the file or folder at `uri` to a new temporary folder."""
    folder = tempfile.mkdtemp(prefix="keras_interp_model_")
    base = uri.rstrip("/")
    found = FileSystems.match([base, base + "/**"])
    single = [m.path for m in found[0].metadata_list]
    nested = [m.path for m in found[1].metadata_list]
    if not single and not nested:
        shutil.rmtree(folder, ignore_errors=True)
        raise FileNotFoundError(f"No model at {uri!r}.")
    if single and not nested:
        local = os.path.join(folder, os.path.basename(base))
        _copy(single[0], local)
        return local
    root = os.path.join(folder, os.path.basename(base))
    for path in nested:
        _copy(path, os.path.join(root, path[len(base) + 1 :]))
    return root


def _copy(source: str, target: str) -> None:
    os.makedirs(os.path.dirname(target), exist_ok=True)
    with FileSystems.open(source) as reader, open(target, "wb") as writer:
        shutil.copyfileobj(reader, writer)


def _check_size(size: Any) -> tuple[int, int] | None:
    """`None`, an int (a square) or a `(height, width)` pair of positive ints."""
    if size is None:
        return None
    if isinstance(size, (list, tuple)):
        if len(size) != 2:
            raise ValueError(
                "`image_size` must be an int or a (height, width) pair. "
                f"{received('image_size', size)}"
            )
        return (
            check_positive_int(size[0], "image_size"),
            check_positive_int(size[1], "image_size"),
        )
    side = check_positive_int(size, "image_size")
    return side, side
