"""Static assets (CSS, ES modules) for Gradient Flow Lab, served under /static.

A resource package: it holds no code. The app locates it with
``importlib.resources.files("gradient_flow_lab.static")`` so it works from any working directory.
"""
