"""Ember's composition root and entry points: CLI, desktop launcher, tray and local API."""

__version__ = "0.1.0"
