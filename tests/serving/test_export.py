"""`serving.export` on tiny Keras 3 and tf_keras models (flat and nested):
every signature, run in a fresh process that never imports keras_interp,
gives the numbers `keras_interp.explain` gives in this process."""

from __future__ import annotations

import io

import keras
import numpy as np
import PIL.Image
import pytest
import tensorflow as tf

from keras_interp import methods, serving
from keras_interp.images import load_image
from keras_interp.inspection import expose
from keras_interp.visualization import overlay as python_overlay
from tests.serving import helpers
from tests.serving.helpers import close

tf_keras = pytest.importorskip("tf_keras")

#: Every registered method, with options small enough for tests.
OPTIONS = {
    "scorecam": "max_channels=4",
    "integrated_gradients": "steps=4",
    "occlusion": "window=(4, 4), stride=(4, 4)",
    "rise": "num_masks=8, grid_size=2, seed=0",
    "upsampled_activation": "interpolation='bilinear', threshold=0.2",
}
PLAIN = [f"{n}({OPTIONS[n]})" if n in OPTIONS else n for n in sorted(methods.METHODS)]
WRAPPED = [
    "smooth(gradients, repetitions=3, seed=0)",
    "smooth(gradcam, repetitions=3, seed=0)",
    "smooth(scorecam(max_channels=4), repetitions=2, seed=0)",
    "tta(gradcam, scales=[0.5], hflip=False)",
    "tta(smooth(guided_gradients, repetitions=2, seed=0), scales=[])",
]
TF_KERAS = [
    "gradcam",
    "guided_gradients",
    "scorecam(max_channels=4)",
    "smooth(gradients, repetitions=3, seed=0)",
    "tta(gradcam, scales=[0.5])",
]

#: name -> (framework, model builder, methods, export options)
EXPORTS = {
    "k3_flat": (keras, helpers.flat_model, PLAIN, {"top_k": 2, "overlay": True}),
    "k3_nested": (keras, helpers.nested_model, WRAPPED + ["gradcam", "gradients"], {}),
    "tfk_nested": (tf_keras, helpers.nested_model, TF_KERAS, {"top_k": 2}),
}


def _encoded(fmt: str, height: int, width: int, seed: int) -> bytes:
    rows, cols = np.mgrid[:height, :width]
    phase = np.random.default_rng(seed).uniform(0, 6, 3)
    pixels = 0.5 + 0.4 * np.sin(rows[..., None] / 3.0 + cols[..., None] / 5.0 + phase)
    buffer = io.BytesIO()
    PIL.Image.fromarray((pixels * 255).astype(np.uint8)).save(buffer, fmt)
    return buffer.getvalue()


ENCODED = [_encoded("PNG", 20, 15, 0), _encoded("JPEG", 16, 30, 1)]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Export every model, then run every signature in ONE fresh process."""
    tmp = tmp_path_factory.mktemp("serving")
    x = helpers.images()
    given = np.array([[2, 0], [1, 1], [0, 2], [2, 1]], np.int32)
    prepared = np.stack([load_image(io.BytesIO(b), 12) for b in ENCODED])
    results, jobs = {}, []
    for name, (framework, build, specs, options) in EXPORTS.items():
        model = build(framework)
        directory = tmp / name
        signatures = serving.export(model, directory, methods=specs, **options)
        calls = {"serving_default": {"images": x}, "explain": {"images": x}}
        if name != "k3_flat":  # every method once is enough: the nested ones
            calls["explain_classes"] = {"images": x, "classes": given}
        else:
            calls["explain_images"] = {"image_bytes": np.array(ENCODED, object)}
            calls["explain_prepared"] = {"images": prepared.astype(np.float32)}
        paths = {}
        for signature, inputs in calls.items():
            real = "explain" if signature == "explain_prepared" else signature
            job, paths[signature] = helpers.signature_outputs(
                directory, real, inputs, tmp, tag=signature
            )
            jobs.append(job)
        results[name] = (model, specs, signatures, paths, directory)
    helpers.run_fresh(jobs, tmp)
    loaded = {}
    for name, (model, specs, signatures, paths, directory) in results.items():
        outputs = {k: dict(np.load(p, allow_pickle=True)) for k, p in paths.items()}
        loaded[name] = dict(
            model=model,
            specs=specs,
            signatures=signatures,
            outputs=outputs,
            dir=directory,
            x=x,
            given=given,
            prepared=prepared,
        )
    return loaded


def _softmax_head(name: str) -> bool:
    return "nested" in name


@pytest.mark.parametrize("name", sorted(EXPORTS))
def test_serving_default_is_the_model(exported, name):
    case = exported[name]
    predictions = case["outputs"]["serving_default"]["predictions"]
    close(predictions, case["model"](case["x"], training=False), name)


@pytest.mark.parametrize("name", sorted(EXPORTS))
def test_explain_matches_keras_interp_explain(exported, name):
    case = exported[name]
    model, x, out = case["model"], case["x"], case["outputs"]["explain"]
    k = EXPORTS[name][3].get("top_k", 1)
    logits_all = np.asarray(expose(model, arguments=[])(x)[0])
    classes = out["classes"]
    assert classes.shape == (len(x), k) and classes.dtype == np.int32
    np.testing.assert_array_equal(classes, np.argsort(-logits_all, axis=1)[:, :k])
    rows = np.arange(len(x))[:, None]
    close(out["logits"], logits_all[rows, classes], f"{name} logits")
    expected = np.asarray(tf.nn.softmax(logits_all))
    if _softmax_head(name):
        expected = np.asarray(model(x, training=False))  # the model's own outputs
    close(out["probabilities"], expected[rows, classes], f"{name} probabilities")
    for spec in case["specs"]:
        key = serving.output_name(spec)
        logits, maps = helpers.reference(model, spec, x, classes, {})
        assert out[key].shape == (len(x), 12, 12, k), key
        assert np.abs(out[key]).max() > 0, f"{name} {spec}: all-zero maps"
        close(out[key], maps, f"{name} {spec} maps")
        if spec.startswith(("smooth", "tta", "upsampled_activation")):
            continue  # averages over perturbed copies; channel means
        squashed = _softmax_head(name) and not methods.needs_exposed(spec)
        ours = out["probabilities"] if squashed else out["logits"]
        close(ours, logits, f"{name} {spec} logits")


@pytest.mark.parametrize("name", ["k3_nested", "tfk_nested"])
def test_explain_classes_explains_the_given_classes(exported, name):
    case = exported[name]
    out = case["outputs"]["explain_classes"]
    np.testing.assert_array_equal(out["classes"], case["given"])
    for spec in case["specs"][:2]:
        _, maps = helpers.reference(case["model"], spec, case["x"], case["given"], {})
        close(out[serving.output_name(spec)], maps, f"{name} {spec} given classes")


def _convolutions(directory, signature: str) -> int:
    """Conv2D ops `signature` runs, read from `saved_model.pb` (each call of
    a function counted), without loading the SavedModel."""
    from tensorflow.core.protobuf import saved_model_pb2

    saved = saved_model_pb2.SavedModel()
    saved.ParseFromString((directory / "saved_model.pb").read_bytes())
    graph = saved.meta_graphs[0].graph_def
    functions = {f.signature.name: f for f in graph.library.function}
    output = next(iter(saved.meta_graphs[0].signature_def[signature].outputs.values()))
    call = next(n for n in graph.node if n.name == output.name.split(":")[0])

    def count(name: str) -> int:
        total = 0
        for node in functions[name].node_def:
            total += node.op == "Conv2D"
            called = [node.op] if node.op in functions else []
            for value in node.attr.values():
                called += [value.func.name] if value.func.name else []
                called += [f.name for f in value.list.func]
            total += sum(count(f) for f in called if f in functions)
        return total

    return count(call.attr["f"].func.name)


@pytest.mark.parametrize("name", sorted(EXPORTS))
def test_explain_classes_costs_one_forward_pass(exported, name):
    """`explain_classes` takes its logits and probabilities from the logits a
    method computed anyway: its graph has the model's two convolutions fewer
    than `explain`'s, which runs the head once more to find the top classes;
    its outputs are the given classes' logits and probabilities."""
    case = exported[name]
    dropped = _convolutions(case["dir"], "explain") - _convolutions(
        case["dir"], "explain_classes"
    )
    assert dropped == 2
    if "explain_classes" not in case["outputs"]:
        return
    model, x, given = case["model"], case["x"], case["given"]
    out = case["outputs"]["explain_classes"]
    logits_all = np.asarray(expose(model, arguments=[])(x)[0])
    rows = np.arange(len(x))[:, None]
    close(out["logits"], logits_all[rows, given], f"{name} logits")
    expected = np.asarray(tf.nn.softmax(logits_all))
    if _softmax_head(name):
        expected = np.asarray(model(x, training=False))
    close(out["probabilities"], expected[rows, given], f"{name} probabilities")


def test_explain_images_equals_explain_on_python_prepared_images(exported):
    case = exported["k3_flat"]
    from_bytes = case["outputs"]["explain_images"]
    from_floats = case["outputs"]["explain_prepared"]
    # The decoding and resizing in the graph equal load_image's to float32
    # rounding (JPEG is decoded with INTEGER_ACCURATE, as PIL).
    assert set(from_bytes) == set(from_floats) | {"overlay_png_bytes"}
    np.testing.assert_array_equal(from_bytes["classes"], from_floats["classes"])
    for key, value in from_floats.items():
        if key != "classes":
            close(from_bytes[key], value, f"explain_images {key}", rtol=1e-3)


def test_overlay_png_bytes_decode_to_the_input_size(exported):
    case = exported["k3_flat"]
    out = case["outputs"]["explain_images"]
    first = serving.output_name(case["specs"][0])
    for row, png in enumerate(out["overlay_png_bytes"]):
        image = np.asarray(PIL.Image.open(io.BytesIO(png)))
        assert image.shape == (12, 12, 3)
        expected = python_overlay(case["prepared"][row], out[first][row, ..., 0])
        difference = np.abs(image.astype(int) - expected.astype(int))
        assert difference.max() <= 2, difference.max()  # 256-colour table


def test_signatures_returned_by_export(exported):
    signatures = exported["k3_flat"]["signatures"]
    assert set(signatures) == set(serving.SIGNATURES)
    explain = signatures["explain"]
    assert explain["inputs"] == {"images": ((None, 12, 12, 3), "float32")}
    assert explain["outputs"]["maps_gradcam"] == ((None, 12, 12, 2), "float32")
    assert signatures["explain_images"]["inputs"] == {
        "image_bytes": ((None,), "string")
    }
    text = serving.format_signatures(signatures)
    assert "output overlay_png_bytes" in " ".join(text.split())


def test_output_names():
    assert serving.output_name("smooth(gradients)") == "maps_smooth_gradients"
    assert serving.output_name("occlusion(window=(4, 4))") == (
        "maps_occlusion_window_4_4"
    )
    assert serving.output_name(methods.gradcam) == "maps_gradcam"
    with pytest.raises(ValueError, match="Received: method='\\(\\)'"):
        serving.output_name("()")


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"methods": ["gradcamm"]}, ValueError, "Did you mean gradcam"),
        ({"methods": []}, ValueError, "`methods` must not be empty"),
        ({"methods": ["gradcam", "gradcam"]}, ValueError, "output name 'maps_gradcam'"),
        ({"steps": 3}, ValueError, "takes the option\\(s\\) steps"),
        ({"top_k": 4}, ValueError, "at most the model's 3 classes"),
        ({"top_k": 0}, ValueError, "Received: top_k=0"),
        ({"image_size": 16}, ValueError, "match the model's input size \\(12, 12\\)"),
        ({"preprocessing": "keras"}, ValueError, "Received: preprocessing='keras'"),
        ({"preprocessing": (1, 0)}, ValueError, "low < high"),
        ({"resize_mode": "fit"}, ValueError, "Received: resize_mode='fit'"),
        ({"overlay": 1}, TypeError, "Received: overlay=1"),
        ({"postprocessing": 3}, TypeError, "Received: postprocessing=3"),
    ],
)
def test_bad_arguments(tmp_path, kwargs, error, message):
    model = helpers.flat_model(keras)
    with pytest.raises(error, match=message):
        serving.export(model, tmp_path / "out", **kwargs)
    assert not (tmp_path / "out").exists()


def test_models_that_are_not_classifiers_are_refused(tmp_path):
    inputs = keras.Input((12, 12, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(2, 3)(inputs))
    with pytest.raises(ValueError, match="classifier with one output"):
        serving.export(model, tmp_path / "out")
