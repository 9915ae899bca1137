"""LLVM backend (CPU) via llvmlite."""
