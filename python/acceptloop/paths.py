"""Where the kit's files are: the checkout the package was installed from (editable install)."""
from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROTOCOL_TOML = ROOT / "protocol.toml"
IMPLEMENTATIONS_TOML = ROOT / "implementations.toml"
TEMPLATES = ROOT / "templates"
BUILD = ROOT / "build"
REPORT = ROOT / "report"
