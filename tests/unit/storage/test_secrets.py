"""Secrets through the real keyring API, with an in-memory backend standing in for the OS daemon."""

import pytest

from storage import secrets


def test_round_trip_under_the_ember_service(memory_keyring):
    assert secrets.available()
    secrets.set_secret("hf-token", "hf_abc")
    assert memory_keyring.store == {("ember", "hf-token"): "hf_abc"}
    assert secrets.get_secret("hf-token") == "hf_abc"
    secrets.delete_secret("hf-token")
    secrets.delete_secret("hf-token")  # deleting twice is fine
    assert secrets.get_secret("hf-token") is None


def test_environment_variable_wins(memory_keyring, monkeypatch):
    secrets.set_secret("hf-token", "from-keyring")
    monkeypatch.setenv("EMBER_SECRET_HF_TOKEN", "from-env")
    assert secrets.get_secret("hf-token") == "from-env"


def test_without_keyring_the_user_is_told_what_to_do(no_keyring, monkeypatch):
    assert not secrets.available()
    assert secrets.get_secret("api-token") is None
    with pytest.raises(secrets.SecretStoreError, match="EMBER_SECRET_API_TOKEN"):
        secrets.set_secret("api-token", "x")
    monkeypatch.setenv("EMBER_SECRET_API_TOKEN", "y")
    assert secrets.get_secret("api-token") == "y"
