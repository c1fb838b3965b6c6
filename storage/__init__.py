"""Persistence for Ember: the SQLite store, its migrations, repositories and secrets.

No Qt and no llama.cpp here: the same code serves the GUI, the API, the CLI and the tests.
"""
