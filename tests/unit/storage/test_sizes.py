"""The one byte-size formatter."""

import pytest

from storage.sizes import GIB, MIB, format_bytes


@pytest.mark.parametrize(("n", "text"), [
    (None, "?"), (0, "0 B"), (1023, "1023 B"), (1024, "1.0 KiB"), (1536, "1.5 KiB"), (3 * MIB, "3.0 MiB"),
    (int(98.2 * MIB), "98.2 MiB"), (GIB - 1, "1.00 GiB"), (1023 * MIB, "1023.0 MiB"), (GIB, "1.00 GiB"), (6_864_449_216, "6.39 GiB"),
    (1.2 * (1 << 40), "1.20 TiB"), (16.7 * MIB, "16.7 MiB"),
])
def test_binary_units_one_decimal_under_a_gib_two_from_it(n, text):
    assert format_bytes(n) == text


def test_a_rate_given_as_float():
    assert format_bytes(1.5 * MIB) == "1.5 MiB"
