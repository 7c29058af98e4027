"""acceptloop: one TCP accept loop in Python, C (cffi) and PHP, and the kit that compares them."""
from __future__ import annotations

__version__ = "0.1.0"
