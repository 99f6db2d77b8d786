"""The docs cannot drift from the code: docs/params.md documents exactly the fields of the params
dataclasses with params.yaml's values, README.md stays short and links every docs page, links
resolve, and README prose carries no dated timing (measurements belong in docs/benchmarks.md and
the benchmark result files, which name machine and date)."""

from __future__ import annotations

import dataclasses
import re
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from fragile.params import Params

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PARAMS_DOC = DOCS / "params.md"
README_MAX_LINES = 200

TABLE_HEADER = re.compile(r"^\|\s*key\s*\|\s*default\s*\|")
KEY_CELL = re.compile(r"^`([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)`$")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
DATE = re.compile(r"(?<!\d)(?:19|20)\d\d-[01]\d-[0-3]\d(?!\d)")
TIMING = re.compile(r"(?<![\w.])\d+(?:[.,]\d+)?\s?(?:ms|s|secs?|seconds?|mins?|minutes?|h|hrs?|hours?)(?!\w)")


def params_keys(cls: type = Params, prefix: str = "") -> Iterator[str]:
    """Dotted keys of every leaf field, walking nested params dataclasses (one per section)."""
    hints = typing.get_type_hints(cls)  # params.py uses postponed annotations: f.type is a string
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            yield from params_keys(hints[f.name], f"{prefix}{f.name}.")
        else:
            yield f"{prefix}{f.name}"


def documented_params() -> list[tuple[str, str, int]]:
    """(key, default cell, line number) for every row of the table headed `| key | default | ...`."""
    lines = PARAMS_DOC.read_text(encoding="utf-8").splitlines()
    start = next((i for i, line in enumerate(lines) if TABLE_HEADER.match(line)), None)
    assert start is not None, f"{PARAMS_DOC.relative_to(ROOT)} has no table headed '| key | default | meaning |'; restore it"
    rows = []
    for number, line in enumerate(lines[start + 2 :], start=start + 3):  # + 2: the header and its |---| line
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]
        key = KEY_CELL.match(cells[0])
        assert key and len(cells) >= 3, (
            f"docs/params.md line {number}: a row must be '| `section.key` | default | meaning |', one key per row; "
            f"got {line!r}"
        )
        rows.append((key.group(1), cells[1], number))
    return rows


def yaml_value(key: str) -> Any:
    node: Any = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    for part in key.split("."):
        assert isinstance(node, dict) and part in node, (
            f"params.yaml lacks `{key}`; add it with the dataclass default (tests/test_params.py checks they agree)"
        )
        node = node[part]
    return node


def same_value(documented: Any, actual: Any) -> bool:
    if isinstance(documented, bool) or isinstance(actual, bool):
        return type(documented) is type(actual) and documented == actual
    if isinstance(documented, list) and isinstance(actual, list):
        return len(documented) == len(actual) and all(map(same_value, documented, actual))
    return documented == actual  # numbers compare by value: 0 == 0.0


def anchors(path: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to '-', repeats numbered."""
    seen: dict[str, int] = {}
    found = set()
    in_code = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            in_code = not in_code
        heading = re.match(r"^#{1,6}\s+(.*?)\s*#*$", line)
        if in_code or not heading:
            continue
        slug = re.sub(r"[^\w\- ]", "", heading.group(1).lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    return found


def relative_links(path: Path) -> Iterator[tuple[int, str]]:
    in_code = False
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.startswith("```"):
            in_code = not in_code
            continue
        if in_code:
            continue
        for target in LINK.findall(line):
            if not re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto: are not checked
                yield number, target


# ---------------------------------------------------------------- (a) the params reference


def test_params_doc_has_exactly_one_row_per_params_key():
    rows = documented_params()
    documented = [key for key, _, _ in rows]
    duplicates = sorted({k for k in documented if documented.count(k) > 1})
    assert not duplicates, f"docs/params.md lists {', '.join(duplicates)} more than once; keep one row per key"
    fields = set(params_keys())
    missing = sorted(fields - set(documented))
    assert not missing, (
        "params keys missing from docs/params.md: " + ", ".join(missing) + ". Add one row per key to its table: "
        "'| `section.key` | <default, as in params.yaml> | <meaning (stages that read it)> |'"
    )
    unknown = sorted(set(documented) - fields)
    assert not unknown, (
        "docs/params.md documents keys that src/fragile/params.py does not have: " + ", ".join(unknown)
        + ". Remove or rename those rows to match the dataclass fields."
    )


def test_params_doc_defaults_equal_params_yaml():
    wrong = []
    for key, cell, number in documented_params():
        text = cell.strip("`")
        try:
            documented = yaml.safe_load(text)
        except yaml.YAMLError:
            wrong.append(f"{key} (line {number}): default {cell!r} is not a YAML value; write it as in params.yaml")
            continue
        actual = yaml_value(key)
        if not same_value(documented, actual):
            wrong.append(f"{key} (line {number}): docs say {text}, params.yaml has {actual!r}")
    assert not wrong, "docs/params.md defaults differ from params.yaml; update the default column:\n" + "\n".join(wrong)


def test_the_params_walk_sees_nested_sections_and_top_level_keys():
    keys = list(params_keys())
    assert {"seed", "epsilon", "attack.epsilons", "train.checkpoints", "analysis.layer"} <= set(keys)
    assert not any(key in {"data", "train", "attack"} for key in keys)  # sections are not keys
    assert len(keys) == len(set(keys))


# ---------------------------------------------------------------- (b) README size and links


def test_readme_is_at_most_200_lines():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, (
        f"README.md has {len(lines)} lines (limit {README_MAX_LINES}); move detail to a docs/ page and link it"
    )


def test_readme_links_every_docs_page_and_each_link_exists():
    linked = {target.split("#")[0] for _, target in relative_links(README)}
    docs_links = {t for t in linked if t.startswith("docs/")}
    broken = sorted(t for t in docs_links if not (ROOT / t).is_file())
    assert not broken, f"README.md links to missing docs pages: {', '.join(broken)}; create them or fix the links"
    pages = {f"docs/{p.name}" for p in DOCS.glob("*.md")}
    unlinked = sorted(pages - docs_links)
    assert not unlinked, f"docs pages not linked from README.md: {', '.join(unlinked)}; add them to its Documentation list"


def test_relative_links_in_readme_and_docs_resolve_to_files_and_headings():
    broken = []
    for page in [README, *sorted(DOCS.glob("*.md"))]:
        for number, target in relative_links(page):
            file_part, _, anchor = target.partition("#")
            dest = (page.parent / file_part).resolve() if file_part else page
            where = f"{page.relative_to(ROOT)}:{number}: {target}"
            if not dest.exists():
                broken.append(f"{where} (no such file)")
            elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
                broken.append(f"{where} (no heading with that anchor in {dest.relative_to(ROOT)})")
    assert not broken, "broken links; fix the path or the #anchor (GitHub's heading slug):\n" + "\n".join(broken)


# ---------------------------------------------------------------- (c) no dated timings in the README


def test_readme_has_no_dates_or_timings():
    found = [
        f"README.md:{number}: {match.group(0)!r} in {line.strip()!r}"
        for number, line in enumerate(README.read_text(encoding="utf-8").splitlines(), start=1)
        for match in [*DATE.finditer(line), *TIMING.finditer(line)]
    ]
    assert not found, (
        "README.md carries dates or measured timings, which drift from the code: move them to docs/benchmarks.md "
        "(naming machine and date) or a benchmark result file, and link it:\n" + "\n".join(found)
    )


def test_the_date_and_timing_patterns_catch_what_they_should():
    assert DATE.search("measured 2026-12-01 on") and DATE.search("at 2026-12-01T09:50")
    assert not DATE.search("epsilon=0.02 and 3,600 / 400")
    for timing in ("2 min 48 s", "took 8.9 s", "3 min", "in 12s", "2 hours", "250 ms"):
        assert TIMING.search(timing), timing
    for text in ("2 epochs", "-j 2", "§3 set-up", "Figs. 1–4", "resnet50 ones", "epsilon=0.05,0.1", "5,000 digits"):
        assert not TIMING.search(text), text
