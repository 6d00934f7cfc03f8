"""Build the one compiled module; everything else about the package is in pyproject.toml.

``optional=True``: without a C compiler the install still succeeds and the
daemon runs its pure Python UDP loop (``cozen-responder check`` says which).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "responder.net._udploop",
            sources=["responder/net/_udploop.c"],
            extra_compile_args=["-O2", "-Wall", "-Wextra", "-Werror=implicit-function-declaration"],
            optional=True,
        )
    ]
)
