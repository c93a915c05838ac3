"""Deprecated: `python -m resize_jax.apply` is now `python -m resize_jax.tools.apply`."""

if __name__ == "__main__":
    from resize_jax.tools.moved import run_moved_command

    run_moved_command("resize_jax.apply", "resize_jax.tools.apply")
