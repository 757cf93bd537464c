"""Helpers for tests and benchmarks: synthetic MIQD trees in the official layout."""
from .miqd_tree import make_miqd_tree

__all__ = ['make_miqd_tree']
