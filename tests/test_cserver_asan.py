"""The binding's own tests (tests/test_cserver.py) over the C core built under
AddressSanitizer and UBSan: `make asan-cffi` builds `_acceptloop_cserver_asan` into
build/asan, and acceptloop.cserver loads it when ACCEPTLOOP_CFFI_MODULE names it.

Python itself is not sanitized, so the run is a subprocess with the sanitizer
runtimes preloaded; leak detection is off (CPython's own allocations are not the
core's), and any report ends the process. The run fails when a test fails, and
when any sanitizer report shows up in its output even if the tests passed.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import sysconfig
from pathlib import Path

from acceptloop.paths import BUILD, ROOT

ASAN_DIR = BUILD / "asan"
ASAN_MODULE = "_acceptloop_cserver_asan"
REPORTS = re.compile(r"ERROR: AddressSanitizer|runtime error:|SUMMARY: \w*Sanitizer|ERROR: \w*Sanitizer")


def _runtime(name: str) -> str:
    """The path of a sanitizer runtime of the compiler that built the module (setuptools's:
    $CC, else Python's own CC), as `-print-file-name` gives it."""
    compiler = (os.environ.get("CC") or sysconfig.get_config_var("CC") or "gcc").split()[0]
    path = subprocess.run([compiler, f"-print-file-name={name}"], capture_output=True, text=True,
                          check=True).stdout.strip()
    assert Path(path).is_absolute() and Path(path).exists(), (
        f"{compiler} has no {name} (on Debian it comes with gcc: libasan8, libubsan1)")
    return path


def _sanitized_env() -> dict[str, str]:
    preload = " ".join([_runtime("libasan.so"), _runtime("libubsan.so"), os.environ.get("LD_PRELOAD", "")]).strip()
    return {
        **os.environ,
        "LD_PRELOAD": preload,
        "ASAN_OPTIONS": "detect_leaks=0:halt_on_error=1",
        "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1",
        "PYTHONPATH": os.pathsep.join(p for p in (str(ASAN_DIR), os.environ.get("PYTHONPATH", "")) if p),
        "ACCEPTLOOP_CFFI_MODULE": ASAN_MODULE,
    }


def test_the_sanitized_extension_exists():
    assert list(ASAN_DIR.glob(f"{ASAN_MODULE}.*.so")), "make asan-cffi builds it; make test depends on it"


def test_the_sanitized_run_loads_the_sanitized_module():
    out = subprocess.run([sys.executable, "-c", "import acceptloop.cserver as c; print(c.lib.__name__)"],
                         env=_sanitized_env(), capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"{ASAN_MODULE}.lib"


def test_the_binding_tests_pass_under_asan_and_ubsan():
    # --capture=sys: a sanitizer writes to descriptor 2 and then ends the process, so
    # pytest must not be capturing that descriptor into a file of its own.
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "--capture=sys", str(ROOT / "tests" / "test_cserver.py")],
        env=_sanitized_env(), capture_output=True, text=True, timeout=180, cwd=ROOT,
    )
    output = out.stdout + out.stderr
    reports = [line for line in output.splitlines() if REPORTS.search(line)]
    assert out.returncode == 0 and not reports, (
        f"exit {out.returncode}; sanitizer reports: {reports}\n{output[-6000:]}")


def test_the_python_handler_path_passes_under_asan_and_ubsan():
    # The handler API (cext/handler.c) called back through cffi's extern "Python": the
    # cffi half of tests/test_handlers.py over the sanitized core (its ctypes half loads the
    # normal shared library, so the sanitized run leaves it out).
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "--capture=sys", str(ROOT / "tests" / "test_handlers.py")],
        env=_sanitized_env(), capture_output=True, text=True, timeout=180, cwd=ROOT,
    )
    output = out.stdout + out.stderr
    reports = [line for line in output.splitlines() if REPORTS.search(line)]
    assert out.returncode == 0 and not reports, (
        f"exit {out.returncode}; sanitizer reports: {reports}\n{output[-6000:]}")
    assert re.search(r"\b[1-9][0-9]* passed", output), output[-2000:]
