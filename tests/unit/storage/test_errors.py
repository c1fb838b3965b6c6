"""One path for what a user sees of an exception: a known error's message, a bug's apology naming the log."""

import logging

import pytest

from app.logs import configure_logging
from models.errors import DiskSpaceError
from storage.errors import EmberError, log_file, user_message


def test_a_known_error_is_its_own_message(caplog):
    assert user_message(DiskSpaceError("Not enough disk space: free 2 GiB.")) == "Not enough disk space: free 2 GiB."
    assert user_message(EmberError("plain")) == "plain"
    assert not caplog.records


@pytest.mark.allow_log_warnings
def test_a_bug_is_an_apology_naming_the_log_file_and_its_traceback_is_logged(tmp_path, caplog):
    path = configure_logging(tmp_path / "logs")
    assert log_file() == str(path)
    try:
        {}["missing"]
    except KeyError as exc:
        text = user_message(exc, doing="a test")
    assert text == f"Something went wrong inside Ember (KeyError). This is a bug; the details are in {path}."
    [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert record.getMessage() == "bug while a test" and record.exc_info[0] is KeyError


def test_a_bug_already_logged_is_not_logged_again(caplog):
    text = user_message(RuntimeError("boom"), already_logged=True)
    assert "(RuntimeError)" in text and "boom" not in text
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
