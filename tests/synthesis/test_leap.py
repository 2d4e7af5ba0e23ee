"""Leap's `generate()`: behaviour on a toy task with a known answer, outputs,
logging and config errors."""

from __future__ import annotations

import json
import pathlib
import sys
import types

import keras
import numpy as np
import pytest
import tensorflow as tf
from leap_toy import BACKGROUND, NAMES, make_data, trained_model
from PIL import Image
from tensorflow.core.util import event_pb2

from keras_interp.synthesis.leap import COLUMNS, generate
from keras_interp.synthesis.leap_config import DEFAULT_CONFIG, load_config

FAST = {"max_steps": 128, "lr": 0.05, "log_freq": 32, "baseline_init": BACKGROUND}
TINY = {"max_steps": 8, "lr": 0.05, "log_freq": 4, "transform": None}


@pytest.fixture(scope="module")
def model():
    return trained_model()


@pytest.fixture(scope="module")
def prototype_run(model, tmp_path_factory):
    """Prototypes of all four classes, with isolation of the top-2 classes."""
    base = tmp_path_factory.mktemp("leap")
    config = {
        **FAST,
        "isolation": True,
        "isolation_lr": 0.1,
        "max_isolate_classes": 2,
        "leap_api_key": "ignored",
    }
    df, logs = generate(
        "toy", model, NAMES, config, target_classes=[0, 1, 2, 3], output_dir=base
    )
    return base, df, logs


def _iou(mask, region):
    pred = mask > 0.5
    union = np.logical_or(pred, region).sum()
    return np.logical_and(pred, region).sum() / max(union, 1)


# -- behaviour ------------------------------------------------------------------
def test_toy_model_is_accurate(model):
    images, labels, _, _ = make_data(300, seed=1)
    assert (model.predict(images, verbose=0).argmax(-1) == labels).mean() > 0.95


def test_prototypes_are_classified_as_their_class(prototype_run):
    base, df, _ = prototype_run
    protos = df[df.kind == "prototype"].sort_values("target")
    assert list(protos.target) == [0, 1, 2, 3]
    assert (protos.probability > 0.9).all(), protos.probability.tolist()
    assert (protos.predicted == protos.target).all()
    for path in protos.image_path:
        image = np.asarray(Image.open(base / path))
        assert image.shape == (32, 32, 3) and image.std() > 5


def test_entanglement_ranks_the_classes_built_to_share_features_first(prototype_run):
    _, df, _ = prototype_run
    tangle = df[df.kind == "entanglement"]
    assert len(tangle) == 4 * 3
    first = {
        t: g.sort_values("rank")["class"].tolist() for t, g in tangle.groupby("target")
    }
    assert first[2][0] == 3  # blue is half of blue+green
    assert first[1][0] == 3  # green is the other half
    assert set(first[3][:2]) == {1, 2}  # blue+green shares with both
    shares = tangle.groupby(["target", "prototype"]).share.sum()
    np.testing.assert_allclose(shares, 1.0, atol=1e-5)
    assert tangle[(tangle.target == 2) & (tangle["class"] == 3)].entangled.all()


def test_isolation_on_prototypes(prototype_run):
    base, df, logs = prototype_run
    iso = df[df.kind == "isolation"]
    assert len(iso) == 4 * 2 and set(iso.source) == {"prototype"}
    own = iso[iso.target == iso["class"]]
    assert len(own) == 4  # the prototype's own class is always among the top 2
    assert (own.probability > 0.5).all() and (own.mask_area < 0.6).all()
    for path in iso.image_path:
        assert np.asarray(Image.open(base / path)).shape == (32, 32, 4)
    assert set(logs["isolation"]) == set(iso.id)


def test_results_table_files_and_logs(prototype_run):
    base, df, logs = prototype_run
    assert tuple(df.columns) == COLUMNS
    assert set(df.kind) == {"prototype", "entanglement", "isolation"}
    assert df.id.is_unique
    assert all((base / p).is_file() for p in df.image_path)
    assert all(p.startswith("toy/") for p in df.image_path)
    assert (base / "toy" / "results.csv").is_file()
    assert set(logs) == {"prototype", "isolation"}
    entry = logs["prototype"]["prototype/c2/p0"]
    np.testing.assert_array_equal(entry["steps"], [32, 64, 96, 128])
    assert entry["probabilities"].shape == (4, 4)
    np.testing.assert_allclose(entry["probabilities"].sum(-1), 1.0, atol=1e-5)
    kept = df[df.id == "prototype/c2/p0"].iloc[0]  # always_update=False: the best
    best = entry["steps"][np.argmax(entry["probabilities"][:, 2])]
    assert kept.step == best


def test_tensorboard_events_are_written(prototype_run):
    base, _, _ = prototype_run
    tags = set()
    for path in (base / "toy" / "logs").iterdir():
        for record in tf.data.TFRecordDataset(str(path)):
            event = event_pb2.Event.FromString(record.numpy())
            tags.update(
                (v.tag, v.metadata.plugin_data.plugin_name) for v in event.summary.value
            )
    assert ("prototype/c0/p0", "scalars") in tags
    assert ("prototype", "images") in tags and ("isolation", "images") in tags


def test_isolation_on_samples_finds_the_squares(model, tmp_path):
    images, labels, squares, _ = make_data(6, seed=5)
    config = {
        **FAST,
        "max_steps": 150,
        "isolation_lr": 0.1,
        "isolate_classes": [[int(y)] for y in labels],
    }
    df, _ = generate(
        "samples", model, NAMES, config, samples=images, output_dir=tmp_path
    )
    assert set(df.kind) == {"isolation"} and len(df) == 6  # only isolation
    df = df.sort_values("sample")
    masks = [np.asarray(Image.open(tmp_path / p))[..., 3] / 255 for p in df.image_path]
    ious = np.array([_iou(m, s) for m, s in zip(masks, squares)])
    area = np.array([(m > 0.5).mean() for m in masks])
    fraction = squares.mean((1, 2))
    chance = area * fraction / (area + fraction - area * fraction)  # random mask
    assert ious.mean() > 0.5, ious
    assert (ious > 4 * chance).all(), (ious, chance)
    assert (df.probability > 0.5).all()


def test_samples_default_to_the_top_predicted_classes(model, tmp_path):
    images, labels, _, _ = make_data(2, seed=7)
    config = {**TINY, "max_isolate_classes": 2}
    df, _ = generate("top", model, NAMES, config, samples=images, output_dir=tmp_path)
    assert len(df) == 4
    probs = tf.nn.softmax(model(images)).numpy()
    for i in range(2):
        expected = list(np.argsort(-probs[i])[:2])
        assert df[df["sample"] == i]["class"].tolist() == expected
    df, _ = generate(
        "given",
        model,
        NAMES,
        TINY,
        target_classes=[3],
        samples=images,
        output_dir=tmp_path,
    )
    assert df["class"].tolist() == [3, 3]


def test_seeded_runs_are_bit_identical(model, tmp_path):
    config = {**TINY, "transform": "m", "seed": 3}
    runs = [
        generate("a", model, NAMES, config, [1], output_dir=tmp_path / str(i))
        for i in range(2)
    ]
    other, _ = generate(
        "a", model, NAMES, {**config, "seed": 4}, [1], output_dir=tmp_path / "other"
    )
    (df1, logs1), (df2, _) = runs
    path = df1.image_path[0]
    image = [np.asarray(Image.open(tmp_path / d / path)) for d in ("0", "1", "other")]
    np.testing.assert_array_equal(image[0], image[1])
    assert np.abs(image[0].astype(int) - image[2]).max() > 0
    assert df1.probabilities.tolist() == df2.probabilities.tolist()


def test_objective_weight_minus_one_minimises(model, tmp_path):
    config = {**TINY, "max_steps": 32, "objective_weight": -1, "always_update": True}
    df, _ = generate("min", model, NAMES, config, [0], output_dir=tmp_path)
    proto = df[df.kind == "prototype"].iloc[0]
    assert proto.probability < 0.02 and proto.step == 32


def test_channels_first_preprocessing_softmax_and_device(model, tmp_path):
    """A channels-first model taking [-1, 1] inputs and ending in a softmax."""
    inputs = keras.Input((3, 32, 32))
    x = keras.layers.Permute((2, 3, 1))(inputs)
    x = keras.layers.Rescaling(0.5, offset=0.5)(x)
    outputs = keras.layers.Softmax()(model(x))
    wrapped = keras.Model(inputs, outputs)
    config = {**FAST, "max_steps": 48, "log_freq": 48}
    df, _ = generate(
        "cf",
        wrapped,
        NAMES,
        config,
        [2],
        preprocessing=lambda images: images * 2 - 1,
        device="/CPU:0",
        output_dir=tmp_path,
    )
    proto = df[df.kind == "prototype"].iloc[0]
    assert proto.probability > 0.9
    assert np.asarray(Image.open(tmp_path / proto.image_path)).shape == (32, 32, 3)


# -- config ---------------------------------------------------------------------
def test_config_defaults_are_the_reference_documentation():
    config = load_config({})
    for key, value in {
        "alpha_weight": 0.0,
        "blur_min": 0.01,
        "blur_max": 1.0,
        "lr": 0.01,
        "isolation_lr": 0.05,
        "isolation": False,
        "max_steps": 1000,
        "max_isolate_classes": 3,
        "log_freq": 100,
        "objective_weight": 1.0,
        "input_dim": [1, 224, 224, 3],
        "channel_ix": 3,
        "baseline_init": 0.0,
        "isolation_alpha_weight": 1.0,
        "isolation_hf_weight": 1.0,
    }.items():
        assert config[key] == value, key
    assert set(DEFAULT_CONFIG) >= {
        "wandb_api_key",
        "wandb_entity",
        "leap_api_key",
        "alpha_mask",
        "alpha_only",
        "equalise",
    }
    assert load_config({"input_dim": [1, 3, 64, 64]})["channel_ix"] == 1


def test_config_from_a_json_file(model, tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**TINY, "max_steps": 6, "always_update": True}))
    df, _ = generate("json", model, NAMES, str(path), output_dir=tmp_path)
    proto = df[df.kind == "prototype"].iloc[0]
    assert proto.target == 0 and proto.step == 6  # target_classes=None: class 0


@pytest.mark.parametrize(
    "config, error, match",
    [
        (
            {"foo": 1},
            ValueError,
            r"Unknown config key\(s\) 'foo'\. "
            "Valid keys: alpha_mask, alpha_only",
        ),
        ({"find_lr_steps": 5}, ValueError, "not supported by keras_interp. Valid keys"),
        ({"lr": "0.1"}, TypeError, "`lr` must be a number"),
        ({"lr": 0}, ValueError, "`lr` must be positive"),
        ({"use_alpha": 1}, TypeError, "`use_alpha` must be True or False"),
        ({"equalise": 2.0}, ValueError, r"`equalise` must lie in \[0, 1\]"),
        ({"blur_min": 2.0}, ValueError, "`blur_min` must not exceed `blur_max`"),
        ({"seed": 0.5}, ValueError, "`seed` must be a whole number"),
        ({"max_steps": 10.0}, TypeError, "`max_steps` must be an integer"),
        ({"log_freq": 0}, ValueError, "`log_freq` must be a positive integer"),
        ({"input_dim": [224, 224]}, ValueError, "`input_dim` must be a list of 3 or 4"),
        ({"channel_ix": 0}, ValueError, "`channel_ix` must index a non-batch axis"),
        ({"transform": "huge"}, ValueError, "`transform` must be one of"),
        ({"wandb_api_key": 5}, TypeError, "`wandb_api_key` must be a string"),
        ([("lr", 0.1)], TypeError, "`config` must be a dict or the path"),
    ],
)
def test_config_errors(config, error, match):
    with pytest.raises(error, match=match):
        load_config(config)


def test_config_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_config(str(tmp_path / "missing.json"))
    (tmp_path / "bad.json").write_text("{lr: 1")
    with pytest.raises(ValueError, match="is not valid JSON"):
        load_config(tmp_path / "bad.json")
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(TypeError, match="must hold a JSON object"):
        load_config(tmp_path / "list.json")


def test_generate_argument_errors(model, tmp_path):
    def call(**kwargs):
        args = {
            "project_name": "e",
            "model": model,
            "class_list": NAMES,
            "config": TINY,
            "output_dir": tmp_path,
            **kwargs,
        }
        return generate(**args)

    with pytest.raises(ValueError, match=r"mode='pt' \(PyTorch\) is not supported"):
        call(mode="pt")
    with pytest.raises(ValueError, match="`mode` must be 'tf'"):
        call(mode="jax")
    with pytest.raises(ValueError, match="must be a relative folder name"):
        call(project_name=str(tmp_path / "abs"))
    with pytest.raises(TypeError, match="`class_list` must be a list of names"):
        call(class_list="red")
    with pytest.raises(ValueError, match="has 3 names but the model has 4"):
        call(class_list=NAMES[:3])
    with pytest.raises(ValueError, match=r"class indices in \[0, 4\)"):
        call(target_classes=[4])
    with pytest.raises(TypeError, match="`preprocessing` must be callable"):
        call(preprocessing=3)
    with pytest.raises(TypeError, match="`device` must be a device string"):
        call(device=0)
    with pytest.raises(ValueError, match="`baseline_init` must be a number"):
        call(config={**TINY, "baseline_init": "x"})
    with pytest.raises(ValueError, match="one list per target or sample"):
        call(config={**TINY, "isolation": True, "isolate_classes": [[0], [1]]})
    with pytest.raises(ValueError, match="The model failed on images of shape"):
        call(config={**TINY, "input_dim": [1, 16, 16, 5]})


# -- Weights & Biases -----------------------------------------------------------
def test_wandb_without_the_package_warns(model, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb -> ImportError
    with pytest.warns(UserWarning, match="wandb is not installed"):
        df, _ = generate(
            "wb", model, NAMES, {**TINY, "wandb_api_key": "k"}, output_dir=tmp_path
        )
    assert len(df[df.kind == "prototype"]) == 1


def test_wandb_logging_with_a_key(model, tmp_path, monkeypatch):
    calls = []
    run = types.SimpleNamespace(
        log=lambda values: calls.append(("log", values)),
        finish=lambda: calls.append(("finish",)),
    )
    fake = types.ModuleType("wandb")
    fake.login = lambda key: calls.append(("login", key))
    fake.init = lambda **kwargs: calls.append(("init", kwargs)) or run
    fake.Image = lambda path: ("image", pathlib.Path(path).is_file())
    monkeypatch.setitem(sys.modules, "wandb", fake)
    config = {**TINY, "wandb_api_key": "secret", "wandb_entity": "team"}
    generate("wb", model, NAMES, config, output_dir=tmp_path)
    assert calls[0] == ("login", "secret")
    init = calls[1][1]
    assert init["project"] == "wb" and init["entity"] == "team"
    assert "wandb_api_key" not in init["config"] and init["config"]["max_steps"] == 8
    logged = [c[1] for c in calls if c[0] == "log"]
    assert {"prototype/c0/p0", "prototype/step"} <= set(logged[0])
    assert logged[-1]["prototype/c0/p0"] == ("image", True)
    assert calls[-1] == ("finish",)
