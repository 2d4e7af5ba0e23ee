"""`ConceptCallback`: concept sensitivity (TCAV) of a model as it trains."""

from __future__ import annotations

import os
import weakref
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from keras_interp._validation import (
    check_images,
    check_positive_int,
    received,
)
from keras_interp.callbacks._base import (
    AlreadyReported,
    TrainingCallback,
    watched_images,
)

__all__ = ["ConceptCallback"]


class ConceptCallback(TrainingCallback):
    """Log the TCAV score of named concepts at one layer while a model trains.

    Every `every_n_epochs` epochs, for each concept given by example images,
    a CAV is trained on the current weights (CAVlib's linear SVM between the
    activations of the positive and negative examples at `layer`,
    `keras_interp.concepts.train_cav`), and the callback writes to
    `<log_dir>/<name>`, step = the epoch:

    - `<concept>/tcav_score`: the fraction of the watched `images` whose
      `class_index` logit rises along the CAV (`tcav_score` of the directional
      derivatives): the class's sensitivity to the concept;
    - `<concept>/derivative_mean`: the mean directional derivative;
    - `<concept>/cav_accuracy`: how well the CAV separates the positives from
      the negatives (threshold halfway between their mean projections): how
      clearly the layer represents the concept;
    - with `random_sets`, TCAV's significance test
      (`keras_interp.concepts.tcav`, the concept against each random set):
      `<concept>/tcav_mean`, `<concept>/random_mean`, `<concept>/p_value` and
      `<concept>/significant` (1 when `p < alpha`).

    A concept given as a `CAV` (or the path of a saved `.cav` file, loaded
    for this model) keeps its direction: only its TCAV score and derivative
    mean are logged, showing how the class's sensitivity to that fixed
    direction evolves. Failures never stop training (see `ExplainCallback`).

    Args:
        concepts: concept name -> `(positive_images, negative_images)` float
            batches `(N, H, W, C)` as the model takes them, a `CAV`, or a
            `.cav` path.
        images: the watched images of the class, as `ExplainCallback`'s.
        layer: the layer of the CAVs (a name or path `"outer/inner"`).
        class_index: the class (logit) whose sensitivity is measured.
        log_dir: the folder of `keras.callbacks.TensorBoard(log_dir)`.
        every_n_epochs: log after epochs `0, n, 2n, ...`.
        random_sets: `None`, or at least two float batches of random images
            for the significance test.
        alpha: the significance level.
        seed: the seed of the CAV training (the same seed each epoch, so the
            curves show the weights' change, not the seed's).
        name: the run's folder under `log_dir`.
        logger: `None`, `"wandb"`, `"mlflow"` or a tracker object.
        batch_size: images per forward and backward pass.
        max_failures: consecutive failures before a concept (or the callback)
            is given up.

    Raises:
        ValueError: an empty or malformed concept, bad images, too few random
            sets, or a bad option value.
        TypeError: a concept or option of the wrong type.

    Example:
        >>> import tempfile
        >>> model = gap_dense()  # a layer "conv", 8x8 images, 3 classes
        >>> model.compile("adam", keras.losses.SparseCategoricalCrossentropy(True))
        >>> rng = np.random.default_rng(0)
        >>> x = rng.random((12, 8, 8, 3), dtype=np.float32) * 0.5
        >>> y = np.arange(12) % 3
        >>> reddish = x.copy()
        >>> reddish[..., 0] += 0.5
        >>> callback = ConceptCallback({"red": (reddish, x)}, x[:4], layer="conv",
        ...                            class_index=0, log_dir=tempfile.mkdtemp())
        >>> history = model.fit(x, y, epochs=2, verbose=0, callbacks=[callback])
        >>> [epoch for epoch, _ in callback.history["red"]]
        [0, 1]
        >>> sorted(callback.history["red"][-1][1])
        ['cav_accuracy', 'derivative_mean', 'tcav_score']

    References:
        Kim et al., Interpretability Beyond Feature Attribution: Quantitative
        Testing with Concept Activation Vectors (TCAV), ICML 2018.
        arXiv:1711.11279.
    """

    def __init__(
        self,
        concepts: Mapping[str, Any],
        images: Any,
        *,
        layer: str,
        class_index: int,
        log_dir: str = "logs",
        every_n_epochs: int = 1,
        random_sets: Sequence[Any] | None = None,
        alpha: float = 0.05,
        seed: int = 0,
        name: str = "concepts",
        logger: Any = None,
        batch_size: int = 32,
        max_failures: int = 3,
    ) -> None:
        super().__init__(
            log_dir=log_dir,
            every_n_epochs=every_n_epochs,
            name=name,
            logger=logger,
            max_failures=max_failures,
        )
        self._config = dict(
            concepts=concepts, images=images, layer=layer, class_index=class_index,
            log_dir=log_dir, every_n_epochs=every_n_epochs, random_sets=random_sets,
            alpha=alpha, seed=seed, name=name, logger=logger, batch_size=batch_size,
            max_failures=max_failures,
        )  # fmt: skip
        self.concepts = self._check_concepts(concepts)
        self.images, _ = watched_images(images)
        if not isinstance(layer, str) or not layer:
            raise TypeError(
                f"`layer` must be a layer name or path. {received('layer', layer)}"
            )
        self.layer = layer
        self.class_index = check_positive_int(
            class_index, "class_index", allow_zero=True
        )
        self.random_sets = None
        if random_sets is not None:
            if isinstance(random_sets, np.ndarray) or len(random_sets) < 2:
                raise ValueError(
                    "`random_sets` must be a sequence of at least 2 image batches. "
                    f"{received('random_sets', random_sets)}"
                )
            self.random_sets = [
                check_images(s, f"random_sets[{i}]") for i, s in enumerate(random_sets)
            ]
        if not 0 < alpha < 1:
            raise ValueError(f"`alpha` must be in (0, 1). {received('alpha', alpha)}")
        self.alpha = float(alpha)
        self.seed = check_positive_int(seed, "seed", allow_zero=True)
        self.batch_size = check_positive_int(batch_size, "batch_size")
        self.history: dict[str, list[tuple[int, dict[str, float]]]] = {}
        self._wrapped: Any = None
        self._model_ref: Any = None
        self._loaded: dict[str, Any] = {}

    @staticmethod
    def _check_concepts(concepts: Any) -> dict[str, Any]:
        from keras_interp.concepts import CAV

        if not isinstance(concepts, Mapping) or not concepts:
            raise TypeError(
                "`concepts` must be a non-empty dict: name -> (positive_images, "
                "negative_images), a CAV or a .cav path. "
                f"{received('concepts', concepts)}"
            )
        checked: dict[str, Any] = {}
        for key, value in concepts.items():
            if not isinstance(key, str) or not key or "/" in key:
                raise ValueError(
                    f"Concept names must be non-empty strings without '/'. "
                    f"{received('concepts', key)}"
                )
            if isinstance(value, CAV):
                checked[key] = value
            elif isinstance(value, (str, os.PathLike)):
                if not os.path.isfile(value):
                    raise ValueError(
                        f"No .cav file at {value!r}. {received(key, value)}"
                    )
                checked[key] = os.fspath(value)
            elif isinstance(value, (tuple, list)) and len(value) == 2:
                checked[key] = tuple(
                    check_images(v, f"concepts[{key!r}][{i}]")
                    for i, v in enumerate(value)
                )
            else:
                raise TypeError(
                    f"Concept {key!r} must be (positive_images, negative_images), a "
                    f"CAV or a .cav path. {received(key, value)}"
                )
        return checked

    # -- the model ----------------------------------------------------------------
    def _concept_model(self) -> Any:
        """`KerasModel(self.model)`, made once per model (it caches its exposed
        sub-models), with inputs fed as they are given."""
        from keras_interp.models import KerasModel

        if self._model_ref is None or self._model_ref() is not self.model:
            self._wrapped = KerasModel(self.model)
            self._model_ref = weakref.ref(self.model)
            self._loaded.clear()
        return self._wrapped

    def _activations(self, model: Any, images: np.ndarray) -> np.ndarray:
        """`(N, D)` activations of prepared `images`, batched by the engine."""
        from keras_interp.concepts import batch_activations

        return batch_activations(
            images, (model, self.layer), batch_size=self.batch_size, verbose=0
        )

    # -- one logging call -----------------------------------------------------------
    def _log(self, epoch: int) -> None:
        model = self._concept_model()
        model.check_layer(self.layer)
        logged = 0
        for concept, value in self.concepts.items():
            if self._failures.get(concept, 0) >= self.max_failures:
                continue
            try:
                numbers = self._concept(model, concept, value)
            except Exception as error:  # noqa: BLE001 - never stop training
                self._guard(concept, error, epoch)
                continue
            self._succeeded(concept)
            self.history.setdefault(concept, []).append((epoch, numbers))
            for key, number in numbers.items():
                self.sink.scalar(f"{concept}/{key}", number, epoch)
            logged += 1
        if not logged:
            raise AlreadyReported("no concept could be scored")

    def _concept(self, model: Any, concept: str, value: Any) -> dict[str, float]:
        from keras_interp.concepts import (
            CAV,
            TrainingImage,
            directional_derivatives,
            tcav,
            tcav_score,
            train_cav,
        )

        numbers: dict[str, float] = {}
        if isinstance(value, tuple):
            positives, negatives = value
            pair = (model, self.layer)
            acts = [self._activations(model, images) for images in value]
            cav = train_cav(
                positive_images=[TrainingImage(activations={pair: a}) for a in acts[0]],
                negative_images=[TrainingImage(activations={pair: a}) for a in acts[1]],
                model_layer=pair,
                random_state=np.random.RandomState(self.seed),
                verbose=0,
            )
            numbers["cav_accuracy"] = _separation(acts[0], acts[1], cav.vector)
        elif isinstance(value, CAV):
            cav = value
        else:
            if concept not in self._loaded:
                self._loaded[concept] = CAV.load(value, model=model)
            cav = self._loaded[concept]
        derivatives = directional_derivatives(
            model, self.images, self.layer, cav, self.class_index,
            batch_size=self.batch_size,
        )  # fmt: skip
        numbers["tcav_score"] = float(tcav_score(derivatives))
        numbers["derivative_mean"] = float(np.mean(derivatives))
        if isinstance(value, tuple) and self.random_sets is not None:
            result = tcav(
                model, self.layer, self.class_index, value[0], self.random_sets,
                self.images, alpha=self.alpha, random_state=self.seed,
                batch_size=self.batch_size, verbose=0,
            )  # fmt: skip
            numbers["tcav_mean"] = float(result.mean)
            numbers["random_mean"] = float(result.random_mean)
            numbers["p_value"] = float(result.p_value)
            numbers["significant"] = float(result.significant)
        return numbers


def _separation(positives: np.ndarray, negatives: np.ndarray, vector: Any) -> float:
    """The accuracy of the CAV as a classifier, thresholded halfway between
    the mean projections of the two sets."""
    direction = np.asarray(vector, np.float64)
    up, down = positives @ direction, negatives @ direction
    threshold = (up.mean() + down.mean()) / 2
    return float(np.concatenate([up > threshold, down <= threshold]).mean())
