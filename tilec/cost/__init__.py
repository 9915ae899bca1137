"""Analytic cost model of target accelerators: targets as data (targets), IR counting (counting), the time model
(model), config choice without measurement (autotune) and KV-cache moves between memory tiers
(`tilec.cost.transfer.transfer`)."""
from .targets import Target, get_target, load_target, TARGETS  # noqa: F401
from .model import CostReport, predict  # noqa: F401
