"""The report's markdown pieces: tables, percentages with intervals, signed differences."""

from __future__ import annotations

from fragile.markdown import epsilon_label, markdown_table, pct_ci, pct_value_ci, signed_pp


def test_markdown_table_escapes_pipes():
    assert markdown_table(["a", "b"], [["|S|", 1]]) == "| a | b |\n|---|---|\n| \\|S\\| | 1 |"


def test_intervals_are_shown_in_the_unit_of_their_number():
    assert pct_ci(0.36, [0.318, 0.402]) == "36.0% [31.8, 40.2]"
    assert pct_value_ci(80.0, [71.25, 88.0]) == "80.0% [71.2, 88.0]"
    assert pct_ci(0.5, None) == "50.0%"


def test_signed_percentage_points_and_epsilon_labels():
    assert signed_pp(0.2, [0.08, 0.31]) == "+20.0 pp [+8.0, +31.0]"
    assert signed_pp(-0.05, None) == "-5.0 pp"
    assert epsilon_label(0) == "0 (clean)" and epsilon_label(0.1) == "0.1"
