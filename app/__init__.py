"""Gradient Flow Lab web app: FastAPI routers, templates and static assets around the engine."""
