"""README measured tables generated from results CSVs: the repository's README agrees with its CSVs, and a changed value shows.

``tests/results_example/`` holds a tiny hand-written results CSV (two methods, three seeds, a
failed run, a missing value) and a README with one generated block; tests work on copies.
"""

from __future__ import annotations

import math
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from scipy import stats

from suite.cli import main
from suite.readme_tables import update

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = Path(__file__).parent / "results_example"
ACC = {"method=a": [80.0, 82.0, 78.0], "method=b": [82.0, 86.0, 84.0]}
MARKER = '<!-- results: study-example.csv metrics=acc,wer,wall_minutes paired=acc baseline="method=a" -->'


@pytest.fixture
def example(tmp_path: Path) -> Path:
    folder = tmp_path / "example"
    shutil.copytree(EXAMPLE, folder)
    return folder / "README.md"


def tables(*args: str):
    return CliRunner().invoke(main, ["readme-tables", *map(str, args)])


def pipe_table(text: str) -> list[list[str]]:
    """The cells of the pipe tables in ``text``, header first, rule lines left out."""
    lines = [line for line in text.splitlines() if line.startswith("|") and not set(line) <= set("|:- ")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]


def table_rows(readme: Path) -> list[list[str]]:
    return pipe_table(readme.read_text())[1:]


def test_the_repository_readme_tables_match_their_csvs():
    outcome = update(ROOT / "README.md", check=True)
    assert outcome.blocks >= 2, "the README's measured sections should hold generated blocks"
    assert outcome.diff == "", f"README.md is stale; run `make tables`:\n{outcome.diff}"


def test_the_example_is_up_to_date_and_a_changed_csv_value_fails_the_check(example):
    assert tables(example, "--check").exit_code == 0
    csv = example.parent / "study-example.csv"
    csv.write_text(csv.read_text().replace("example,method=b,0,FINISHED,82,", "example,method=b,0,FINISHED,92,"))
    before = example.read_text()
    stale = tables(example, "--check")
    assert stale.exit_code == 1
    removed = pipe_table("\n".join(line[1:] for line in stale.output.splitlines() if line.startswith("-|")))
    added = pipe_table("\n".join(line[1:] for line in stale.output.splitlines() if line.startswith("+|")))
    assert [row[:3] for row in removed if row[0] == "method=b"] == [["method=b", "3", "84.0 ± 2.0"]]
    assert [row[:3] for row in added if row[0] == "method=b"] == [["method=b", "3", "87.3 ± 4.2"]]
    assert example.read_text() == before  # --check changes nothing
    fixed = tables(example)
    assert fixed.exit_code == 0 and "1 results table(s) regenerated" in fixed.output
    assert tables(example, "--check").exit_code == 0
    text = example.read_text()
    assert "Not generated: this paragraph stays as it is" in text and MARKER in text
    assert "<!-- results: nothing.csv metrics=acc -->\nkept as written\n" in text  # inside fenced code: documentation


def test_cells_are_mean_std_over_finished_runs_and_the_paired_t_interval(example):
    header = pipe_table(example.read_text())[0]
    assert header == ["label", "n", "acc", "wer", "wall_minutes", "acc Δ vs method=a [95% CI]"]
    (a, b) = table_rows(example)
    assert a[:3] == ["method=a", "3", f"{statistics.mean(ACC['method=a']):.1f} ± {statistics.stdev(ACC['method=a']):.1f}"]
    assert b[1] == "3"  # the FAILED run of seed 3 is left out
    assert b[3] == f"{statistics.mean([28.0, 27.0]):.1f} ± {statistics.stdev([28.0, 27.0]):.1f} (n=2)"  # one seed lacks wer
    assert a[4] == "2.00 ± 0.10"  # wall_seconds 120, 126, 114 in minutes
    differences = [y - x for x, y in zip(ACC["method=a"], ACC["method=b"])]
    mean, sd = statistics.mean(differences), statistics.stdev(differences)
    half = stats.t.ppf(0.975, len(differences) - 1) * sd / math.sqrt(len(differences))
    assert a[5] == "baseline" and b[5] == f"{mean:+.1f} [{mean - half:+.1f}, {mean + half:+.1f}]"


def test_more_seeds_appended_to_the_csv_update_n_and_the_interval(example):
    csv = example.parent / "study-example.csv"
    line = "example,{label},{seed},FINISHED,{acc},29,120,0123456789abcdef0123456789abcdef01234567,0.1.0,r{seed},{label},x,0.001\n"
    extra = {"method=a": [81.0, 79.0], "method=b": [85.0, 83.0]}
    with csv.open("a") as handle:  # seeds 4 and 5, as a later export appends them
        for label, values in extra.items():
            for seed, acc in zip((4, 5), values):
                handle.write(line.format(label=label, seed=seed, acc=acc))
    assert tables(example).exit_code == 0
    (a, b) = table_rows(example)
    assert a[1] == b[1] == "5"  # method=b's failed seed 3 still left out
    differences = [y - x for x, y in zip(ACC["method=a"] + extra["method=a"], ACC["method=b"] + extra["method=b"])]
    mean, sd = statistics.mean(differences), statistics.stdev(differences)
    half = stats.t.ppf(0.975, len(differences) - 1) * sd / math.sqrt(len(differences))
    assert b[5] == f"{mean:+.1f} [{mean - half:+.1f}, {mean + half:+.1f}]"
    assert "5 seeds per row (seeds 0, 1, 2, 4, 5)" in example.read_text()
    assert "fewer than 5 seeds" not in example.read_text()


def test_a_block_whose_csv_does_not_exist_yet_says_so(example):
    example.write_text(example.read_text() + "\n<!-- results: results/later.csv metrics=acc -->\n<!-- /results -->\n")
    assert tables(example, "--check").exit_code == 1
    assert tables(example).exit_code == 0
    assert "(no results yet: results/later.csv does not exist; `suite export EXPERIMENT --out results/later.csv` writes it)" in (
        example.read_text()
    )
    assert tables(example, "--check").exit_code == 0


@pytest.mark.parametrize(
    ("marker", "message"),
    [
        ("study-example.csv metrics=acc colour=red", "results marker option 'colour=red'"),
        ("study-example.csv", "metrics=... is required"),
        ("study-example.csv metrics=accuracy", "no metric column 'accuracy'; it has acc, wer"),
        ("study-example.csv metrics=acc paired=wer baseline=method=a", "paired metric 'wer' is not one of metrics=acc"),
        ("study-example.csv metrics=acc baseline=method=c", "baseline 'method=c' is not a row of this table"),
        ("study-example.csv metrics=acc experiments=other", "no experiment 'other'"),
        ('study-example.csv metrics=acc baseline="method=a', "No closing quotation"),
    ],
)
def test_a_bad_marker_is_exit_2_with_one_line_naming_it(example, marker, message):
    example.write_text(example.read_text().replace(MARKER, f"<!-- results: {marker} -->"))
    before = example.read_text()
    result = tables(example)
    assert result.exit_code == 2 and message in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1 and example.read_text() == before


def test_python_dash_m_runs_the_same_command(example):
    result = subprocess.run(
        [sys.executable, "-m", "suite.cli", "readme-tables", str(example), "--check"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0 and "1 results table(s) up to date" in result.stdout, result.stderr


def test_a_csv_cell_that_is_no_number_is_exit_2_naming_file_and_column(example):
    csv = example.parent / "study-example.csv"
    csv.write_text(csv.read_text().replace("example,method=a,1,FINISHED,82,", "example,method=a,1,FINISHED,eighty,"))
    result = tables(example)
    assert result.exit_code == 2 and "study-example.csv: column 'acc'" in result.output and "eighty" in result.output


def test_a_csv_of_several_experiments_with_one_row_each_is_labelled_by_experiment(example):
    csv = example.parent / "study-example.csv"
    csv.write_text(csv.read_text().replace("example,method=a,", "model-a,method=a,").replace("example,method=b,", "model-b,method=b,"))
    example.write_text(example.read_text().replace(MARKER, "<!-- results: study-example.csv metrics=acc baseline=model-a -->"))
    assert tables(example).exit_code == 0
    header, first, second = pipe_table(example.read_text())
    assert header == ["experiment", "n", "acc", "acc Δ vs model-a [95% CI]"]
    assert first == ["model-a", "3", "80.0 ± 2.0", "baseline"] and second[:3] == ["model-b", "3", "84.0 ± 2.0"]
    assert second[3].startswith("+4.0 [")
    assert "- Δ vs model-a: mean per-seed difference" in example.read_text()  # the note names the baseline as the header does
    example.write_text(example.read_text().replace("baseline=model-a", "experiments=model-b"))
    assert tables(example).exit_code == 0
    assert [row[:2] for row in table_rows(example)] == [["method=b", "3"]]
