"""Jinja2 templates for Gradient Flow Lab.

A resource package: it holds no code. The app locates it with
``importlib.resources.files("gradient_flow_lab.templates")`` so it works from any working directory.
"""
