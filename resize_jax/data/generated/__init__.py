"""Datasets generated locally as TFDS builders: nothing to download, deterministic.

Importing this package registers them with TFDS, so `tfds.builder("small_details")` works;
`resize_jax.data` builds them in `data_dir` on first use.

- `cluttered_digits`: a small real handwritten digit among fragments of other digits.
- `small_details`: classification decided by one-pixel dots that a 4× bilinear resize skips.
- `small_objects`: segmentation of objects a few pixels wide.
- `synthetic_ava`: AVA-format image quality; rating histograms follow the image's blur.
- `synthetic_gaze`: regression of a gaze point that only two small eyes' pupils tell.
"""

from resize_jax.data.generated.cluttered_digits import ClutteredDigits
from resize_jax.data.generated.small_details import SmallDetails
from resize_jax.data.generated.small_objects import SmallObjects
from resize_jax.data.generated.synthetic_ava import SyntheticAva
from resize_jax.data.generated.synthetic_gaze import SyntheticGaze

__all__ = ["ClutteredDigits", "SmallDetails", "SmallObjects", "SyntheticAva", "SyntheticGaze"]
