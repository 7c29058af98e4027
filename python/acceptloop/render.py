"""The one jinja2 Environment every generated file and report is rendered with."""
from __future__ import annotations

import base64
import json
import re
import zlib
from typing import Any

import jinja2
import markupsafe

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


def deflate_base64(data: bytes) -> str:
    """`data` deflated (zlib, level 9) and in base64: how a page stores what its script inflates
    with the browser's DecompressionStream("deflate") (report/cells.py's encode(), deflated())."""
    return base64.b64encode(zlib.compress(data, 9)).decode("ascii")


def inflate_base64(text: str) -> bytes:
    """deflate_base64()'s inverse."""
    return zlib.decompress(base64.b64decode(text))


DEFLATED_TYPE = "application/x-acceptloop-html"


def deflated(markup: str, what: str = "this part of the page") -> markupsafe.Markup:
    """`{% filter deflated("the matrix") %}…{% endfilter %}`: the block's own output (escaped as
    every other part of the page) stored deflated, in base64, in an inert
    `<script type="application/x-acceptloop-html" class="deflated">` that the page's script
    replaces with the inflated markup on load (report/script.js.j2). A table of thousands of
    rows repeats the same markup in every one; deflate takes it to a tenth or less. `what` names
    the part in the message a browser that cannot inflate it shows instead."""
    packed = deflate_base64(str(markup).encode())
    return markupsafe.Markup(f'<script type="{DEFLATED_TYPE}" class="deflated" data-what="{markupsafe.escape(what)}" '
                             f'data-bytes="{len(str(markup).encode())}">{packed}</script>')


# deflated()'s output, as unpacked_page() finds it.
DEFLATED_BLOCK = re.compile(r'<script type="application/x-acceptloop-html" class="deflated" data-what="([^"]*)" '
                            r'data-bytes="(\d+)">([A-Za-z0-9+/=]*)</script>')


def unpacked_page(html: str) -> str:
    """The page as its script makes it on load: every deflated part replaced by its markup (for
    the tests, and for anyone reading a page's tables without a browser)."""
    return DEFLATED_BLOCK.sub(lambda m: inflate_base64(m.group(3)).decode(), html)


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
    env.filters["deflated"] = deflated
    return env


def render(template: str, context: dict[str, Any]) -> str:
    """Render `template` (named after what it produces) with an explicit context."""
    return environment(autoescape=template.endswith(".html.j2")).get_template(template).render(**context)
