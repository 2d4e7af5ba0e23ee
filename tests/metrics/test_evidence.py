"""The known-evidence task: images, masks, determinism, a CNN that learns it."""

from __future__ import annotations

import numpy as np
import pytest

from keras_interp.testing.evidence import (
    SHAPES,
    evidence_cnn,
    evidence_images,
    shape_mask,
    train_evidence_cnn,
)


def test_images_shapes_range_and_balance():
    x, y, masks = evidence_images(12, size=32, object_size=8, distractors=2, seed=3)
    assert x.shape == (12, 32, 32, 3) and x.dtype == np.float32
    assert y.shape == (12,) and y.dtype == np.int32
    assert masks.shape == (12, 32, 32) and masks.dtype == bool
    assert 0.0 <= x.min() and x.max() <= 1.0
    assert np.bincount(y).tolist() == [4, 4, 4]
    # The mask is exactly the deciding object's shape, painted red.
    for i in range(12):
        rows, cols = np.nonzero(masks[i])
        box = masks[i, rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
        top, left = rows.min(), cols.min()
        expected = shape_mask(SHAPES[y[i]], 8)
        # The shape's bounding box may be smaller than the object's square.
        r0, c0 = np.nonzero(expected)[0].min(), np.nonzero(expected)[1].min()
        trimmed = expected[r0:, c0:][: box.shape[0], : box.shape[1]]
        np.testing.assert_array_equal(box, trimmed)
        red = x[i][masks[i]]
        assert (red[:, 0] > 0.75).all() and (red[:, 1] < 0.2).all()
        assert top >= 0 and left >= 0


def test_distractors_are_not_red_and_do_not_overlap_the_object():
    x, _, masks = evidence_images(6, size=48, object_size=10, distractors=3, seed=0)
    reddish = (x[..., 0] > 0.75) & (x[..., 1] < 0.2) & (x[..., 2] < 0.2)
    np.testing.assert_array_equal(reddish, masks)
    flat, _, _ = evidence_images(2, size=48, object_size=10, clutter=False, seed=0)
    background = flat[0][~masks[0]]
    assert np.unique(background.round(4), axis=0).shape[0] <= 4  # flat + 3 colours


def test_seeded():
    a = evidence_images(5, size=32, object_size=8, seed=7)
    b = evidence_images(5, size=32, object_size=8, seed=7)
    c = evidence_images(5, size=32, object_size=8, seed=8)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    assert not np.array_equal(a[0], c[0])


def test_errors():
    with pytest.raises(ValueError, match="num_classes"):
        evidence_images(2, num_classes=9)
    with pytest.raises(ValueError, match="do not fit"):
        evidence_images(2, size=16, object_size=12, distractors=3)
    with pytest.raises(TypeError, match="Received: n="):
        evidence_images(2.5)
    with pytest.raises(ValueError, match="object_size"):
        evidence_images(2, size=16, object_size=20)


def test_cnn_layers():
    model = evidence_cnn(32, 4)
    assert model.output_shape == (None, 4)
    assert [layer.name for layer in model.layers][-3:] == [
        "conv4",
        "avg_pool",
        "logits",
    ]


@pytest.mark.slow
def test_cnn_learns_the_object_on_held_out_images():
    x, y, _ = evidence_images(900, size=32, object_size=8, distractors=2, seed=0)
    model = train_evidence_cnn(x, y, epochs=8, seed=0)
    xt, yt, _ = evidence_images(150, size=32, object_size=8, distractors=2, seed=1)
    accuracy = (model.predict(xt, verbose=0).argmax(1) == yt).mean()
    assert accuracy >= 0.9
