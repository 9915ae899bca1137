"""Analytic cost model of target accelerators (targets as data, the model, KV-tier transfers)."""
from .targets import Target, get_target, TARGETS  # noqa: F401
