"""cffi build script for the C core: API mode, out-of-line.

`pip install .` runs it through setup.py (`cffi_modules=["cext/build_ffi.py:ffibuilder"]`)
and compiles `acceptloop._cserver` from the same core sources as `build/acceptloop-c`
(every cext/*.c except main.c, the standalone front end, and loadgen*, which is not
the server), plus the benchmark's load generator (cext/loadgen*.c), which only Python
drives. The cdef is the public header's "cdef" section, read from the header
itself so that the two can never disagree.

    python cext/build_ffi.py    # builds the module in the current directory, for a quick check
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import cffi

HERE = Path(__file__).resolve().parent


def _relative(path: Path) -> str:
    """setuptools wants paths relative to the project root, where pip runs this script."""
    return os.path.relpath(path, Path.cwd())


def core_sources() -> list[str]:
    """The core's .c files: what the Makefile's C_CORE lists too."""
    return [
        _relative(path)
        for path in sorted(HERE.glob("*.c"))
        if path.name != "main.c" and not path.name.startswith("loadgen")
    ]


def loadgen_sources() -> list[str]:
    """The load generator's .c files: in the extension, never in build/acceptloop-c."""
    return [_relative(path) for path in sorted(HERE.glob("loadgen*.c"))]


def public_cdef() -> str:
    """The declarations between the header's `cdef: begin` and `cdef: end` markers."""
    header = (HERE / "acceptloop.h").read_text()
    match = re.search(r"/\* cdef: begin \*/(.*?)/\* cdef: end \*/", header, re.S)
    if match is None:
        raise RuntimeError("cext/acceptloop.h has no cdef section")
    return match.group(1)


ffibuilder = cffi.FFI()
ffibuilder.cdef(public_cdef())
ffibuilder.set_source(
    "acceptloop._cserver",
    '#include "acceptloop.h"',
    sources=core_sources() + loadgen_sources(),
    include_dirs=[_relative(HERE)],
    # Hidden visibility: inside a shared object every call between the core's files would
    # otherwise go through the PLT (any symbol could be interposed); the standalone binary
    # calls them directly, and c-cffi must cost nothing more while C runs.
    extra_compile_args=["-O2", "-std=c11", "-D_GNU_SOURCE", "-pthread", "-Wall", "-Wextra",
                        "-fvisibility=hidden", "-fno-semantic-interposition"],
    extra_link_args=["-pthread"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
