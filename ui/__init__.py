"""PySide6 widgets and the Qt adapters that turn engine/library callbacks into queued signals.

Nothing below ``inference/``, ``models/`` or ``storage/`` imports this package.
"""
