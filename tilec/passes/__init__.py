"""The named passes, in the order the compiler runs them. Each is a small class with `name` and `run`."""
from .base import Pass, PassContext
from .bind import BindShapesAndConfig
from .simplify import Simplify
from .memory import PlaceMemory
from .pipeline import SoftwarePipeline
from .ranges import FoldRanges
from .verify import Verify
from .launch import PlanLaunch


def default_pipeline() -> list:
    # plan-launch reads the final loops, grid and tiles: it runs after every pass that changes them
    return [BindShapesAndConfig(), Simplify(), FoldRanges(), Verify(), SoftwarePipeline(), PlaceMemory(),
            PlanLaunch(), Verify(scheduled=True)]


def run_passes(kernel, ctx: PassContext, record=None):
    """Run the pipeline; `record(name, kernel)` sees the IR after each pass (for `tilec ir` and dumps)."""
    for p in default_pipeline():
        kernel = p.run(kernel, ctx)
        if record is not None:
            record(p.name, kernel)
    return kernel


__all__ = ["Pass", "PassContext", "BindShapesAndConfig", "Simplify", "FoldRanges", "PlaceMemory", "SoftwarePipeline", "Verify",
           "PlanLaunch", "default_pipeline", "run_passes"]
