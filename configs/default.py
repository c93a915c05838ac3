"""The embedded default: `small_details` at high resolution → front-end → 32×32 → small CNN.

  python train.py --config configs/default.py:frontend=learned --workdir runs/learned
  python train.py --config configs/default.py:frontend=fixed,antialias=true --workdir runs/aa
  python train.py --config configs/default.py:frontend=saliency,runlocal --workdir /tmp/sal

Arguments (comma-separated after the colon):
  frontend: fixed | learned | saliency | none (none = the backbone on the full-resolution
    input: the upper bound); method / antialias set the fixed resizer's kernel;
  task_size: the side of the network's input (default 32);
  runlocal: shrink everything to finish in about 2 minutes on a 2-core CPU.
Any field can then be overridden, e.g. `--config.frontend.num_res_blocks=2`.
"""

# The experiment is defined in the package (the demo runs it from an installed wheel).
from resize_jax.train.default_config import get_config

__all__ = ["get_config"]
