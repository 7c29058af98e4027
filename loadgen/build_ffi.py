"""cffi build script for the load generator: API mode, out-of-line.

`pip install .` runs it through setup.py (beside cext/build_ffi.py, the C server's) and
compiles `acceptloop._loadgen` from every loadgen/*.c, linked with liburing when its header
is there (the io_uring mode, loadgen/loadgen_uring.c). Only the benchmark's Python side
drives it (python/acceptloop/bench/loadgen.py). The cdef is loadgen.h's "cdef" section,
read from the header itself so that the two can never disagree.

It is a module of its own, apart from the C server's `acceptloop._cserver`, because the
load generator measures every port alike: the kit never loads a port's binding to measure.

    python loadgen/build_ffi.py    # builds the module in the current directory, for a quick check
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import cffi

HERE = Path(__file__).resolve().parent

MODULE = "acceptloop._loadgen"


def _relative(path: Path) -> str:
    """setuptools wants paths relative to the project root, where pip runs this script."""
    return os.path.relpath(path, Path.cwd())


def sources() -> list[Path]:
    """The load generator's .c files: the whole folder."""
    return sorted(HERE.glob("*.c"))


def public_cdef() -> str:
    """The declarations between the header's `cdef: begin` and `cdef: end` markers."""
    header = (HERE / "loadgen.h").read_text()
    match = re.search(r"/\* cdef: begin \*/(.*?)/\* cdef: end \*/", header, re.S)
    if match is None:
        raise RuntimeError("loadgen/loadgen.h has no cdef section")
    return match.group(1)


def have_liburing() -> bool:
    """Whether liburing's header is installed (Debian's liburing-dev: `make setup` installs it).
    Without it the module is built all the same, and its io_uring mode fails to start (ENOSYS)."""
    return any(Path(d, "liburing.h").exists() for d in ("/usr/include", "/usr/local/include"))


def make_ffibuilder() -> cffi.FFI:
    """An FFI that builds the load generator's module; returns it."""
    # Hidden visibility, as for the server's module: the lg_ internals are not exported,
    # and calls between the files go direct rather than through the PLT.
    flags = ["-O2", "-std=c11", "-D_GNU_SOURCE", "-pthread", "-Wall", "-Wextra",
             "-fvisibility=hidden", "-fno-semantic-interposition"]
    libraries = []
    if have_liburing():
        flags.append("-DLG_HAVE_URING")
        libraries.append("uring")
    builder = cffi.FFI()
    builder.cdef(public_cdef())
    builder.set_source(
        MODULE,
        '#include "loadgen.h"',
        sources=[_relative(p) for p in sources()],
        include_dirs=[_relative(HERE)],
        extra_compile_args=flags,
        libraries=libraries,
        extra_link_args=["-pthread"],
    )
    return builder


ffibuilder = make_ffibuilder()


if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
