"""Leap's `generate()`: class prototypes, entanglement and feature isolation.

leap-ie is closed source and needs an API key; this is its documented
interface (`engine.generate` and every config key of its reference
documentation, with those defaults) over our own, documented algorithms:
`class_prototypes` (prototypes.py), `entanglement` (class_entanglement.py) and
`isolate_features` (isolation.py). TensorFlow only: `mode='pt'` is an error.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import tensorflow as tf

from keras_interp._validation import check_images, received
from keras_interp.synthesis.class_entanglement import entanglement
from keras_interp.synthesis.isolation import (
    check_baseline,
    isolate_features,
    logits_function,
)
from keras_interp.synthesis.leap_config import (
    check_generate_args,
    class_indices,
    declared_shape,
    image_layout,
    isolation_options,
    load_config,
    prototype_options,
    with_input_dim,
)
from keras_interp.synthesis.leap_logging import LeapLogger, save_png
from keras_interp.synthesis.prototypes import class_prototypes

#: The columns of `results_df`, in order.
COLUMNS = (
    "id", "kind", "source", "sample", "target", "target_name", "prototype",
    "class", "class_name", "probability", "max_probability", "predicted",
    "probabilities", "share", "rank", "entangled", "mask_area", "step",
    "image_path",
)  # fmt: skip


def generate(
    project_name: str,
    model: Any,
    class_list: Sequence[str],
    config: Any,
    target_classes: Any = None,
    preprocessing: Callable | None = None,
    samples: Any = None,
    device: str | None = None,
    mode: str = "tf",
    *,
    output_dir: str | os.PathLike | None = None,
    verbose: int = 0,
) -> tuple[pd.DataFrame, dict]:
    """Leap's prototype generation and feature isolation, for Keras models.

    Without `samples`: one or more prototypes per target class
    (`class_prototypes`: a Fourier image optimised to maximise the class's
    log-probability under a blur schedule from `blur_max` to `blur_min`,
    random affine transforms (`transform`), and the `hf_weight`,
    `alpha_weight`, `diversity_weight` penalties), then the entanglement of
    each prototype (`entanglement`: how the other classes share the
    probability the target leaves), then, if `isolation`, feature isolation on
    each prototype for `isolate_classes[i]` or its top `max_isolate_classes`
    predicted classes. With `samples`: only feature isolation on the samples
    (`isolate_features`: a smooth soft mask keeping the class while covering
    as little as possible), for `isolate_classes[i]` (one list per sample), or
    `target_classes`, or each sample's top `max_isolate_classes` classes.

    The image shape comes from `input_dim` (`[B, H, W, C]` or `[H, W, C]`,
    channels at `channel_ix`, found automatically if None); when the config
    does not give it, from the model's declared input shape if fixed, or the
    samples' shape (the reference default `[1, 224, 224, 3]` otherwise).
    Prototypes per class: `input_dim[0]`; when that is 1 and
    `diversity_weight > 0`, 3 (diversity needs several). `always_update=False`
    keeps each image's best-scoring version among the logged steps (every
    `log_freq` steps), `True` the last. The baseline (`baseline_init`: a
    number, per-channel values, an image, or `'r'` for uniform noise) starts
    the prototypes and fills what isolation masks remove.

    Files go to `<output_dir>/<project_name>/` (`output_dir` defaults to the
    working directory): `prototypes/*.png` (RGBA with an alpha channel),
    `isolation/*.png` (RGBA: the input with the mask as alpha), `results.csv`
    and TensorBoard logs in `logs/` (probabilities and images at each logged
    step). With `wandb_api_key` the same goes to Weights & Biases (project
    `project_name`, entity `wandb_entity`); if wandb is not installed a
    warning says so and only TensorBoard is written.

    Args:
        project_name: the folder name and W&B project; a relative path.
        model: a Keras model (or callable) returning logits for a batch
            (channels last unless `channel_ix` says otherwise); one ending in a
            softmax is handled.
        class_list: the class names, one per model output.
        config: a dict or the path of a JSON file; keys in `DEFAULT_CONFIG`.
        target_classes: class indices (or one int). Defaults to `[0]` for
            prototypes, and to the top predicted classes for samples.
        preprocessing: a TF-differentiable function mapping images in [0, 1]
            to model inputs, e.g. `lambda x: x * 2 - 1`.
        samples: None, or images `(N, H, W, C)` in [0, 1] (in the model's
            layout: channels at `channel_ix`) to isolate features on.
        device: a TensorFlow device string (`"/CPU:0"`, `"/GPU:0"`) or None
            for TensorFlow's default placement.
        mode: `'tf'`. PyTorch (`'pt'`) is not supported.
        output_dir: where the project folder is made.
        verbose: 1 shows a progress bar while prototypes are optimised.

    Returns:
        `(results_df, results_dict)`. `results_df` has one row per result
        with the columns `COLUMNS`: `kind` (`prototype`, `entanglement`,
        `isolation`), `source` (`model`, `prototype`, `sample`), `sample` and
        `prototype` indices, `target`/`target_name` (the prototype's class or
        the isolated class), `class`/`class_name` (the class the row is about:
        the other class for entanglement, the isolated class for isolation),
        `probability` (of `class` on the row's image), `max_probability`,
        `predicted`, `probabilities` (all classes), `share` and `rank` and
        `entangled` (entanglement only), `mask_area` (isolation: mean mask;
        alpha prototypes: mean alpha), `step` (of the kept image) and
        `image_path` (relative to `output_dir`). `results_dict` maps
        `"prototype"` and `"isolation"` to `{row id: {"target", "class",
        "steps" (S,), "probabilities" (S, K)}}`: the probabilities at every
        logged step.

    Raises:
        ValueError: `mode='pt'`, a bad config key or value, class indices out
            of range, `class_list` not matching the model's outputs.
        TypeError: an argument of the wrong type.

    Example:
        >>> import tempfile
        >>> model = keras.Sequential([keras.Input((16, 16, 3)),
        ...     keras.layers.Conv2D(4, 3), keras.layers.GlobalAveragePooling2D(),
        ...     keras.layers.Dense(2)])
        >>> df, logs = generate("demo", model, ["cat", "dog"], {"max_steps": 16},
        ...                     target_classes=[0, 1], output_dir=tempfile.mkdtemp())
        >>> sorted(set(df.kind)), df.image_path[0]
        (['entanglement', 'prototype'], 'demo/prototypes/000_cat_p0.png')

    References:
        Tagade & Rumbelow, Prototype Generation: Robust Feature Visualisation
        for Data Independent Interpretability, 2023. arXiv:2309.17144.
        Leap Labs, leap-ie `engine.generate` documentation (interface only).
    """
    names = check_generate_args(project_name, class_list, preprocessing, device, mode)
    config = load_config(config)
    if samples is not None:
        samples = check_images(samples, "samples")
        config = with_input_dim(config, samples.shape)
    elif declared_shape(model) is not None:
        config = with_input_dim(config, (1, *declared_shape(model)))
    per_class, shape, axis = image_layout(config)
    if samples is not None:
        if axis != -1:
            samples = np.moveaxis(samples, axis, -1)
        shape = samples.shape[1:]
    baseline = check_baseline(config["baseline_init"], shape, "baseline_init")
    if per_class == 1 and config["diversity_weight"] > 0:
        per_class = 3

    base = pathlib.Path(output_dir if output_dir is not None else os.getcwd())
    project = base / project_name
    context = tf.device(device) if device else contextlib.nullcontext()
    logger = LeapLogger(base, project_name, config)
    run = _Run(names, base, project, config, baseline, logger, preprocessing, axis)
    try:
        with context:
            num_classes = run.check_model(model, shape)
            if samples is None:
                targets = class_indices(target_classes, num_classes, "target_classes")
                run.prototypes(model, targets or [0], shape, per_class, verbose)
            else:
                run.sample_isolation(model, samples, target_classes)
    finally:
        logger.close(run.rows)
    frame = pd.DataFrame(run.rows, columns=list(COLUMNS))
    for column in ("sample", "prototype", "rank", "step"):
        frame[column] = frame[column].astype("Int64")
    frame.to_csv(project / "results.csv", index=False)
    return frame, run.logs


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:40] or "class"


class _Run:
    """One `generate` call: runs the algorithms and collects rows and logs."""

    def __init__(self, names, base, project, config, baseline, logger, prep, axis):
        self.names, self.base, self.project = names, base, project
        self.config, self.baseline, self.logger = config, baseline, logger
        self.preprocessing, self.axis = prep, axis
        self.rows: list[dict] = []
        self.logs: dict = {"prototype": {}, "isolation": {}}

    def check_model(self, model: Any, shape: tuple) -> int:
        logits_of = logits_function(model, self.preprocessing, self.axis)
        try:
            logits = logits_of(tf.zeros((1, *shape)))
        except Exception as error:  # the model's own message, with a hint
            raise ValueError(
                f"The model failed on images of shape {tuple(shape)} (from "
                f"input_dim={self.config['input_dim']}, channel_ix="
                f"{self.config['channel_ix']}): {error}"
            ) from error
        if logits.shape[-1] != len(self.names):
            raise ValueError(
                f"`class_list` has {len(self.names)} names but the model has "
                f"{logits.shape[-1]} outputs. {received('class_list', self.names)}"
            )
        return len(self.names)

    def _path(self, *parts: str) -> tuple[pathlib.Path, str]:
        path = self.project.joinpath(*parts)
        return path, path.relative_to(self.base).as_posix()

    def _row(self, **values: Any) -> dict:
        probs = values.get("probabilities")
        if probs is not None:
            values["max_probability"] = float(np.max(probs))
            values["predicted"] = int(np.argmax(probs))
            values["probabilities"] = [float(p) for p in probs]
        for key in ("target", "class"):
            if values.get(key) is not None:
                values[f"{key}_name"] = self.names[values[key]]
        row = dict.fromkeys(COLUMNS)
        row.update(values)
        self.rows.append(row)
        return row

    def prototypes(self, model, targets, shape, per_class, verbose) -> None:
        c = self.config
        labels = [f"prototype/c{t}/p{j}" for t in targets for j in range(per_class)]
        result = class_prototypes(
            model,
            targets,
            shape=shape,
            per_class=per_class,
            **prototype_options(c),
            baseline=self.baseline,
            preprocessing=self.preprocessing,
            channels_axis=self.axis,
            verbose=verbose,
            callback=self.logger.callback(
                "prototype", labels, np.repeat(targets, per_class)
            ),
        )
        alpha = result.images.shape[-1] > shape[-1]
        isolate = []
        for n, target in enumerate(result.targets):
            j = n % per_class
            row_id = f"prototype/c{target}/p{j}"
            file = f"{target:03d}_{_safe(self.names[target])}_p{j}.png"
            path, rel = self._path("prototypes", file)
            save_png(path, result.images[n])
            probs = result.probabilities[n]
            area = float(result.images[n, ..., -1].mean()) if alpha else None
            self._row(
                id=row_id,
                kind="prototype",
                source="model",
                target=int(target),
                prototype=j,
                **{"class": int(target)},
                probability=float(probs[target]),
                probabilities=probs,
                step=int(result.kept_steps[n]),
                image_path=rel,
                mask_area=area,
            )
            self.logs["prototype"][row_id] = {
                "target": int(target),
                "class": int(target),
                "steps": result.steps,
                "probabilities": result.history[:, n],
            }
            tangle = entanglement(result.logits[n], int(target))
            for rank, k in enumerate(tangle.classes, 1):
                self._row(
                    id=f"entanglement/c{target}/p{j}/c{k}",
                    kind="entanglement",
                    source="prototype",
                    target=int(target),
                    prototype=j,
                    **{"class": int(k)},
                    probability=float(probs[k]),
                    probabilities=probs,
                    share=float(tangle.shares[rank - 1]),
                    rank=rank,
                    entangled=bool(tangle.entangled[rank - 1]),
                    step=int(result.kept_steps[n]),
                    image_path=rel,
                )
            if c["isolation"]:
                chosen = self._isolate_for(n // per_class, len(targets), probs)
                isolate += [(result.composites[n], int(target), j, k) for k in chosen]
        if isolate:
            self._isolation(model, isolate, "prototype")

    def _isolate_for(self, index: int, count: int, probs: np.ndarray) -> list[int]:
        """`isolate_classes[index]` (a list per target/sample, or one list for
        all), else the top `max_isolate_classes` classes of `probs`."""
        chosen = self.config["isolate_classes"]
        if chosen is None:
            top = min(self.config["max_isolate_classes"], len(probs))
            return [int(k) for k in np.argsort(-probs, kind="stable")[:top]]
        if all(isinstance(k, (int, np.integer)) for k in chosen):
            return class_indices(list(chosen), len(probs), "isolate_classes")
        if len(chosen) != count:
            raise ValueError(
                f"`isolate_classes` must hold one list per target or sample "
                f"({count}), or one list of class indices for all. "
                f"{received('isolate_classes', chosen)}"
            )
        return class_indices(chosen[index], len(probs), "isolate_classes")

    def sample_isolation(self, model, samples, target_classes) -> None:
        num = len(self.names)
        targets = class_indices(target_classes, num, "target_classes")
        logits_of = logits_function(model, self.preprocessing, self.axis)
        probs = tf.nn.softmax(logits_of(tf.constant(samples))).numpy()
        pairs = []
        for i, image in enumerate(samples):
            if targets and self.config["isolate_classes"] is None:
                chosen = targets
            else:
                chosen = self._isolate_for(i, len(samples), probs[i])
            pairs += [(image, None, i, k) for k in chosen]
        self._isolation(model, pairs, "sample")

    def _isolation(self, model, pairs, source) -> None:
        c = self.config
        ids = [
            f"isolation/prototype/c{t}/p{j}/c{k}"
            if source == "prototype"
            else f"isolation/sample{j}/c{k}"
            for _, t, j, k in pairs
        ]
        result = isolate_features(
            model,
            np.stack([p[0] for p in pairs]),
            np.array([p[3] for p in pairs]),
            **isolation_options(c),
            baseline=self.baseline,
            preprocessing=self.preprocessing,
            channels_axis=self.axis,
            callback=self.logger.callback("isolation", ids, [p[3] for p in pairs]),
        )
        for n, ((image, target, j, k), row_id) in enumerate(zip(pairs, ids)):
            name = row_id.removeprefix("isolation/").replace("/", "_") + ".png"
            path, rel = self._path("isolation", name)
            save_png(path, np.concatenate([image, result.masks[n, ..., None]], -1))
            probs = result.probabilities[n]
            self._row(
                id=row_id,
                kind="isolation",
                source=source,
                sample=j if source == "sample" else None,
                prototype=j if source == "prototype" else None,
                target=k if target is None else target,
                **{"class": k},
                probability=float(probs[k]),
                probabilities=probs,
                mask_area=float(result.masks[n].mean()),
                step=int(result.steps[-1]),
                image_path=rel,
            )
            self.logs["isolation"][row_id] = {
                "target": k if target is None else target,
                "class": k,
                "steps": result.steps,
                "probabilities": result.history[:, n],
            }
