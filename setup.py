"""Thin shim so that ``python setup.py install`` keeps working; see pyproject.toml."""

from setuptools import setup

setup()
