"""Fuzz the config loader: random documents and mutations of the demo site never escape as
anything but a clean ConfigError with located problems."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gridwatch.config import ConfigError, load_text

DEMO = (Path(__file__).resolve().parents[2] / "configs" / "demo-site.yaml").read_text()
DEMO_LINES = DEMO.splitlines()

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True),
    st.text(max_size=12), st.sampled_from(["perimeter", "inmate", "always", "22:00-06:00", "${X}", "[1,2]"]),
)
documents: st.SearchStrategy[Any] = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(
        st.sampled_from(["site", "areas", "zones", "devices", "people", "edges", "id", "kind", "polygon",
                         "grids", "central", "rules", "x"]) | st.text(max_size=6),
        children, max_size=5,
    ),
    max_leaves=25,
)


def assert_clean(text: str) -> None:
    try:
        load_text(text, "f.yaml", env={})
    except ConfigError as exc:
        assert exc.problems, "a ConfigError must list at least one problem"
        for problem in exc.problems:
            assert problem.file == "f.yaml" and problem.line >= 1 and problem.message


FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(documents)
def test_random_documents_fail_cleanly(doc: Any) -> None:
    assert_clean(yaml.safe_dump(doc, allow_unicode=True))


@FUZZ
@given(st.text(max_size=300))
def test_random_text_fails_cleanly(text: str) -> None:
    assert_clean(text)


@FUZZ
@given(
    st.lists(
        st.tuples(st.integers(0, len(DEMO_LINES) - 1), st.sampled_from(["drop", "dup", "char", "indent", "value"]),
                  st.text(min_size=1, max_size=5)),
        min_size=1, max_size=4,
    )
)
def test_mutations_of_the_demo_site_fail_cleanly(edits: list[tuple[int, str, str]]) -> None:
    lines = list(DEMO_LINES)
    for index, op, text in edits:
        index %= len(lines)
        line = lines[index]
        if op == "drop":
            del lines[index]
        elif op == "dup":
            lines.insert(index, line)
        elif op == "char" and line:
            pos = len(text) % len(line)
            lines[index] = line[:pos] + text + line[pos + 1 :]
        elif op == "indent":
            lines[index] = " " + line
        elif op == "value" and ":" in line:
            lines[index] = line.split(":", 1)[0] + ": " + text
        if not lines:
            lines = [""]
    assert_clean("\n".join(lines) + "\n")
