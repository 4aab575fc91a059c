"""Causette's decision-tree flow engine (`"engine": "tree"`, flow format 1)."""
from __future__ import annotations

from gateway.hookspecs import hookimpl

from .engine import TreeEngine

__all__ = ["TreeEngine"]


@hookimpl
def register_flow_engines():
    return [TreeEngine()]
