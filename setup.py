"""setuptools needs a setup() call for cffi_modules: `pip install` compiles, through cffi, the C
server's core (acceptloop._cserver) and the benchmark's load generator (acceptloop._loadgen)."""
from setuptools import setup

setup(cffi_modules=["cext/build_ffi.py:ffibuilder", "loadgen/build_ffi.py:ffibuilder"])
