"""Secrets (Hub token, remote API keys, the local API token) in the OS keyring under the service ``ember``.

Where no keyring backend exists the user is told so plainly and may set an environment variable instead
(``EMBER_SECRET_<NAME>``, upper case, dashes as underscores).
"""

from __future__ import annotations

import os

import keyring
import keyring.errors
from keyring.backends import fail

from storage.errors import EmberError

SERVICE = "ember"


class SecretStoreError(EmberError, RuntimeError):
    """The OS keyring is missing or refused the operation."""


def env_var(name: str) -> str:
    """The environment variable that may hold secret ``name`` where no keyring exists."""
    return "EMBER_SECRET_" + name.upper().replace("-", "_")


def backend_name() -> str:
    """A readable name of the keyring backend in use (for ``ember doctor``)."""
    backend = keyring.get_keyring()
    return f"{type(backend).__module__}.{type(backend).__name__}"


def available() -> bool:
    """True when a real keyring backend is present."""
    return not isinstance(keyring.get_keyring(), fail.Keyring)


def get_secret(name: str) -> str | None:
    """The secret ``name``: from its environment variable if set, else from the keyring; None if absent."""
    value = os.environ.get(env_var(name))
    if value:
        return value
    if not available():
        return None
    try:
        return keyring.get_password(SERVICE, name)
    except keyring.errors.KeyringError as exc:
        raise SecretStoreError(f"The OS keyring could not be read ({exc}). Set {env_var(name)} instead.") from exc


def set_secret(name: str, value: str) -> None:
    """Store ``value`` as secret ``name`` in the OS keyring.

    Raises:
        SecretStoreError: no keyring backend, or it refused.
    """
    if not available():
        raise SecretStoreError(
            f"No OS keyring is available on this machine, so Ember cannot store the secret {name!r}. "
            f"Set the environment variable {env_var(name)} instead."
        )
    try:
        keyring.set_password(SERVICE, name, value)
    except keyring.errors.KeyringError as exc:
        raise SecretStoreError(f"The OS keyring refused to store {name!r} ({exc}). "
                               f"Set {env_var(name)} instead.") from exc


def delete_secret(name: str) -> None:
    """Remove secret ``name`` from the keyring (no error if it was not there)."""
    if not available():
        return
    try:
        keyring.delete_password(SERVICE, name)
    except keyring.errors.PasswordDeleteError:
        pass
