"""One table of bad inputs across every public entry point.

Each case calls a public function with one bad argument and checks that the
library raises its own error: the documented exception class (ValueError,
TypeError, or the documented `OSError` subclass), a message that names the
argument and what was received (`arg=` after `Received:`), and never a raw
TensorFlow, Keras, PIL, sklearn or protobuf exception class.
"""

from __future__ import annotations

import io
import struct
import uuid
import zlib
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import PIL.Image
import pytest

import keras_interp as ki
from keras_interp import analysis, filters, methods, synthesis, visualization
from keras_interp.concepts import CAV, TrainingImage, tcav, train_cav
from keras_interp.images import crop_to_square_and_resize, load_images, prepare_image
from keras_interp.models import FrozenGraphModel, KerasModel, load_saved_model
from keras_interp.synthesis import transforms
from keras_interp.testing.models import gap_dense

RAW_MODULES = ("tensorflow", "keras", "tf_keras", "PIL", "sklearn", "google")
NAN = float("nan")


class Case(NamedTuple):
    name: str
    call: Callable[[dict], Any]
    arg: str  # the argument the message must name, as `arg=`
    errors: tuple = (ValueError, TypeError)
    marks: tuple = ()


def _png(width: int, height: int) -> bytes:
    """A PNG whose header claims `width x height` pixels, with almost no data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 16))
        + chunk(b"IEND", b"")
    )


@pytest.fixture(scope="module")
def ctx(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("bad_inputs")
    rng = np.random.default_rng(0)
    buffer = io.BytesIO()
    PIL.Image.fromarray(rng.integers(0, 255, (16, 16, 3), np.uint8)).save(buffer, "PNG")
    files = {
        "truncated.png": buffer.getvalue()[: len(buffer.getvalue()) // 2],
        "text.png": b"this is not an image",
        "bomb.png": _png(100_000, 100_000),  # 10**10 pixels in the header
        "model.keras": b"not a keras file",
        "corrupt.cav": b"\xc1\xc1\xc1",
        "graph.pb": b"\x00\xffnot a graph",
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    (folder / "not_saved_model").mkdir()
    (folder / "not_saved_model" / "readme.txt").write_text("hello")
    (folder / "corrupt_saved_model").mkdir()
    (folder / "corrupt_saved_model" / "saved_model.pb").write_bytes(b"\x00garbage")
    model = gap_dense(size=8)
    activations = rng.random((4, 6))
    return {
        "dir": folder,
        "model": model,
        "x": rng.random((2, 8, 8, 3)).astype(np.float32),
        "y": np.array([[0], [1]]),
        "cav": CAV(uuid.uuid4(), np.ones(4), "conv"),
        "same": [TrainingImage(activations={"l": a}) for a in activations],
        "other": [TrainingImage(activations={"l": a + 1}) for a in activations],
        "render": lambda objective, **kw: synthesis.render(
            model,
            objective,
            synthesis.pixel_image((1, 8, 8, 3)),
            steps=1,
            verbose=0,
            **kw,
        ),
    }


def _nan_acts(c: dict) -> list:
    rows = np.ones((2, 6))
    rows[1, 2] = NAN
    return [TrainingImage(activations={"l": r}) for r in rows]


def _train(c: dict, **kw: Any) -> Any:
    kw.setdefault("positive_images", c["same"])
    kw.setdefault("negative_images", c["other"])
    return train_cav(model_layer="l", verbose=0, **kw)


# fmt: off
CASES = [
    # -- explain and the shortcuts (the engine; helper H2) --------------------
    Case("explain_index_past_units", lambda c: ki.explain(
        "gradients", c["model"], c["x"], np.array([[3], [0]]), verbose=0), "y"),
    Case("explain_index_2_32", lambda c: ki.explain(
        "gradients", c["model"], c["x"], np.array([[2**32], [0]]), verbose=0), "y"),
    Case("explain_index_xla", lambda c: ki.explain(
        "gradcam", c["model"], c["x"], np.array([[7], [7]]), jit_compile=True,
        verbose=0), "y"),
    Case("explain_negative_index", lambda c: ki.explain(
        "gradients", c["model"], c["x"], np.array([[-1], [0]]), verbose=0), "y"),
    Case("explain_float_index", lambda c: ki.explain(
        "gradients", c["model"], c["x"], np.array([[0.5], [0.0]]), verbose=0), "y"),
    Case("explain_unknown_option", lambda c: ki.explain(
        "gradients", c["model"], c["x"], bogus=3, verbose=0), "bogus"),
    Case("occlusion_option_typo", lambda c: ki.occlusion(
        c["model"], c["x"], windw=3), "windw"),
    Case("explain_model_none", lambda c: ki.explain(
        "gradients", None, c["x"], verbose=0), "model"),
    Case("explain_model_text_file", lambda c: ki.explain(
        "gradients", str(c["dir"] / "text.png"), c["x"], verbose=0), "model"),
    Case("explain_four_channels", lambda c: ki.explain(
        "gradients", c["model"], np.zeros((1, 8, 8, 4), np.float32), verbose=0),
        "x"),
    Case("explain_nan_images", lambda c: ki.explain(
        "gradients", c["model"], np.full((1, 8, 8, 3), NAN, np.float32),
        verbose=0), "x"),
    Case("explain_rank_3_images", lambda c: ki.explain(
        "gradients", c["model"], np.zeros((8, 8, 3), np.float32), verbose=0), "x"),
    Case("explain_batch_size_0", lambda c: ki.explain(
        "gradients", c["model"], c["x"], batch_size=0, verbose=0), "batch_size"),
    Case("explain_unknown_method", lambda c: ki.explain(
        "gradientz", c["model"], c["x"], verbose=0), "method"),
    Case("explain_bad_postprocessing", lambda c: ki.explain(
        "gradients", c["model"], c["x"], postprocessing="abc", verbose=0),
        "postprocessing"),
    Case("gradcam_model_none", lambda c: ki.gradcam(None, c["x"]), "model"),
    Case("gradcam_saved_model_path", lambda c: ki.gradcam(
        str(c["dir"] / "not_saved_model"), c["x"]), "model"),
    Case("gradcam_index_past_units", lambda c: ki.gradcam(
        c["model"], c["x"], np.array([[9], [9]])), "y"),
    # -- expose, find_layer, Target ------------------------------------------
    Case("expose_none", lambda c: ki.expose(None), "model"),
    Case("expose_unknown_layer", lambda c: ki.expose(c["model"], "nope"),
        "arguments"),
    Case("expose_target_unknown_layer", lambda c: ki.expose(
        c["model"], outputs=ki.Target("nope", reduce="mean")), "outputs.layer"),
    Case("expose_target_spatial_no_reduce", lambda c: ki.expose(
        c["model"], outputs=ki.Target("conv")), "layer"),
    Case("expose_target_position_outside", lambda c: ki.expose(
        c["model"], outputs=ki.Target("conv", position=(50, 50))), "position"),
    Case("find_layer_unknown", lambda c: ki.find_layer(c["model"], "nope"), "ref"),
    Case("find_layer_float_ref", lambda c: ki.find_layer(c["model"], 3.5), "ref"),
    Case("find_layer_model_none", lambda c: ki.find_layer(None, "conv"), "model"),
    Case("target_bad_reduce", lambda c: ki.Target(reduce="L3"), "reduce"),
    Case("target_bad_activation", lambda c: ki.Target(activation="relu"),
        "activation"),
    Case("target_short_position", lambda c: ki.Target(position=(1,)), "position"),
    Case("target_reduce_and_position", lambda c: ki.Target(
        reduce="mean", position=(1, 1)), "position"),
    # -- images ----------------------------------------------------------------
    Case("load_image_truncated", lambda c: ki.load_image(
        c["dir"] / "truncated.png"), "image"),
    Case("load_image_not_image", lambda c: ki.load_image(
        c["dir"] / "text.png"), "image"),
    Case("load_image_decompression_bomb", lambda c: ki.load_image(
        c["dir"] / "bomb.png"), "image"),
    Case("load_image_bomb_file_object", lambda c: ki.load_image(
        io.BytesIO(_png(100_000, 100_000))), "image"),
    Case("load_image_missing", lambda c: ki.load_image(c["dir"] / "no.png"),
        "image"),
    Case("load_image_float", lambda c: ki.load_image(3.5), "image"),
    Case("load_image_size_0", lambda c: ki.load_image(
        np.zeros((4, 4, 3), np.uint8), size=0), "size"),
    Case("load_image_bad_mode", lambda c: ki.load_image(
        np.zeros((4, 4, 3), np.uint8), size=2, mode="bogus"), "mode"),
    Case("load_image_rank_4", lambda c: ki.load_image(
        np.zeros((1, 4, 4, 3), np.float32)), "image"),
    Case("load_image_out_of_range", lambda c: ki.load_image(
        np.full((4, 4, 3), 7.0)), "image"),
    Case("load_image_nan", lambda c: ki.load_image(np.full((4, 4, 3), NAN)),
        "image"),
    Case("load_images_empty", lambda c: load_images([]), "images"),
    Case("crop_resize_list", lambda c: crop_to_square_and_resize([[1, 2]]),
        "array"),
    Case("prepare_image_array", lambda c: prepare_image(np.zeros((4, 4, 3))),
        "img"),
    # -- filters ----------------------------------------------------------------
    Case("normalize_rank_2", lambda c: filters.normalize(np.ones((4, 4))), "axis"),
    Case("normalize_axis_out", lambda c: filters.normalize(
        np.ones((1, 4, 4, 1)), axis=(1, 9)), "axis"),
    Case("positive_axis_text", lambda c: filters.positive(
        np.ones((1, 4, 4, 1)), axis="hw"), "axis"),
    Case("absolute_repeated_axis", lambda c: filters.absolute_normalize(
        np.ones((1, 4, 4, 1)), axis=(1, -3)), "axis"),
    Case("normalize_strings", lambda c: filters.normalize(np.array(["a"])), "x"),
    Case("compose_not_callable", lambda c: filters.compose(filters.positive, 3),
        "filters[1]"),
    # -- visualization ------------------------------------------------------------
    Case("colorize_rank_3", lambda c: visualization.colorize(np.ones((2, 2, 2))),
        "heatmap"),
    Case("overlay_alpha_2", lambda c: visualization.overlay(
        np.ones((4, 4, 3)), np.ones((4, 4)), alpha=2.0), "alpha"),
    Case("overlay_image_rank_2", lambda c: visualization.overlay(
        np.ones((4, 4)), np.ones((4, 4))), "image"),
    Case("grid_ragged_tile", lambda c: visualization.grid([[np.ones(3)]]),
        "tiles[0][0]"),
    # -- concepts -------------------------------------------------------------------
    Case("train_cav_identical", lambda c: _train(
        c, negative_images=c["same"]), "positive_images"),
    Case("train_cav_near_identical", lambda c: _train(c, negative_images=[
        TrainingImage(activations={"l": t.activations["l"] + 1e-12})
        for t in c["same"]]), "positive_images"),
    Case("train_cav_nan_activation", lambda c: _train(
        c, negative_images=_nan_acts(c)), "negative_images[1]"),
    Case("train_cav_path_string", lambda c: _train(c, positive_images="a.png"),
        "positive_images"),
    Case("train_cav_empty", lambda c: _train(c, negative_images=[]),
        "negative_images"),
    Case("train_cav_seed_and_random_state", lambda c: _train(
        c, seed=1, random_state=1), "seed"),
    Case("train_cav_model_layer_int", lambda c: train_cav(
        positive_images=c["same"], negative_images=c["other"], model_layer=5),
        "model_layer"),
    Case("training_image_negative_weight", lambda c: TrainingImage(
        np.zeros((4, 4, 3)), weight=-1.0), "weight"),
    Case("cav_bad_id", lambda c: CAV("not-a-uuid", np.ones(3), "l"), "id"),
    Case("cav_nan_vector", lambda c: CAV(uuid.uuid4(), [1.0, NAN], "l"), "vector"),
    Case("cav_load_corrupt", lambda c: CAV.load(c["dir"] / "corrupt.cav"), "path"),
    Case("cav_load_missing", lambda c: CAV.load(c["dir"] / "no.cav"), "path",
        (FileNotFoundError,)),
    Case("cav_save_missing_folder", lambda c: c["cav"].save(
        c["dir"] / "no" / "a.cav"), "path", (FileNotFoundError,)),
    Case("cav_save_unstorable_metadata", lambda c: CAV(
        uuid.uuid4(), np.ones(3), "l", {"m": object()}).save(
        c["dir"] / "m.cav"), "path"),
    Case("cav_score_wrong_length", lambda c: c["cav"].score(np.ones(5)),
        "image_or_activation"),
    Case("tcav_alpha_2", lambda c: tcav(
        c["model"], "conv", 0, c["x"], [c["x"], c["x"]], c["x"], alpha=2.0),
        "alpha"),
    Case("tcav_class_past_units", lambda c: tcav(
        c["model"], "conv", 9, c["x"], [c["x"], c["x"]], c["x"]), "class_index"),
    # -- models ---------------------------------------------------------------------
    Case("saved_model_not_saved_model", lambda c: load_saved_model(
        c["dir"] / "not_saved_model"), "handle"),
    Case("saved_model_corrupt_pb", lambda c: load_saved_model(
        c["dir"] / "corrupt_saved_model"), "handle"),
    Case("saved_model_keras_file", lambda c: load_saved_model(
        c["dir"] / "model.keras"), "handle"),
    Case("saved_model_missing", lambda c: load_saved_model(c["dir"] / "no"),
        "handle", (FileNotFoundError,)),
    Case("keras_model_none", lambda c: KerasModel(None), "keras_model"),
    Case("keras_model_bad_range", lambda c: KerasModel(
        c["model"], input_value_range=(1, 0)), "input_value_range"),
    Case("keras_model_unknown_layer", lambda c: KerasModel(c["model"]).activations(
        [np.zeros((8, 8, 3))], "nope", verbose=0), "layer_name"),
    Case("frozen_missing_file", lambda c: FrozenGraphModel(c["dir"] / "no.pb"),
        "model_path", (FileNotFoundError, ValueError)),
    Case("frozen_corrupt_file", lambda c: FrozenGraphModel(c["dir"] / "graph.pb"),
        "model_path"),
    # -- synthesis --------------------------------------------------------------
    Case("render_lr_nan", lambda c: c["render"](
        synthesis.channel("conv", 0), lr=NAN), "lr"),
    Case("render_lr_inf", lambda c: c["render"](
        synthesis.channel("conv", 0), lr=float("inf")), "lr"),
    Case("render_lr_0", lambda c: c["render"](synthesis.channel("conv", 0), lr=0),
        "lr"),
    Case("render_channel_past_width", lambda c: c["render"](
        synthesis.channel("conv", 99)), "index"),
    Case("render_neuron_past_width", lambda c: c["render"](
        synthesis.neuron("conv", 4)), "index"),
    Case("render_class_past_logits", lambda c: c["render"](
        synthesis.class_logit(3)), "index"),
    Case("render_class_list_wrong_length", lambda c: c["render"](
        synthesis.class_probability([0, 1])), "index"),
    Case("render_steps_0", lambda c: synthesis.render(
        c["model"], synthesis.channel("conv", 0), steps=0), "steps"),
    Case("render_objective_text", lambda c: synthesis.render(c["model"], "conv"),
        "objective"),
    Case("render_bad_input_range", lambda c: c["render"](
        synthesis.channel("conv", 0), input_range=(1, 0)), "input_range"),
    Case("channel_negative_index", lambda c: synthesis.channel("conv", -1),
        "index"),
    Case("channel_bad_reduce", lambda c: synthesis.channel(
        "conv", 0, reduce="median"), "reduce"),
    Case("direction_nan_vector", lambda c: synthesis.direction("conv", [NAN]),
        "vector"),
    Case("pixel_image_rank_3", lambda c: synthesis.pixel_image((8, 8, 3)),
        "shape"),
    Case("fourier_image_negative_sd", lambda c: synthesis.fourier_image(
        (1, 8, 8, 3), sd=-1.0), "sd"),
    Case("jitter_negative", lambda c: transforms.jitter(-1), "d"),
    Case("pad_bad_mode", lambda c: transforms.pad(2, mode="bogus"), "mode"),
    Case("random_scale_empty", lambda c: transforms.random_scale([]), "scales"),
    Case("blur_negative_sigma", lambda c: transforms.blur(-1.0), "sigma"),
    Case("total_variation_negative", lambda c: synthesis.total_variation(-1.0),
        "weight"),
    # -- analysis -----------------------------------------------------------------
    Case("receptive_field_unknown_layer", lambda c: (
        analysis.theoretical_receptive_field(c["model"], "nope")), "layer"),
    Case("channel_activation_past_width", lambda c: analysis.channel_activation(
        c["model"], "conv", 99, c["x"]), "channel"),
    Case("channel_activation_bad_criterion", lambda c: (
        analysis.channel_activation(c["model"], "conv", 0, c["x"],
                                    criterion="bogus")), "criterion"),
    Case("masked_image_past_width", lambda c: analysis.masked_image(
        c["model"], "conv", 99, c["x"][0]), "channel"),
    Case("gradient_rf_unit_outside", lambda c: analysis.gradient_receptive_field(
        c["model"], "conv", (50, 50)), "unit"),
    Case("empirical_rf_bad_interpolation", lambda c: (
        analysis.empirical_receptive_field(c["model"], "conv", 0, c["x"],
                                           interpolation="bogus")),
        "interpolation"),
    Case("minimal_parcel_bad_method", lambda c: analysis.minimal_parcel_image(
        c["model"], "conv", 0, c["x"][0], method="bogus"), "method"),
    # -- registry specs and wrappers -------------------------------------------
    Case("get_unknown_name", lambda c: methods.get("nope"), "spec"),
    Case("get_int", lambda c: methods.get(3), "spec"),
    Case("get_spec_bad_value", lambda c: methods.get(
        "smooth(gradients, repetitions=0)"), "repetitions"),
    Case("get_spec_option_typo", lambda c: methods.get(
        "smooth(gradients, repititions=3)"), "repititions"),
    Case("smooth_repetitions_0", lambda c: ki.smooth(
        methods.get("gradients"), repetitions=0), "repetitions"),
    Case("smooth_negative_noise", lambda c: ki.smooth(
        methods.get("gradients"), noise=-1.0), "noise"),
    Case("smooth_text_seed", lambda c: ki.smooth(
        methods.get("gradients"), seed="a"), "seed"),
    Case("smooth_not_callable", lambda c: ki.smooth(3), "method"),
    Case("tta_zero_scale", lambda c: ki.tta(
        methods.get("gradients"), scales=(0.0,)), "scales"),
    Case("tta_bad_resize_method", lambda c: ki.tta(
        methods.get("gradients"), resize_method="bogus"), "resize_method"),
]
# fmt: on


def test_table_is_large_and_unique():
    names = [case.name for case in CASES]
    assert len(set(names)) == len(names)
    assert len(CASES) >= 60


@pytest.mark.parametrize(
    "case",
    [pytest.param(case, id=case.name, marks=case.marks) for case in CASES],
)
def test_bad_input(case: Case, ctx: dict) -> None:
    with pytest.raises(Exception) as info:
        case.call(ctx)
    error = info.value
    raw = type(error).__module__.split(".")[0]
    assert raw not in RAW_MODULES, f"raw {type(error).__module__} error: {error}"
    assert isinstance(error, case.errors), f"{type(error).__name__}: {error}"
    message = str(error)
    assert "Received" in message, message
    assert f"{case.arg}=" in message.split("Received", 1)[1], message
