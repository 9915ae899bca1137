"""tilec's runtime: argument checks and backend choice (args), the two-layer compile cache (cache)."""
from .cache import cache_stats, clear_memory_cache, compiled_kernel  # noqa: F401
