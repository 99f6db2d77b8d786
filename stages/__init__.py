"""Thin typer entry points, one per DVC stage: parse paths and params, call fragile, write outputs."""
