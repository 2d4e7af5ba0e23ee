"""Leap's `generate()` configuration: keys, defaults and validation.

The keys and defaults are those of leap-ie's reference documentation (its
README 0.3.2 differs on a few defaults; the reference doc wins). Added from the
README: `transform` (default `'xl'`, as there) and `use_blur` (mentioned by
the `hf_weight` entry). `leap_api_key` is accepted and ignored: nothing here
needs a licence or a network.
"""

from __future__ import annotations

import json
import math
import os
import pathlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from keras_interp._validation import check_callable, received

#: Every accepted key with its default.
DEFAULT_CONFIG: dict[str, Any] = {
    "alpha_mask": False,
    "alpha_only": False,
    "alpha_weight": 0.0,
    "always_update": False,
    "baseline_init": 0.0,
    "blur_max": 1.0,
    "blur_min": 0.01,
    "channel_ix": None,
    "diversity_weight": 0.0,
    "equalise": 0.0,
    "hf_weight": 0.0,
    "input_dim": [1, 224, 224, 3],
    "isolate_classes": None,
    "isolation": False,
    "isolation_alpha_weight": 1.0,
    "isolation_hf_weight": 1.0,
    "isolation_lr": 0.05,
    "leap_api_key": None,
    "log_freq": 100,
    "lr": 0.01,
    "max_isolate_classes": 3,
    "max_steps": 1000,
    "objective_weight": 1.0,
    "seed": 0,
    "transform": "xl",
    "use_alpha": False,
    "use_blur": True,
    "wandb_api_key": None,
    "wandb_entity": None,
}

#: Keys of leap-ie's README that keras_interp does not implement.
UNSUPPORTED_KEYS = (
    "find_lr_steps",
    "max_lr",
    "min_lr",
    "num_lr_windows",
    "stop_lr_early",
    "use_baseline",
    "use_hipe",
)

_BOOLS = (
    "alpha_mask",
    "alpha_only",
    "always_update",
    "isolation",
    "use_alpha",
    "use_blur",
)
_NON_NEGATIVE = (
    "alpha_weight",
    "blur_max",
    "blur_min",
    "diversity_weight",
    "hf_weight",
    "isolation_alpha_weight",
    "isolation_hf_weight",
)
_POSITIVE = ("isolation_lr", "lr")
_COUNTS = ("log_freq", "max_isolate_classes", "max_steps")
_STRINGS = ("leap_api_key", "wandb_api_key", "wandb_entity")


def load_config(config: Any) -> dict[str, Any]:
    """Read `config` (a dict, or the path of a JSON file holding one), check
    every key and value, and return it completed with the defaults.

    Args:
        config: a mapping, or a `str`/`os.PathLike` path to a JSON object.

    Returns:
        A new dict with every key of `DEFAULT_CONFIG`; the keys the user did
        not give are listed under the extra key `"_defaulted"`.

    Raises:
        ValueError: an unknown or unsupported key, or a bad value (the message
            lists the valid keys).
        TypeError: `config` or a value of the wrong type.
        FileNotFoundError: a path that does not exist.

    Example:
        >>> load_config({"lr": 0.1})["max_steps"]
        1000
    """
    if isinstance(config, (str, os.PathLike)):
        path = os.fspath(config)
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"The config file {path!r} does not exist. {received('config', path)}"
            )
        with open(path, encoding="utf-8") as file:
            try:
                config = json.load(file)
            except json.JSONDecodeError as error:
                raise ValueError(
                    f"The config file {path!r} is not valid JSON: {error}. "
                    f"{received('config', path)}"
                ) from None
        if not isinstance(config, Mapping):
            raise TypeError(
                f"The config file {path!r} must hold a JSON object. "
                f"{received('config', config)}"
            )
    if not isinstance(config, Mapping):
        raise TypeError(
            "`config` must be a dict or the path of a JSON file. "
            f"{received('config', config)}"
        )
    _check_keys(config)
    result = {**DEFAULT_CONFIG, **config}
    result["_defaulted"] = sorted(set(DEFAULT_CONFIG) - set(config))
    for key in _BOOLS:
        if not isinstance(result[key], (bool, np.bool_)):
            raise TypeError(f"`{key}` must be True or False. {_got(key, result)}")
        result[key] = bool(result[key])
    for key in _NON_NEGATIVE + _POSITIVE + ("equalise", "objective_weight", "seed"):
        result[key] = _number(key, result)
    for key in _NON_NEGATIVE:
        if result[key] < 0:
            raise ValueError(f"`{key}` must be non-negative. {_got(key, result)}")
    for key in _POSITIVE:
        if result[key] <= 0:
            raise ValueError(f"`{key}` must be positive. {_got(key, result)}")
    if not 0 <= result["equalise"] <= 1:
        raise ValueError(f"`equalise` must lie in [0, 1]. {_got('equalise', result)}")
    if result["blur_min"] > result["blur_max"]:
        raise ValueError(
            "`blur_min` must not exceed `blur_max`. Received: "
            f"blur_min={result['blur_min']}, blur_max={result['blur_max']}"
        )
    if not float(result["seed"]).is_integer():
        raise ValueError(f"`seed` must be a whole number. {_got('seed', result)}")
    result["seed"] = int(result["seed"])
    for key in _COUNTS:
        value = result[key]
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"`{key}` must be an integer. {_got(key, result)}")
        if value < 1:
            raise ValueError(f"`{key}` must be a positive integer. {_got(key, result)}")
        result[key] = int(value)
    for key in _STRINGS:
        if result[key] is not None and not isinstance(result[key], str):
            raise TypeError(f"`{key}` must be a string or None. {_got(key, result)}")
    if result["transform"] not in (None, "s", "m", "l", "xl"):
        raise ValueError(
            "`transform` must be one of 's', 'm', 'l', 'xl' or None. "
            f"{_got('transform', result)}"
        )
    result["input_dim"] = _input_dim(result["input_dim"])
    result["channel_ix"] = _channel_ix(result["channel_ix"], result["input_dim"])
    return result


def _check_keys(config: Mapping) -> None:
    valid = ", ".join(sorted(DEFAULT_CONFIG))
    for key in config:
        if not isinstance(key, str):
            raise TypeError(f"Config keys must be strings. {received('key', key)}")
    unsupported = sorted(k for k in config if k in UNSUPPORTED_KEYS)
    if unsupported:
        raise ValueError(
            f"Config key(s) {', '.join(map(repr, unsupported))} of leap-ie are not "
            f"supported by keras_interp. Valid keys: {valid}. "
            f"Received: config keys={sorted(config)}"
        )
    unknown = sorted(k for k in config if k not in DEFAULT_CONFIG)
    if unknown:
        raise ValueError(
            f"Unknown config key(s) {', '.join(map(repr, unknown))}. Valid keys: "
            f"{valid}. Received: config keys={sorted(config)}"
        )


def _got(key: str, config: Mapping) -> str:
    return received(key, config[key])


def _number(key: str, config: Mapping) -> float:
    value = config[key]
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
        raise TypeError(f"`{key}` must be a number. {_got(key, config)}")
    if not math.isfinite(float(value)):
        raise ValueError(f"`{key}` must be finite. {_got(key, config)}")
    return float(value)


def _input_dim(value: Any) -> list[int]:
    if not isinstance(value, (list, tuple)) or len(value) not in (3, 4):
        raise ValueError(
            "`input_dim` must be a list of 3 or 4 positive integers, e.g. "
            f"[1, 224, 224, 3]. {received('input_dim', value)}"
        )
    for size in value:
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)):
            raise TypeError(
                f"`input_dim` must hold integers. {received('input_dim', value)}"
            )
        if size < 1:
            raise ValueError(
                f"`input_dim` must hold positive integers. "
                f"{received('input_dim', value)}"
            )
    return [int(size) for size in value]


def _channel_ix(value: Any, input_dim: list[int]) -> int:
    """The channel axis as a non-negative index into `input_dim`."""
    rank = len(input_dim)
    if value is None:  # automatic: the last axis unless it is too big
        first = rank - 3
        if input_dim[-1] > 4 and input_dim[first] <= 4:
            return first
        return rank - 1
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(
            f"`channel_ix` must be an integer or None. {received('channel_ix', value)}"
        )
    if not -rank <= value < rank or (rank == 4 and value % rank == 0):
        raise ValueError(
            f"`channel_ix` must index a non-batch axis of input_dim={input_dim}. "
            f"{received('channel_ix', value)}"
        )
    return int(value) % rank


def with_input_dim(config: dict, dims: Sequence[int]) -> dict:
    """`config` with `input_dim` set to `dims` (the model's declared input, or
    the samples' shape) unless the user gave it; `channel_ix` is then
    re-derived unless given too."""
    if "input_dim" not in config["_defaulted"]:
        return config
    result = dict(config, input_dim=_input_dim(list(dims)))
    if "channel_ix" in config["_defaulted"]:
        result["channel_ix"] = _channel_ix(None, result["input_dim"])
    else:
        result["channel_ix"] = _channel_ix(config["channel_ix"], result["input_dim"])
    return result


def image_layout(config: Mapping) -> tuple[int, tuple[int, int, int], int]:
    """`(per_class, (H, W, C), channels_axis)` from `input_dim` and
    `channel_ix`; `channels_axis` is the model's channel axis in a 4-D batch."""
    dims, ix = config["input_dim"], config["channel_ix"]
    batch = dims[0] if len(dims) == 4 else 1
    offset = 1 if len(dims) == 3 else 0
    spatial = [d for i, d in enumerate(dims[1 - offset :], 1 - offset) if i != ix]
    channels = dims[ix]
    axis = ix + offset
    return batch, (spatial[0], spatial[1], channels), (-1 if axis == 3 else axis)


def check_generate_args(
    project_name: Any, class_list: Any, preprocessing: Any, device: Any, mode: Any
) -> list[str]:
    """Check `generate`'s plain arguments; return the class names as strings."""
    if mode == "pt":
        raise ValueError(
            "mode='pt' (PyTorch) is not supported: keras_interp works on "
            f"TensorFlow/Keras models; pass mode='tf'. {received('mode', mode)}"
        )
    if mode != "tf":
        raise ValueError(f"`mode` must be 'tf'. {received('mode', mode)}")
    if not isinstance(project_name, str) or not project_name.strip():
        raise TypeError(
            "`project_name` must be a non-empty string. "
            f"{received('project_name', project_name)}"
        )
    if os.path.isabs(project_name) or ".." in pathlib.PurePath(project_name).parts:
        raise ValueError(
            "`project_name` must be a relative folder name inside `output_dir`. "
            f"{received('project_name', project_name)}"
        )
    if isinstance(class_list, str) or not isinstance(class_list, Sequence):
        raise TypeError(
            "`class_list` must be a list of names. "
            f"{received('class_list', class_list)}"
        )
    if preprocessing is not None:
        check_callable(preprocessing, "preprocessing")
    if device is not None and not isinstance(device, str):
        raise TypeError(
            f"`device` must be a device string or None. {received('device', device)}"
        )
    return [str(name) for name in class_list]


def declared_shape(model: Any) -> tuple | None:
    try:
        shape = tuple(model.input_shape)
    except (AttributeError, ValueError, TypeError):
        return None
    if len(shape) == 4 and all(isinstance(d, int) for d in shape[1:]):
        return shape[1:]
    return None


def class_indices(value: Any, num_classes: int, arg: str) -> list[int]:
    """A list of class indices in range (an int counts as a list of one)."""
    if value is None:
        return []
    array = np.asarray(value)
    if array.dtype.kind not in "iu" or array.ndim > 1:
        raise TypeError(
            f"`{arg}` must be a class index or a list of them. {received(arg, value)}"
        )
    array = array.reshape(-1)
    if array.size and (array.min() < 0 or array.max() >= num_classes):
        raise ValueError(
            f"`{arg}` must hold class indices in [0, {num_classes}). "
            f"{received(arg, value)}"
        )
    return [int(i) for i in array]


def prototype_options(config: Mapping) -> dict[str, Any]:
    """`class_prototypes` keyword arguments from a loaded config."""
    blur = config["use_blur"]
    return {
        "steps": config["max_steps"],
        "lr": config["lr"],
        "objective_weight": config["objective_weight"],
        "blur_max": config["blur_max"] if blur else 0.0,
        "blur_min": config["blur_min"] if blur else 0.0,
        "hf_weight": config["hf_weight"],
        "diversity_weight": config["diversity_weight"],
        "use_alpha": config["use_alpha"],
        "alpha_only": config["alpha_only"],
        "alpha_mask": config["alpha_mask"],
        "alpha_weight": config["alpha_weight"],
        "transform": config["transform"],
        "always_update": config["always_update"],
        "equalise_amount": config["equalise"],
        "seed": config["seed"],
        "log_freq": config["log_freq"],
    }


def isolation_options(config: Mapping) -> dict[str, Any]:
    """`isolate_features` keyword arguments from a loaded config."""
    return {
        "steps": config["max_steps"],
        "lr": config["isolation_lr"],
        "area_weight": config["isolation_alpha_weight"],
        "smoothness_weight": config["isolation_hf_weight"],
        "seed": config["seed"],
        "log_freq": config["log_freq"],
    }
