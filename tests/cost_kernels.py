"""Bound kernels the cost-model tests share (not a test module)."""
from tilec.ops import paged


def paged_split(pages_per_split, **config):
    """paged decode's split kernel for 8 sequences of up to 256 pages, Hq 32, Hkv 8, D 128, on the H200."""
    dims = {"NSEQ": 8, "HQ": 32, "HKV": 8, "D": 128, "NB": 2048, "BS": 16, "MAXB": 256,
            "NSPLIT": -(-256 // pages_per_split)}
    return paged.paged_split_kernel("bfloat16").specialize(
        dims, {"group": 4, "pages_per_split": pages_per_split, **config}, "triton", arch="h200")
