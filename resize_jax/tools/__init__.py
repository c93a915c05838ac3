"""Applications built on the library: the demo, the report, `apply`, figures, the model summary.

Each is a command (`python -m resize_jax.tools.demo`, ...). They need the training extra, and
the figures need matplotlib (the viz extra).
"""

from resize_jax.extras import require

require("train", "resize_jax.tools")
