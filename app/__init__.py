"""Ember's composition root and entry points: CLI, desktop launcher, tray and local API."""

__version__ = "0.1.0"

# The application id: desktop entry name, icon name, tray/notification identity and autostart entry.
APP_ID = "io.ember.Ember"
