"""Shortcuts read the method records: one per record with `shortcut=True`, the
record's natural post-processing, the model exposed by the record's exposer."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

import keras_interp as ki
from keras_interp import filters, methods, shortcuts
from keras_interp.inspection import expose
from keras_interp.inspection.expose import is_exposed
from keras_interp.testing import models


def test_one_shortcut_per_record():
    wanted = {name for name, r in methods.RECORDS.items() if r.shortcut}
    assert set(shortcuts.SHORTCUTS) == wanted
    assert {"layer_gradients", "upsampled_activation"}.isdisjoint(wanted)
    for name in wanted:
        assert getattr(shortcuts, name) is shortcuts.SHORTCUTS[name]
        assert getattr(ki, name) is shortcuts.SHORTCUTS[name]
    assert shortcuts.saliency is shortcuts.gradients
    # Methods registered without a post-processing (other tests and doctests
    # register some in this process) have no natural post-processing.
    assert dict(shortcuts.NATURAL_POSTPROCESSING) == {
        name: r.postprocessing
        for name, r in methods.RECORDS.items()
        if r.postprocessing is not None
    }
    assert wanted <= set(shortcuts.NATURAL_POSTPROCESSING)


def test_prepare_uses_the_records_exposer():
    model = models.gap_dense()
    assert shortcuts.prepare(model, "gradients") is model
    exposed = shortcuts.prepare(model, "gradcam")
    # expose(): the logits and the input of the global pooling layer.
    assert is_exposed(exposed)
    assert [n for n, _ in exposed.endpoints] == ["logits", "gap"]
    # One exposed model per exposer, whatever the spec or wrapper.
    assert shortcuts.prepare(model, "tta(smooth(gradcampp))") is exposed
    full = shortcuts.prepare(model, methods.smooth(methods.full_gradients))
    assert full is not exposed and full is shortcuts.prepare(model, "full_gradients")
    assert shortcuts.prepare(exposed, "gradcam") is exposed


def test_shortcut_is_explain_with_the_natural_postprocessing():
    model = models.gap_dense()
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 3)).astype("float32")
    y = np.array([[0], [2]])
    logits, maps = ki.gradcam(model, x, y, resizing=False, verbose=0)
    raw_logits, raw = ki.explain(
        "gradcam", expose(model), x, y, resizing=False, verbose=0
    )
    np.testing.assert_allclose(logits, raw_logits, rtol=1e-6)
    expected = filters.positive_normalize(tf.constant(raw)).numpy()
    np.testing.assert_allclose(maps, expected, atol=1e-6)
    # Grad-CAM on GAP -> Dense is CAM / (H * W): check a number, not a shape.
    cam = ki.explain("cam", expose(model), x, y, resizing=False, verbose=0)[1]
    np.testing.assert_allclose(raw, cam / 64.0, rtol=1e-5, atol=1e-6)
