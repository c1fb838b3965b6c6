"""The data root and its folders are private to the user (0700 on POSIX), new or left by an older Ember."""

from __future__ import annotations

import os
import stat

import pytest

from app.paths import Paths

pytestmark = pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX; Windows profiles are private")


def test_ensure_creates_private_folders_whatever_the_umask(ember_home):
    old = os.umask(0)
    try:
        paths = Paths.from_env().ensure()
    finally:
        os.umask(old)
    for folder in (paths.home, paths.models, paths.cache, paths.logs):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder


def test_ensure_tightens_folders_an_older_ember_made_readable(ember_home):
    paths = Paths.from_env()
    for folder in (paths.home, paths.models, paths.cache, paths.logs):
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o755)
    paths.ensure()
    for folder in (paths.home, paths.models, paths.cache, paths.logs):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
