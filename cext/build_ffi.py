"""cffi build script for the C core: API mode, out-of-line.

`pip install .` runs it through setup.py (`cffi_modules=["cext/build_ffi.py:ffibuilder"]`)
and compiles `acceptloop._cserver` from the same core sources as `build/acceptloop-c`:
every cext/*.c but main.c, the standalone front end. The cdef is the public header's
(acceptloop.h) "cdef" section, read from the header itself so that the two can never
disagree. The benchmark's load generator is a module of its own (loadgen/build_ffi.py).

The same sources also build a second, separate module under AddressSanitizer and
UBSan, `_acceptloop_cserver_asan` (top level, so that it never shadows the normal
one), for the tests: `make asan-cffi` runs `--asan build/asan`, and cserver.py loads
it instead of `acceptloop._cserver` when ACCEPTLOOP_CFFI_MODULE names it (with
build/asan on PYTHONPATH and the sanitizer runtimes in LD_PRELOAD: Python itself
is not sanitized; tests/test_cserver_asan.py shows how).

    python cext/build_ffi.py                   # builds the module in the current directory, for a quick check
    python cext/build_ffi.py --asan build/asan # builds the sanitized module into build/asan
"""
from __future__ import annotations

import argparse
import os
import re
from pathlib import Path

import cffi

HERE = Path(__file__).resolve().parent

MODULE = "acceptloop._cserver"
ASAN_MODULE = "_acceptloop_cserver_asan"
SANITIZE = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-fno-sanitize-recover=all"]


def _relative(path: Path) -> str:
    """setuptools wants paths relative to the project root, where pip runs this script."""
    return os.path.relpath(path, Path.cwd())


def core_sources() -> list[Path]:
    """The core's .c files, the folder less its front end: what the Makefile's C_CORE lists too."""
    return [path for path in sorted(HERE.glob("*.c")) if path.name != "main.c"]


def public_cdef() -> str:
    """The declarations between the header's `cdef: begin` and `cdef: end` markers."""
    header = (HERE / "acceptloop.h").read_text()
    match = re.search(r"/\* cdef: begin \*/(.*?)/\* cdef: end \*/", header, re.S)
    if match is None:
        raise RuntimeError("cext/acceptloop.h has no cdef section")
    return match.group(1)


# The handler API's callbacks as cffi's API mode defines them: C calls these, and
# acceptloop.cserver's @ffi.def_extern() functions answer, taking the GIL for the
# call only (the loop runs without it). Not in the header: `extern "Python"` is cffi's.
PYTHON_CALLBACKS = """
extern "Python" int al_py_on_open(al_conn *conn, void *data);
extern "Python" int al_py_on_data(al_conn *conn, const char *bytes, size_t len, void *data);
extern "Python" int al_py_on_eof(al_conn *conn, void *data);
extern "Python" int al_py_on_writable(al_conn *conn, void *data);
extern "Python" void al_py_on_close(al_conn *conn, void *data);
"""


def make_ffibuilder(module: str = MODULE, *, sanitize: bool = False) -> cffi.FFI:
    """An FFI that builds `module` from the core; returns it.

    Without `sanitize` the paths are relative to the current directory (setuptools
    runs this from the project root); with it they are absolute, because
    FFI.compile() compiles inside its tmpdir, and the code is built with -O1 -g and
    the sanitizers, compiled and linked.
    """
    path = (lambda p: str(p)) if sanitize else _relative
    # Hidden visibility: inside a shared object every call between the core's files would
    # otherwise go through the PLT (any symbol could be interposed); the standalone binary
    # calls them directly, and c-cffi must cost nothing more while C runs.
    flags = ["-std=c11", "-D_GNU_SOURCE", "-pthread", "-Wall", "-Wextra",
             "-fvisibility=hidden", "-fno-semantic-interposition"]
    flags = (["-O1", "-g", *SANITIZE] if sanitize else ["-O2"]) + flags
    # cffi step: load the core
    builder = cffi.FFI()
    builder.cdef(public_cdef())
    builder.cdef(PYTHON_CALLBACKS)
    builder.set_source(
        module,
        '#include "acceptloop.h"',
        sources=[path(p) for p in core_sources()],
        include_dirs=[path(HERE)],
        libraries=["uring"],   # liburing (Debian's liburing-dev): the uring model, loop_uring.c
        extra_compile_args=flags,
        extra_link_args=["-pthread", *(SANITIZE if sanitize else [])],
    )
    # end cffi step
    return builder


ffibuilder = make_ffibuilder()


def main(argv: list[str] | None = None) -> int:
    """Compile the normal module into the current directory, or with --asan DIR the
    sanitized one into DIR; returns 0 (a failed compile raises)."""
    parser = argparse.ArgumentParser(prog="python cext/build_ffi.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--asan", metavar="DIR", help=f"build {ASAN_MODULE} under ASan and UBSan into DIR")
    args = parser.parse_args(argv)
    if args.asan is None:
        ffibuilder.compile(verbose=True)
    else:
        os.makedirs(args.asan, exist_ok=True)
        make_ffibuilder(ASAN_MODULE, sanitize=True).compile(tmpdir=args.asan, verbose=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
