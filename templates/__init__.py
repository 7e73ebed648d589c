"""Jinja2 templates for Gradient Flow Lab.

A resource package: it holds no code. The app locates it with
``importlib.resources.files("templates")`` so it works from any working directory.
"""
