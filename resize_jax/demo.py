"""Deprecated: `python -m resize_jax.demo` is now `python -m resize_jax.tools.demo`."""

if __name__ == "__main__":
    from resize_jax.tools.moved import run_moved_command

    run_moved_command("resize_jax.demo", "resize_jax.tools.demo")
