"""Scoring corrections: metrics, oracles, reports and the `neko eval` command.

`GLEU_ITERATIONS` is defined here rather than in `neko.evaluate.gleu` so that the command's default
needs no numpy when the commands are registered at start-up."""

GLEU_ITERATIONS = 500
"""Reference-sampling iterations of GLEU, as JFLEG's official script."""
