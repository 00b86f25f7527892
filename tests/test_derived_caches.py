"""Derived files carry a checksum: a damaged subset is rebuilt, a changed conversion is refused, nothing overwrites its input."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from scenarios.recsys.convert import convert_sequences
from scenarios.recsys.entries import RECBOLE
from suite.api import BuildContext
from suite.checksums import ChecksumState, checksum_file, checksum_state, write_with_checksum
from suite.errors import DataError


def _ctx(tmp_path: Path) -> BuildContext:
    return BuildContext(seed=0, cache_dir=tmp_path / "cache", run_dir=tmp_path / "run")


def _users(inter_file: Path) -> int:
    return len({line.split("\t")[0] for line in inter_file.read_text().splitlines()[1:]})


def test_checksum_states(tmp_path: Path) -> None:
    target = tmp_path / "a.bin"
    assert checksum_state(target) is ChecksumState.UNRECORDED
    write_with_checksum(target, lambda tmp: tmp.write_bytes(b"0123456789"))
    assert checksum_state(target) is ChecksumState.MATCHES and sorted(os.listdir(tmp_path)) == ["a.bin", "a.bin.xxh3"]
    target.write_bytes(b"0123456780")  # same size, one byte changed
    assert checksum_state(target) is ChecksumState.MISMATCH
    checksum_file(target).unlink()
    assert checksum_state(target) is ChecksumState.UNRECORDED


@pytest.mark.parametrize("damage", ["truncate", "random bytes"])
def test_a_damaged_subset_cache_is_rebuilt_not_trained_on(tmp_path: Path, damage: str, capfd: pytest.CaptureFixture) -> None:
    ctx = _ctx(tmp_path)
    first = RECBOLE.build(RECBOLE.options(max_users=50), ctx).dataset
    inter_file = first.inter_file
    intact = inter_file.read_bytes()
    assert _users(inter_file) == 50
    inter_file.write_bytes(intact[: len(intact) // 2] if damage == "truncate" else os.urandom(len(intact)))
    again = RECBOLE.build(RECBOLE.options(max_users=50), ctx).dataset
    assert again.inter_file == inter_file and inter_file.read_bytes() == intact and again.digest == first.digest
    assert "subset cache does not match the checksum recorded when it was written; rebuilding it" in capfd.readouterr().err


def test_a_subset_without_a_checksum_is_rebuilt_quietly(tmp_path: Path, capfd: pytest.CaptureFixture) -> None:
    ctx = _ctx(tmp_path)
    inter_file = RECBOLE.build(RECBOLE.options(max_users=5), ctx).dataset.inter_file
    checksum_file(inter_file).unlink()  # a cache entry of an older version, or a build cut short
    inter_file.write_text(inter_file.read_text()[:100])
    RECBOLE.build(RECBOLE.options(max_users=5), ctx)
    assert _users(inter_file) == 5 and checksum_state(inter_file) is ChecksumState.MATCHES
    assert "rebuilding" not in capfd.readouterr().err


def test_a_converted_dataset_changed_after_conversion_is_refused(tmp_path: Path) -> None:
    source = tmp_path / "Beauty.txt"
    source.write_text("".join(f"u{user} " + " ".join(f"i{user + k}" for k in range(4)) + "\n" for user in range(6)))
    target = convert_sequences(source, tmp_path / "data")
    assert checksum_state(target) is ChecksumState.MATCHES
    options = RECBOLE.options(path=str(target.parent))
    RECBOLE.check(options)
    with target.open("a") as handle:
        handle.write("u0\ti9\t9\n")
    with pytest.raises(DataError, match=r"Beauty\.inter: changed since it was written .*Beauty\.inter\.xxh3"):
        RECBOLE.check(options)


# -- convert-sequences never writes over its input, and refuses atomic files ------------------


def _convert(*arguments: str):
    from click.testing import CliRunner

    from suite.cli import main

    return CliRunner().invoke(main, ["convert-sequences", *arguments])


def test_convert_refuses_its_own_output_and_leaves_it_unchanged(tmp_path: Path) -> None:
    source = tmp_path / "Beauty.txt"
    source.write_text("u1 i1 i2 i3\nu2 i2 i3 i4\n")
    assert _convert(str(source), "--out", str(tmp_path / "data")).exit_code == 0
    inter_file = tmp_path / "data" / "Beauty" / "Beauty.inter"
    written = inter_file.read_bytes()
    for arguments in ([], ["--name", "Other"]):  # into itself, and into a new dataset
        result = _convert(str(inter_file), "--out", str(tmp_path / "data"), *arguments)
        assert result.exit_code == 2, result.output
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and re.search(r"Beauty\.inter: already a RecBole atomic file \(header 'user_id:token", lines[0]), lines
    assert inter_file.read_bytes() == written and sorted(os.listdir(tmp_path / "data")) == ["Beauty"]


def test_convert_never_writes_over_its_input(tmp_path: Path) -> None:
    source = tmp_path / "data" / "Beauty" / "Beauty.inter"  # sequence text that happens to sit where the output goes
    source.parent.mkdir(parents=True)
    source.write_text("u1 i1 i2 i3\n")
    result = _convert(str(source), "--out", str(tmp_path / "data"))
    assert result.exit_code == 2 and "the input would be overwritten by the output" in result.output
    assert source.read_text() == "u1 i1 i2 i3\n"
