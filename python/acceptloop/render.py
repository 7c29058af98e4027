"""The one jinja2 Environment every generated file and report is rendered with."""
from __future__ import annotations

import json
from typing import Any

import jinja2

from acceptloop.paths import TEMPLATES


def c_string(value: str) -> str:
    """A C string literal holding exactly `value` (ASCII)."""
    out = []
    for ch in value:
        code = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif 32 <= code < 127:
            out.append(ch)
        else:
            out.append("\\%03o" % code)
    return '"' + "".join(out) + '"'


def php_string(value: str) -> str:
    """A PHP double-quoted string literal holding exactly `value`."""
    out = []
    for ch in value:
        code = ord(ch)
        if ch in '"\\$':
            out.append("\\" + ch)
        elif 32 <= code < 127:
            out.append(ch)
        else:
            out.append("\\x%02x" % code)
    return '"' + "".join(out) + '"'


def environment(autoescape: bool) -> jinja2.Environment:
    """The Environment: HTML templates autoescape, source templates do not; blocks trim."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=autoescape,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["c_string"] = c_string
    env.filters["php_string"] = php_string
    env.filters["py_repr"] = repr
    env.filters["py_tuple"] = lambda v: repr(tuple(v))
    env.filters["json"] = lambda v: json.dumps(v, sort_keys=True)
    return env


def render(template: str, context: dict[str, Any]) -> str:
    """Render `template` (named after what it produces) with an explicit context."""
    return environment(autoescape=template.endswith(".html.j2")).get_template(template).render(**context)
