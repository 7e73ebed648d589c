"""Static assets (CSS, ES modules) for Gradient Flow Lab, served under /static.

A resource package: it holds no code. The app locates it with
``importlib.resources.files("static")`` so it works from any working directory.
"""
