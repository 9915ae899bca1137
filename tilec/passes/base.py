from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class PassContext:
    """What the passes need beyond the IR: bound dims and config, and the target they compile for."""
    dims: dict = field(default_factory=dict)
    config: dict = field(default_factory=dict)
    target: str = "cpu"  # a name known to tilec.cost.targets


class Pass:
    name = "pass"

    def run(self, kernel, ctx: PassContext):
        raise NotImplementedError
