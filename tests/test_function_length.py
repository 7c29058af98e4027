"""No function in the ports is over 60 lines (issue 11) unless a comment at it says why.

The ports are read side by side (docs/design.md, the report's walkthrough), so a function does one
named step; one that cannot be split without hurting (a switch over the options, a table) says so
with the words "long because" in its leading comment or its body. The lengths are counted from the
line that starts the definition to the line that ends it, comments and blank lines included.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from acceptloop.paths import ROOT

LIMIT = 60
REASON = "long because"   # where a function may be longer: a comment at it says why
ABOVE = 12                # how many lines above a definition count as its leading comment

PORTS = {
    "C": ["cext/*.c"],
    "Python": ["python/acceptloop/server/*.py", "python/acceptloop/cserver.py", "python/acceptloop/pyhandler.py",
               "python/acceptloop/ctypes_handler.py", "python/acceptloop/handlers.py"],
    "PHP": ["php/**/*.php"],
}


def c_functions(text: str) -> list[tuple[str, int, int]]:
    """(name, first line, last line) of every function definition: a signature at column 0 whose
    body opens with `{` (alone on the next line, or after the `)`) and closes with `}` at column 0."""
    lines = text.splitlines()
    found = []
    for i, line in enumerate(lines):
        if line == "{":
            first = i - 1
            while first > 0 and (lines[first][:1] in (" ", "\t") or lines[first] == ""):
                first -= 1   # back to the signature's first line
        elif re.match(r"[A-Za-z_].*\)\s*\{\s*$", line) and not line.startswith(("typedef", "struct", "enum")):
            first = i
        else:
            continue
        m = re.search(r"(\w+)\s*\(", lines[first])
        if m is None or "=" in lines[first].split("(", 1)[0]:
            continue   # an initializer, not a function
        last = next((k for k in range(i + 1, len(lines)) if lines[k] == "}"), len(lines) - 1)
        found.append((m.group(1), first + 1, last + 1))
    return found


def python_functions(text: str) -> list[tuple[str, int, int]]:
    return [(node.name, node.lineno, node.end_lineno or node.lineno) for node in ast.walk(ast.parse(text))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))]


# What may hold a brace that is not code: heredocs and nowdocs, comments, quoted strings.
PHP_NOT_CODE = re.compile(r"<<<\s*(['\"]?)(\w+)\1\n.*?\n\s*\2\b|/\*.*?\*/|//[^\n]*|#(?!\[)[^\n]*"
                          r"|'(?:\\.|[^'\\])*'|\"(?:\\.|[^\"\\])*\"", re.S)


def php_functions(text: str) -> list[tuple[str, int, int]]:
    code = PHP_NOT_CODE.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), text)   # lines kept where they are
    found = []
    for m in re.finditer(r"\bfunction\s+(\w+)\s*\(", code):
        brace, semicolon = code.find("{", m.end()), code.find(";", m.end())
        if brace < 0 or 0 <= semicolon < brace:
            continue   # abstract or an interface's: no body
        depth = 0
        for end in range(brace, len(code)):
            depth += {"{": 1, "}": -1}.get(code[end], 0)
            if depth == 0:
                break
        found.append((m.group(1), code.count("\n", 0, m.start()) + 1, code.count("\n", 0, end) + 1))
    return found


READERS = {".c": c_functions, ".py": python_functions, ".php": php_functions}


def long_functions(path: Path, limit: int = LIMIT) -> list[str]:
    """`path:line name (N lines)` for every function of `path` over `limit` lines without a reason."""
    text = path.read_text()
    lines = text.splitlines()
    out = []
    for name, first, last in READERS[path.suffix](text):
        if last - first + 1 <= limit:
            continue
        at = "\n".join(lines[max(0, first - 1 - ABOVE):last]).lower()
        if REASON not in at:
            out.append(f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}:{first} {name} "
                       f"({last - first + 1} lines)")
    return out


def port_files(port: str) -> list[Path]:
    return sorted({p for pattern in PORTS[port] for p in ROOT.glob(pattern) if "vendor" not in p.parts})


@pytest.mark.parametrize("port", sorted(PORTS))
def test_no_function_of_a_port_is_over_60_lines_without_a_reason(port):
    files = port_files(port)
    assert files, f"no {port} sources found"
    too_long = [line for path in files for line in long_functions(path)]
    assert too_long == [], (f"over {LIMIT} lines, and no comment at it says why ('{REASON} ...'): split it "
                            f"into named steps, or say why not: " + "; ".join(too_long))


def body(n: int, indent: str, line: str) -> str:
    return "".join(f"{indent}{line}\n" for _ in range(n))


# One short and one long function (61 lines of body) per language, the long one with a comment
# before it ({why}), and what a naive reader would trip on: a multi-line signature, a brace on the
# signature's line, braces in strings, comments and a nowdoc, a function without a body.
SAMPLES = {
    "c": (".c", "static int small(void)\n{\n    return 0;\n}\n\n/* The big one.{why} */\nint big(int a,\n"
                "        int b)\n{\n" + body(61, "    ", "a += b;") + "    return a;\n}\n"),
    "c-brace-on-signature": (".c", "/* {why} */\nint big(void) {\n" + body(61, "    ", "x();") + "}\n"),
    "python": (".py", "def small():\n    return 1\n\n\n# {why}\ndef big():\n" + body(61, "    ", "x = 1")
                      + "    return x\n"),
    "php": (".php", "<?php\nabstract class A\n{\n    private const C = <<<'C'\n    int f(void) {\n    C;\n\n"
                    "    /** {why} */\n    public function big(): int\n    {\n        $s = '{';  // {\n"
                    + body(60, "        ", "$x = 1;") + "        return $x;\n    }\n\n"
                    "    abstract public function none(): void;\n}\n"),
}


@pytest.mark.parametrize("sample", sorted(SAMPLES))
def test_the_reader_finds_a_long_function_and_lets_one_be_that_says_why(tmp_path, sample):
    suffix, source = SAMPLES[sample]
    path = tmp_path / f"sample{suffix}"
    path.write_text(source.replace("{why}", ""))
    assert [name for name, *_ in READERS[suffix](path.read_text())].count("big") == 1
    [found] = long_functions(path)
    assert re.search(r":\d+ big \(6\d lines\)$", found), found
    path.write_text(source.replace("{why}", " Long because: one table, clearer whole."))
    assert long_functions(path) == []
