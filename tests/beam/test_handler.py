"""`ExplainModelHandler` and its `Explainer`, called as RunInference calls them."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("apache_beam")

from beam_helpers import SIZE, save_model, tiny_model  # noqa: E402

import keras_interp  # noqa: E402
from keras_interp import filters  # noqa: E402
from keras_interp.beam import ExplainModelHandler  # noqa: E402
from keras_interp.beam.handler import load_model  # noqa: E402
from keras_interp.engine import compiled_function  # noqa: E402
from keras_interp.images import load_image  # noqa: E402
from keras_interp.methods import gradcam  # noqa: E402
from keras_interp.shortcuts import prepare  # noqa: E402


def _images(count: int = 5, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (12, 10, 3), dtype=np.uint8) for _ in range(count)]


def _prepared(images) -> np.ndarray:
    return np.stack([load_image(image, SIZE) for image in images])


def _scores(model, x) -> np.ndarray:
    return prepare(model, "gradcam")(x)[0].numpy()


def test_top_k_results_equal_explain_on_the_prepared_images():
    handler = ExplainModelHandler(tiny_model, "gradcam", top_k=2, max_batch_size=4)
    images = _images()
    results = list(handler.run_inference(images, handler.load_model()))
    model, x = tiny_model(), _prepared(images)
    scores = _scores(model, x)
    classes = np.argsort(-scores, axis=1, kind="stable")[:, :2]
    logits, maps = keras_interp.gradcam(model, x, classes, verbose=0)
    assert len(results) == 5 and results[0].example is images[0]
    assert results[0].model_id == "tiny_model"
    for i, result in enumerate(results):
        found = result.inference
        np.testing.assert_array_equal(found["classes"], classes[i])
        assert found["predicted_class"] == classes[i, 0]
        np.testing.assert_allclose(found["logits"], scores[i], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(found["explained_logits"], logits[i], rtol=1e-5)
        np.testing.assert_allclose(found["maps"], maps[i], rtol=1e-5, atol=1e-6)
        softmax = np.exp(scores[i]) / np.exp(scores[i]).sum()
        np.testing.assert_allclose(found["probabilities"], softmax, rtol=1e-5)
        assert found["maps"].shape == (SIZE, SIZE, 2)


def test_fixed_targets_preprocessing_and_sigmoid():
    def preprocessing(x):
        return 2 * x - 1

    handler = ExplainModelHandler(
        tiny_model,
        "gradcam",
        targets=[2, 0],
        preprocessing=preprocessing,
        activation="sigmoid",
    )
    images = _images(3)
    results = list(handler.run_inference(images, handler.load_model()))
    model, x = tiny_model(), preprocessing(_prepared(images))
    _, maps = keras_interp.gradcam(model, x, [[2, 0]] * 3, verbose=0)
    scores = _scores(model, x)
    for i, result in enumerate(results):
        np.testing.assert_array_equal(result.inference["classes"], [2, 0])
        np.testing.assert_allclose(result.inference["maps"], maps[i], atol=1e-6)
        sigmoid = 1 / (1 + np.exp(-scores[i]))
        np.testing.assert_allclose(
            result.inference["probabilities"], sigmoid, rtol=1e-5
        )


def test_all_units_without_postprocessing():
    handler = ExplainModelHandler(
        tiny_model, "gradcam", targets=None, postprocessing=None
    )
    results = list(handler.run_inference(_images(2), handler.load_model()))
    model, x = tiny_model(), _prepared(_images(2))
    _, maps = keras_interp.explain(gradcam, prepare(model, "gradcam"), x, verbose=0)
    assert results[0].inference["maps"].shape == (SIZE, SIZE, 3)
    np.testing.assert_array_equal(results[1].inference["classes"], [0, 1, 2])
    np.testing.assert_allclose(results[1].inference["maps"], maps[1], atol=1e-6)


def test_the_step_is_the_engines_cached_function_traced_once():
    handler = ExplainModelHandler(tiny_model, "gradcam")
    explainer = handler.load_model()
    same = compiled_function(
        gradcam, explainer.prepared, postprocessing=filters.positive_normalize
    )
    assert explainer.function is same
    for seed in range(3):  # Three bundles of the same batch size.
        handler.run_inference(_images(4, seed), explainer)
    assert explainer.function.experimental_get_tracing_count() == 1


def test_beam_facing_settings():
    handler = ExplainModelHandler(
        "m.keras", "gradcam", min_batch_size=2, max_batch_size=8, large_model=True
    )
    assert handler.batch_elements_kwargs() == {"min_batch_size": 2, "max_batch_size": 8}
    assert handler.share_model_across_processes()
    assert not ExplainModelHandler("m.keras", "gradcam").share_model_across_processes()
    assert handler.get_num_bytes([np.zeros((4, 4, 3), np.float32)] * 2) == 384
    assert handler.get_metrics_namespace() == "KerasInterpExplain"
    assert handler.model_id == "m.keras"


def test_load_model_from_a_keras_file(tmp_path):
    path = save_model(tmp_path)
    handler = ExplainModelHandler(path, "gradcam")
    assert handler.resolve_image_size() == (SIZE, SIZE)
    images = _images(2)
    results = list(handler.run_inference(images, handler.load_model()))
    _, maps = keras_interp.gradcam(
        load_model(path), _prepared(images), [r.inference["classes"] for r in results]
    )
    np.testing.assert_allclose(results[0].inference["maps"], maps[0], atol=1e-6)
    with pytest.raises(FileNotFoundError, match="nothing.keras"):
        load_model(str(tmp_path / "nothing.keras"))


@pytest.mark.parametrize(
    "args, kwargs, error, match",
    [
        ((42, "gradcam"), {}, TypeError, "model_uri_or_loader"),
        (("m.keras", "gradcamm"), {}, ValueError, "gradcam"),
        (("m.keras", "occlusion"), {"windw": 3}, ValueError, "window"),
        (("m.keras", "gradcam"), {"targets": "top"}, ValueError, "targets"),
        (("m.keras", "gradcam"), {"targets": [1, -1]}, ValueError, "targets"),
        (("m.keras", "gradcam"), {"top_k": 0}, ValueError, "top_k"),
        (("m.keras", "gradcam"), {"image_size": (8,)}, ValueError, "image_size"),
        (("m.keras", "gradcam"), {"resize_mode": "fit"}, ValueError, "resize_mode"),
        (("m.keras", "gradcam"), {"activation": "relu"}, ValueError, "activation"),
        (("m.keras", "gradcam"), {"postprocessing": "none"}, ValueError, "postproc"),
        (("m.keras", "gradcam"), {"preprocessing": "x/255"}, TypeError, "preproc"),
        (("m.keras", "gradcam"), {"max_batch_size": 0}, ValueError, "max_batch"),
    ],
)
def test_bad_options_fail_at_construction(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        ExplainModelHandler(*args, **kwargs)


@pytest.mark.parametrize(
    "kwargs, match",
    [({"top_k": 4}, "`top_k` must be at most"), ({"targets": 3}, "`targets` must be")],
)
def test_units_past_the_model_fail_before_tracing(kwargs, match):
    handler = ExplainModelHandler(tiny_model, "gradcam", **kwargs)
    with pytest.raises(ValueError, match=match):
        handler.run_inference(_images(1), handler.load_model())


def test_inference_args_and_mixed_sizes_are_refused():
    handler = ExplainModelHandler(lambda: tiny_model(), "gradients")
    explainer = handler.load_model()
    with pytest.raises(ValueError, match="inference_args"):
        handler.run_inference(_images(1), explainer, {"training": True})
    explainer.image_size = None  # As for a model without a static input size.
    mixed = [np.zeros((8, 8, 3), np.uint8), np.zeros((9, 8, 3), np.uint8)]
    with pytest.raises(ValueError, match="different sizes"):
        handler.run_inference(mixed, explainer)
