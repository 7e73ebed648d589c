"""Numbers as words: the small helpers every view uses to build its sentences from live numbers.

Plain words first, symbols after: ``ratio_words(6e-67, "the one at the end")`` gives
"6.0×10⁻⁶⁷ of the one at the end", ``ratio_words(974112, ...)`` "9.7×10⁵ times the one at the
end". Nothing here computes maths; it only writes numbers.
"""

from __future__ import annotations

import math

SUPERSCRIPTS = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")
MINUS = "\u2212"


def power_of_ten(exponent: int) -> str:
    """'10⁻⁶⁷'."""
    return "10" + str(exponent).translate(SUPERSCRIPTS)


def sci_log10(log10: float, digits: int = 2) -> str:
    """The number whose log10 is given, without overflowing: '0.74', '6.0×10⁻⁶⁷', '1.2×10⁹⁰⁰'."""
    if math.isnan(log10):
        return "not a number"
    if math.isinf(log10):
        return "0" if log10 < 0 else "∞"
    if -3 <= log10 < 4:
        value = 10 ** log10
        return f"{value:.{max(digits, 2)}g}"
    exponent = math.floor(log10)
    mantissa = 10 ** (log10 - exponent)
    if round(mantissa, digits - 1) >= 10:
        exponent, mantissa = exponent + 1, 1.0
    return f"{mantissa:.{digits - 1}f}×{power_of_ten(exponent)}"


def sci(value: float, digits: int = 2) -> str:
    """A number as the pages write it: '0.74', '−3.1', '6.0×10⁻⁶⁷', 'not a number', '∞'."""
    if value is None or math.isnan(value):
        return "not a number"
    if value == 0:
        return "0"
    if math.isinf(value):
        return "∞" if value > 0 else f"{MINUS}∞"
    text = sci_log10(math.log10(abs(value)), digits)
    return (MINUS + text) if value < 0 else text


def ratio_words(ratio: float, of_what: str) -> str:
    """How one size compares with another, in plain words: '6.0×10⁻⁶⁷ of <of_what>', '0.74 of
    <of_what>', 'about the same as <of_what>', '9.7×10⁵ times <of_what>'."""
    if ratio is None or math.isnan(ratio):
        return f"not comparable with {of_what} (a value is 0 or not a number)"
    if ratio == 0:
        return f"exactly 0, nothing of {of_what}"
    if math.isinf(ratio):
        return f"infinitely many times {of_what}"
    if 0.99 <= ratio <= 1.01:
        return f"about the same as {of_what}"
    if ratio < 1:
        return f"{sci(ratio)} of {of_what}"
    return f"{sci(ratio)} times {of_what}"


def factor_text(factor: float) -> str:
    """A per-step factor: '×0.946', '×1.03'."""
    if factor is None or math.isnan(factor):
        return "no factor (not a number)"
    return f"×{factor:.3g}" if 1e-3 <= factor < 1e4 else f"×{sci(factor)}"


def steps_text(count: int) -> str:
    return f"{count} step{'' if count == 1 else 's'}"
