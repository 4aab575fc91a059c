"""Lets the webchat tests import their scripted widget (wc_support.py) under importlib mode."""
from __future__ import annotations

import sys
from pathlib import Path

HERE = str(Path(__file__).parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)
