"""Runs one training process for the multi-process and SIGTERM tests (fake in-memory data).

python tests/train_worker.py WORKDIR NUM_STEPS [PROCESS_ID NUM_PROCESSES PORT]
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import logging

from resize_jax.train import train_and_evaluate
from tests import train_fakes


def main(argv):
    workdir, steps = argv[1], int(argv[2])
    train_fakes.install()
    config = train_fakes.tiny_config("fixed", num_train_steps=steps, checkpoint_every_steps=0)
    config.preemption_check_every_steps = 1
    if len(argv) > 3:
        process_id, num_processes, port = int(argv[3]), int(argv[4]), int(argv[5])
        config.distributed.enabled = True
        config.distributed.coordinator_address = f"127.0.0.1:{port}"
        config.distributed.num_processes = num_processes
        config.distributed.process_id = process_id
        config.distributed.cpu_collectives = "gloo"
    logging.set_verbosity(logging.INFO)
    result = train_and_evaluate(config, workdir)
    print(f"DONE preempted={result.preempted} eval_top1={result.eval_metrics.get('top1')}")


if __name__ == "__main__":
    main(sys.argv)
