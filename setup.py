"""setuptools needs a setup() call for cffi_modules: `pip install` compiles the C core through cffi."""
from setuptools import setup

setup(cffi_modules=["cext/build_ffi.py:ffibuilder"])
