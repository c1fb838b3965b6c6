"""The ``ember`` command line: its subcommands, generated setting flags, the terminal chat, doctor."""
