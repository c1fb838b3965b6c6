"""``ember serve``'s --host, --port and --auth/--no-auth come from the API settings' declaration."""

import argparse

import pytest

from app.cli import serve as cli_serve


@pytest.fixture
def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ember")
    cli_serve.register(p.add_subparsers())
    return p


def test_unset_flags_leave_the_settings_alone(parser):
    args = parser.parse_args(["serve"])
    assert (args.api_host, args.api_port, args.api_auth) == (None, None, None)


def test_flags_carry_the_declared_types_and_help(parser, capsys):
    args = parser.parse_args(["serve", "--host", "0.0.0.0", "--port", "0", "--no-auth"])
    assert (args.api_host, args.api_port, args.api_auth) == ("0.0.0.0", 0, False)
    with pytest.raises(SystemExit):
        parser.parse_args(["serve", "--help"])
    out = capsys.readouterr().out
    assert "--port PORT" in out and "8765" in out and "--auth, --no-auth" in out
