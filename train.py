"""Trains a front-end + backbone from an ml_collections config.

  python train.py --config configs/default.py:frontend=learned,runlocal --workdir runs/learned

Every config field can be overridden, e.g. `--config.frontend.num_res_blocks=2`. This file
only parses flags; the run itself is `resize_jax.train.train_and_evaluate`, so tests and
notebooks call it directly.
"""

from absl import app, flags, logging
from ml_collections import config_flags

from resize_jax.train import train_and_evaluate

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints and metrics.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
    del argv  # Unused.
    logging.set_verbosity(logging.INFO)
    train_and_evaluate(_CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
    app.run(main)
