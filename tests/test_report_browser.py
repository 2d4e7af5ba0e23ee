"""The HTML report in a real browser: headless Chromium renders it, its images
load and its labels are present (the demo writes the same kind of report).

`.ci/run` installs Debian's `chromium`; elsewhere the test is skipped when no
Chromium binary is found.
"""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

import keras_interp as ki

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]


def _report(path):
    rng = np.random.default_rng(0)
    images = [rng.random((32, 32, 3)) for _ in range(2)]
    masks = [np.zeros((32, 32), bool) for _ in range(2)]
    masks[0][8:20, 8:20] = True
    masks[1][4:12, 16:28] = True
    page = ki.visualization.report("Browser check", notes=["two images"])
    page.add_table([{"method": "gradcam", "pointing game": 1.0}], heading="Scores")
    page.add_grid(
        "Grid",
        images,
        {"gradcam": rng.random((2, 8, 8)), "gradients": np.zeros((2, 32, 32))},
        row_labels=["first", "second"],
        tile_labels={"gradcam": ["hit cat p=0.91", "miss dog p=0.40"]},
        masks=masks,
        tile_size=96,
    )
    return page.save(path)


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium (.ci/run installs it)")
def test_report_renders_in_headless_chromium(tmp_path):
    page = _report(tmp_path / "report.html")
    dom = subprocess.run(
        [
            CHROMIUM,
            *FLAGS,
            f"--user-data-dir={tmp_path / 'profile-dom'}",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    for text in ("Browser check", "Scores", "pointing game", "Grid", "<img"):
        assert text in dom.stdout, text
    shot = tmp_path / "shot.png"
    result = subprocess.run(
        [
            CHROMIUM,
            *FLAGS,
            f"--user-data-dir={tmp_path / 'profile-shot'}",
            f"--screenshot={shot}",
            "--window-size=1000,900",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0 and shot.exists(), result.stderr[-2000:]
    pixels = np.asarray(Image.open(shot).convert("RGB"), np.int32)
    # The grid image loaded: a large area of saturated colour (the heat maps),
    # not only black text on white.
    saturation = pixels.max(axis=-1) - pixels.min(axis=-1)
    assert (saturation > 80).mean() > 0.02
