"""The compiled modules: steering._groupscan (steering/_groupscan.c) and steering._answer
(steering/_answer.c); why: docs/steering.md, "Bench".

Everything else about the package is in pyproject.toml. Building needs a C compiler and the Python
headers (Debian: gcc, python3-dev); scripts/bootstrap.sh installs them when run as root.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension(f"steering.{name}", [f"steering/{name}.c"], extra_compile_args=["-O2", "-Wall"])
                   for name in ("_groupscan", "_answer")])
