"""Similarity between two sets of maps: Spearman, SSIM, HOG (Adebayo et al.)."""

from __future__ import annotations

import numpy as np

from keras_interp._validation import check_one_of
from keras_interp.metrics._common import correlation, min_max

SIMILARITIES = ("spearman", "ssim", "hog")


def map_similarity(
    a: np.ndarray, b: np.ndarray, kind: str = "spearman", *, absolute: bool = True
) -> np.ndarray:
    """Per-image similarity `(B,)` of maps `a` and `b` `(B, H, W)`.

    `"spearman"`: rank correlation of the pixels. `"ssim"`: structural
    similarity of the min-max normalised maps (data range 1). `"hog"`: Pearson
    correlation of the maps' HOG descriptors (cells of `max(2, min(H, W) // 8)`
    pixels). With `absolute`, magnitudes are compared (signs ignored), as in
    Adebayo et al.'s main figures. A constant map against a constant map
    counts as similar (1) for SSIM and 0 for the correlations.
    """
    check_one_of(kind, SIMILARITIES, "similarity")
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    if absolute:
        a, b = np.abs(a), np.abs(b)
    if kind == "spearman":
        return correlation(a.reshape(len(a), -1), b.reshape(len(b), -1), "spearman")
    a = min_max(a.reshape(len(a), -1), constant=0.0).reshape(a.shape)
    b = min_max(b.reshape(len(b), -1), constant=0.0).reshape(b.shape)
    h, w = a.shape[1:3]
    if kind == "ssim":
        from skimage.metrics import structural_similarity

        window = min(7, h - 1 + h % 2, w - 1 + w % 2)
        return np.array(
            [
                structural_similarity(u, v, data_range=1.0, win_size=window)
                for u, v in zip(a, b)
            ]
        )
    from skimage.feature import hog

    cell = max(2, min(h, w) // 8)

    def describe(image: np.ndarray) -> np.ndarray:
        return hog(image, pixels_per_cell=(cell, cell), cells_per_block=(2, 2))

    return correlation(
        np.stack([describe(u) for u in a]), np.stack([describe(v) for v in b])
    )
