"""The compiled modules: steering._groupscan (steering/_groupscan.c), steering._answer
(steering/_answer.c) and oca.http._serve (oca/http/_serve.c); why: docs/steering.md, "Bench", and
docs/edge.md, "Measured".

Everything else about the package is in pyproject.toml. Building needs a C compiler and the Python
headers (Debian: gcc, python3-dev); scripts/bootstrap.sh installs them when run as root.
"""

from setuptools import Extension, setup

MODULES = ("steering/_groupscan.c", "steering/_answer.c", "oca/http/_serve.c")
HEADERS = {"steering/_answer.c": ["steering/_request_head.h"]}     # rebuilt when these change too

setup(ext_modules=[Extension(src[:-2].replace("/", "."), [src], depends=HEADERS.get(src, []),
                             extra_compile_args=["-O2", "-Wall"])
                   for src in MODULES])
