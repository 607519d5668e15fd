"""Image geometry rules shared by the build, the models and the test fixtures (one home for each).

``centre_square`` is the one centre-crop rule: the build's model input (``build/preprocess.py``, whose
box is stored as the json ``crop_box``), IC-GAN's instance-encoder preprocessing
(``models/icgan/encoder.py``) and the synthetic test shards (``testing/shardfactory.py``) all call it.
"""

from __future__ import annotations


def centre_square(width: int, height: int) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of the largest centred square, offsets rounded as torchvision's
    ``center_crop`` rounds them (``int(round(margin / 2))``, halves to even)."""
    side = min(width, height)
    left, top = int(round((width - side) / 2.0)), int(round((height - side) / 2.0))
    return left, top, left + side, top + side
