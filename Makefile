# acceptloop: `make compare` (the main job) and `make test` (the tests) set up everything they need.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
CC ?= gcc
CFLAGS_CORE := -std=c11 -D_GNU_SOURCE -O2 -g -Wall -Wextra -Werror -pthread
LIBS_CORE := -luring
# The C server is the folder cext/: its core (every .c but main.c, the standalone front end), and
# main.c. The load generator is the folder loadgen/, built only into its cffi module.
C_CORE := $(filter-out cext/main.c,$(wildcard cext/*.c))
C_HEADERS := $(wildcard cext/*.h)
LOADGEN := $(wildcard loadgen/*.c loadgen/*.h) loadgen/build_ffi.py

.PHONY: setup php liburing venv bytecode c lib floor asan asan-cffi chromium thirdparty mingw-wine winsock compare test clean

setup: php liburing venv bytecode c floor lib

# Debian's php-cli (with ext-sockets and pcntl) when php is absent.
php:
	@command -v php >/dev/null || { $(SUDO) apt-get update -q && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -q php-cli; }

# Debian's liburing-dev when absent: the C core's uring model (cext/loop_uring.c) links -luring,
# and the load generator's io_uring mode (loadgen/loadgen_uring.c) builds on it.
liburing:
	@{ dpkg-query -W -f='$${Status}' liburing-dev 2>/dev/null | grep -q 'ok installed'; } || \
		{ $(SUDO) apt-get update -q && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -q liburing-dev; }

# Debian's chromium when it is absent: tests/test_report.py opens the report in it, headless.
chromium:
	@command -v chromium >/dev/null || { $(SUDO) apt-get update -q && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; }

# Debian's openbsd-inetd and socat when absent: tests/test_third_party.py runs the kit against
# them (tests/fixtures/third-party.toml). The inetd the package may start as a service binds
# nothing: Debian's /etc/inetd.conf enables no service, and the fixture's own config binds
# 127.0.0.1 on the standard ports.
thirdparty:
	@{ dpkg-query -W -f='$${Status}' openbsd-inetd 2>/dev/null | grep -q 'ok installed' && command -v socat >/dev/null; } || \
		{ $(SUDO) apt-get update -q && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -q openbsd-inetd socat; }

# Debian's mingw-w64 (the posix flavour: winpthreads, so the core's pthreads build as they are)
# and Wine when absent: the C core cross-compiled against Winsock 2 and run under Wine is the
# registry's c-winsock (issue 15, docs/winsock.md).
mingw-wine:
	@{ command -v $(MINGW_CC) >/dev/null && command -v wine >/dev/null && test -x /usr/lib/wine/wine64; } || \
		{ $(SUDO) apt-get update -q && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -q gcc-mingw-w64-x86-64-posix wine64 wine; }

# The virtualenv; `pip install -e .` compiles the C core and the load generator through cffi.
venv: $(VENV)/.installed
$(VENV)/.installed: | liburing
$(VENV)/.installed: pyproject.toml setup.py cext/build_ffi.py $(wildcard cext/*.c) $(C_HEADERS) $(LOADGEN)
	@python3 -c 'import ensurepip' 2>/dev/null || { $(SUDO) apt-get update -q && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv; }
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,peers]'
	@touch $@

# The kit's and the Python servers' modules compiled to bytecode, even where PYTHONDONTWRITEBYTECODE
# is set (the project's development machines set it): else every Python server the kit starts, some
# thousands in a check, and every `acceptloop` command would compile them from source again (a tenth
# to a third of a second of CPU each for the kit, about 5 ms for a server). compileall skips what is
# up to date.
bytecode: venv
	@$(PY) -m compileall -q python/acceptloop tests/fixtures >/dev/null

# The standalone C executable.
c: build/acceptloop-c
build/acceptloop-c: $(C_CORE) cext/main.c $(C_HEADERS) | liburing
	@mkdir -p build
	$(CC) $(CFLAGS_CORE) -Icext -o $@ $(C_CORE) cext/main.c $(LIBS_CORE)

# The same core for Windows: build/acceptloop-c.exe, against Winsock 2 (WSAPoll needs Vista, 0x0600;
# WSA_FLAG_NO_HANDLE_INHERIT 7 SP1, 0x0601), linked statically so that Wine needs no mingw DLL.
# Left out: what only POSIX or only Linux has (poller_epoll.c, loop_fork.c, platform_posix.c, the
# sigaction stop signals.c; io_uring's loop_uring.c, SO_REUSEPORT's workers.c, and datagram.c),
# each refused cleanly by the Winsock build (platform_winsock.c, docs/winsock.md); platform.h says
# what differs. Then the Wine prefix under build/, made once (winsock/run uses it, WINEDEBUG=-all).
MINGW_CC := x86_64-w64-mingw32-gcc-posix
C_POSIX_ONLY := cext/poller_epoll.c cext/loop_fork.c cext/platform_posix.c cext/signals.c cext/loop_uring.c \
	cext/workers.c cext/datagram.c
C_WINSOCK := $(filter-out $(C_POSIX_ONLY),$(C_CORE))
CFLAGS_WINSOCK := -std=c11 -D_WIN32_WINNT=0x0601 -D_POSIX_THREAD_SAFE_FUNCTIONS=200112L -O2 -g -Wall -Wextra -Werror
winsock: build/acceptloop-c.exe build/wineprefix/.made
build/acceptloop-c.exe: $(C_WINSOCK) cext/main.c $(C_HEADERS) | mingw-wine
	@mkdir -p build
	$(MINGW_CC) $(CFLAGS_WINSOCK) -Icext -o $@ $(C_WINSOCK) cext/main.c -static -lws2_32
build/wineprefix/.made: | mingw-wine
	@mkdir -p build
	WINEPREFIX=$(CURDIR)/build/wineprefix WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml=" wineboot -i >build/wineboot.log 2>&1 || { cat build/wineboot.log; exit 1; }
	WINEPREFIX=$(CURDIR)/build/wineprefix wineserver -w   # until it has written the prefix's registry and gone
	@touch $@

# The C core as a shared library: ctypes (c-ctypes-handler) and PHP's FFI (php-ffi) load it.
lib: build/libacceptloop.so
build/libacceptloop.so: $(C_CORE) $(C_HEADERS) | liburing
	@mkdir -p build
	$(CC) $(CFLAGS_CORE) -fPIC -shared -Icext -o $@ $(C_CORE) $(LIBS_CORE)

# The floor (floor/floor.c): the least a Linux server can do, the benchmark's physical
# reference in every run; not a port, never graded.
floor: build/floor-server
build/floor-server: floor/floor.c
	@mkdir -p build
	$(CC) $(CFLAGS_CORE) -o $@ floor/floor.c

# The same sources under AddressSanitizer and UBSan; any report ends the process.
asan: build/acceptloop-c-asan
build/acceptloop-c-asan: $(C_CORE) cext/main.c $(C_HEADERS) | liburing
	@mkdir -p build
	$(CC) $(CFLAGS_CORE) -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all \
		-Icext -o $@ $(C_CORE) cext/main.c $(LIBS_CORE)

# The cffi extension under the same sanitizers, as a module of its own beside the normal one:
# build/asan/_acceptloop_cserver_asan.*.so, which acceptloop.cserver loads instead when
# ACCEPTLOOP_CFFI_MODULE names it (tests/test_cserver_asan.py). gcc's runtimes (libasan8,
# libubsan1) come with gcc itself on Debian.
asan-cffi: build/asan/.built
build/asan/.built: cext/build_ffi.py $(wildcard cext/*.c) $(C_HEADERS) $(VENV)/.installed
	@rm -rf build/asan && mkdir -p build
	$(PY) cext/build_ffi.py --asan build/asan >build/asan.log 2>&1 || { cat build/asan.log; exit 1; }
	@touch $@

# The matrix, the benchmark (the quick profile; FULL=1 for the full one), then the report:
# written even when a cell FAILED (check's exit 1 is kept), not when check could not run at
# all (exit 2), which would report stale results.
BENCH_PROFILE := $(if $(FULL),--full,--quick)
compare: setup winsock
	@status=0; $(VENV)/bin/acceptloop check --json results/check.json || status=$$?; \
	[ $$status -le 1 ] || exit $$status; \
	$(VENV)/bin/acceptloop bench $(BENCH_PROFILE) --json results/bench.json || status=$$?; \
	$(VENV)/bin/acceptloop report --results results/check.json --bench results/bench.json || exit $$?; \
	exit $$status

test: setup chromium thirdparty asan asan-cffi winsock
	$(VENV)/bin/python -m pytest

clean:
	rm -rf build report results $(VENV)
