"""Input pipelines: TFDS datasets, the user's own images, AVA ratings, generated datasets.

    from resize_jax import data
    config = data.default_config()          # name="small_details": generated locally
    info = data.get_info(config)            # task, num_classes, split sizes, image_shape
    for batch in data.train_iterator(config, batch_size=64, seed=0): ...
    for batch in data.eval_iterator(config, batch_size=64): ...  # + batch["mask"]

Batches are dicts of NumPy arrays holding *high-resolution* images (the front-end does the
downsampling), for this process's shard of the split. TensorFlow is used for the input
pipeline only and is kept off accelerators.
"""

from resize_jax.extras import require

require("train", "resize_jax.data")

from resize_jax.data.base import DatasetInfo, hide_accelerators_from_tf
from resize_jax.data.config import default_config
from resize_jax.data.pipeline import eval_iterator, get_info, train_iterator
from resize_jax.data.registry import known_names

__all__ = [
    "DatasetInfo",
    "default_config",
    "eval_iterator",
    "get_info",
    "hide_accelerators_from_tf",
    "known_names",
    "train_iterator",
]
