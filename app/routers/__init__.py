"""One router per concern: pages, health, vendored assets."""
