"""Adapters running the same methods with xplique and tf-keras-vis, if installed.

Each adapter is `make(model, layer_name) -> fn(x, y) -> maps` built once (so
its set-up is not timed), or raises ImportError when the library is missing.
Both libraries are optional; install them beside keras_interp with
`pip install --no-deps xplique tf-keras-vis tensorflow-probability dm-tree
deprecated einops opencv-python-headless` (their pins are older than our
TensorFlow). Both run on Keras 3 models.

tf-keras-vis 0.8.7's wheel also installs a top-level `tests` package into
site-packages, which shadows this repository's `tests` (the test modules that
import `tests.metrics...` or `tests.serving...` then fail to collect): delete
`site-packages/tests` after installing it, or benchmark from another
environment.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def _one_hot(y: np.ndarray, classes: int) -> np.ndarray:
    return np.eye(classes, dtype=np.float32)[y[:, 0]]


def xplique_adapters(settings: dict) -> dict[str, Callable]:
    """name -> make(model, layer_name) for xplique's methods."""
    import xplique.attributions as xa  # noqa: F401 - ImportError if absent

    def wrap(factory):
        def make(model, layer):
            explainer = factory(model, layer)
            classes = model.output_shape[-1]
            return lambda x, y: np.asarray(explainer.explain(x, _one_hot(y, classes)))

        return make

    n = settings["samples"]
    return {
        "gradients": wrap(lambda m, _: xa.Saliency(m, batch_size=8)),
        "gradcam": wrap(lambda m, layer: xa.GradCAM(m, conv_layer=layer, batch_size=8)),
        "gradcampp": wrap(
            lambda m, layer: xa.GradCAMPP(m, conv_layer=layer, batch_size=8)
        ),
        "input_x_gradient": wrap(lambda m, _: xa.GradientInput(m, batch_size=8)),
        "smoothgrad": wrap(
            lambda m, _: xa.SmoothGrad(m, nb_samples=n, noise=0.1, batch_size=8 * n)
        ),
        "integrated_gradients": wrap(
            lambda m, _: xa.IntegratedGradients(m, steps=n, batch_size=8 * n)
        ),
        "guided_gradients": wrap(lambda m, _: xa.GuidedBackprop(m, batch_size=8)),
        "occlusion": wrap(
            lambda m, _: xa.Occlusion(
                m,
                patch_size=settings["window"],
                patch_stride=settings["stride"],
                batch_size=64,
            )
        ),
        "rise": wrap(
            lambda m, _: xa.Rise(m, nb_samples=settings["masks"], batch_size=64)
        ),
    }


def tf_keras_vis_adapters(settings: dict) -> dict[str, Callable]:
    """name -> make(model, layer_name) for tf-keras-vis' methods."""
    from tf_keras_vis.gradcam import Gradcam
    from tf_keras_vis.gradcam_plus_plus import GradcamPlusPlus
    from tf_keras_vis.layercam import Layercam
    from tf_keras_vis.saliency import Saliency
    from tf_keras_vis.scorecam import Scorecam
    from tf_keras_vis.utils.scores import CategoricalScore

    def cam(cls, **options):
        def make(model, layer):
            explainer = cls(model, clone=False)
            return lambda x, y: np.asarray(
                explainer(
                    CategoricalScore(list(y[:, 0])),
                    x,
                    penultimate_layer=layer,
                    **options,
                )
            )

        return make

    def saliency(**options):
        def make(model, _):
            explainer = Saliency(model, clone=False)
            return lambda x, y: np.asarray(
                explainer(CategoricalScore(list(y[:, 0])), x, **options)
            )

        return make

    return {
        "gradients": saliency(),
        "smoothgrad": saliency(smooth_samples=settings["samples"], smooth_noise=0.1),
        "gradcam": cam(Gradcam),
        "gradcampp": cam(GradcamPlusPlus),
        "layercam": cam(Layercam),
        "scorecam": cam(Scorecam, max_N=settings["channels"]),
    }


def peers(settings: dict) -> dict[str, dict[str, Callable]]:
    """The installed peers: library name -> adapters."""
    found = {}
    for name, factory in (
        ("xplique", xplique_adapters),
        ("tf-keras-vis", tf_keras_vis_adapters),
    ):
        try:
            found[name] = factory(settings)
        except ImportError as error:
            print(f"# {name} not installed ({error}); skipped")
    return found
