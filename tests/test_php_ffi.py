"""php-ffi: PHP's FFI reads the C core's declarations from the header itself (php/ffi/Core.php).

The conformance suite grades php-ffi like every port (tests/conftest.py takes it from the
registry); these check what is particular to it: the header as FFI::cdef takes it, and that only
the hosts which cannot run their own handlers inside al_server_run install the core's C ones.
"""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from acceptloop.paths import ROOT

PHP = shutil.which("php")
HEADER = ROOT / "cext" / "acceptloop.h"
LIBRARY = ROOT / "build" / "libacceptloop.so"
assert PHP is not None, "make php installs php-cli (make test does)"


def php(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Runs `code` with php/ffi's classes loaded and FFI allowed, as php-ffi's command does."""
    prelude = f"require '{ROOT}/php/ffi/Libc.php'; require '{ROOT}/php/ffi/Core.php';"
    return subprocess.run([PHP, "-d", "ffi.enable=1", "-r", prelude + code, "--", *args],
                          capture_output=True, text=True, timeout=30)


def test_the_header_constants_reach_php_as_cffi_sees_them():
    assert LIBRARY.exists(), "make lib builds build/libacceptloop.so (make test does)"
    from acceptloop.cserver import lib
    out = php("$f = AcceptLoop\\Ffi\\Core::load($argv[1], $argv[2]);"
              "echo json_encode(['AL_OK' => $f->AL_OK, 'AL_ERR' => $f->AL_ERR,"
              " 'AL_ERROR_LEN' => $f->AL_ERROR_LEN, 'AL_ADDRESS_LEN' => $f->AL_ADDRESS_LEN]);",
              str(HEADER), str(LIBRARY))
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {name: getattr(lib, name) for name in json.loads(out.stdout)}


def test_the_cdef_php_gets_has_no_preprocessor_line_and_no_comment():
    out = php("echo AcceptLoop\\Ffi\\Core::declarations($argv[1], fn (string $name): bool => true);", str(HEADER))
    assert out.returncode == 0, out.stderr
    assert "enum { AL_ERROR_LEN = " in out.stdout
    assert not [line for line in out.stdout.splitlines() if line.lstrip().startswith("#")]
    assert "/*" not in out.stdout and "al_server_run(" in out.stdout


def test_a_function_the_library_lacks_is_left_out():
    out = php("echo AcceptLoop\\Ffi\\Core::declarations($argv[1], fn (string $n): bool => $n !== 'al_server_wake');",
              str(HEADER))
    assert out.returncode == 0, out.stderr
    assert "al_server_wake(" not in out.stdout and "al_server_stop(" in out.stdout


@pytest.mark.parametrize("line, words", [
    ('#define AL_NAME "text"', 'AL_NAME "text": not an integer'),
    ("#ifdef X", "a preprocessor line"),
])
def test_what_ffi_cannot_take_is_named(tmp_path: Path, line: str, words: str):
    header = tmp_path / "h.h"
    header.write_text(f"/* cdef: begin */\n#define AL_OK 0\n{line}\nint f(void);\n/* cdef: end */\n")
    out = php("try { AcceptLoop\\Ffi\\Core::declarations($argv[1], fn ($n) => true); }"
              " catch (RuntimeException $e) { echo $e->getMessage(); }", str(header))
    assert words in out.stdout, out


def test_only_the_front_ends_install_the_cores_signal_handlers():
    # Python owns its signals: its binding stops the loop from Python's handlers, never from C's.
    python = [p for p in (ROOT / "python").rglob("*.py") if "al_server_stop_on_signals" in p.read_text()]
    assert python == []
    assert "al_server_stop_on_signals" in (ROOT / "cext" / "main.c").read_text()
    assert "al_server_stop_on_signals" in (ROOT / "php" / "ffi" / "Server.php").read_text()
