"""Executes the README's "Task networks" example so it cannot rot."""

import jax

from tests.test_readme import _python_blocks


def test_task_networks_example_runs():
    blocks = _python_blocks("Task networks")
    assert blocks, "README has no python block under ## Task networks"
    # The example does not depend on the random generator; XLA compiles threefry (the default)
    # for every parameter shape in seconds on a CPU, "rbg" in a fraction of that.
    with jax.default_prng_impl("rbg"):
        for block in blocks:
            exec(compile(block, "README.md", "exec"), {})
