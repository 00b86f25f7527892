"""Every bad input gives one clear error: missing roots, wrong layouts, corrupt audio, other rates."""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
import torchaudio.functional
from slu_fixtures import RESAMPLED_FILE, copy_corpus

from scenarios.slu.audio import read_audio
from scenarios.slu.entries import FSC, SLURP
from scenarios.slu.features import skipped_summary
from scenarios.slu.tokenizer import Tokenizer
from suite.errors import DataError


def build_fsc(root: Path, context, **options):
    """The FSC plugin on a fixture corpus; 5 experiences (one per class) unless told otherwise."""
    if "classes_per_exp" not in options:
        options.setdefault("num_experiences", 5)
    return FSC.build(FSC.options(root=str(root), **options), context)


def build_slurp(root: Path, context, **options):
    options.setdefault("num_experiences", 2)
    return SLURP.build(SLURP.options(root=str(root), **options), context)


def first_wav(root: Path) -> Path:
    return sorted((root / "wavs" / "speakers").rglob("*.wav"))[0]


def test_missing_fsc_root_says_what_and_where(tmp_path: Path, ctx) -> None:
    with pytest.raises(DataError) as error:
        build_fsc(tmp_path / "nowhere", ctx)
    message = str(error.value)
    assert "nowhere" in message and "does not exist" in message
    assert "data/{train,valid,test}_data.csv" in message and "wavs/speakers" in message
    assert "fluent.ai" in message and "\n" not in message


@pytest.mark.parametrize(
    "damage, piece",
    [
        (lambda root: (root / "data" / "valid_data.csv").unlink(), "missing data/valid_data.csv"),
        (lambda root: shutil.rmtree(root / "wavs"), "missing folder wavs/speakers/"),
        (lambda root: shutil.rmtree(root / "data"), "missing folder data/"),
    ],
)
def test_wrong_fsc_layout_names_the_missing_piece(fsc_root: Path, tmp_path: Path, ctx, damage, piece) -> None:
    root = copy_corpus(fsc_root, tmp_path / "fsc")
    damage(root)
    with pytest.raises(DataError, match=piece) as error:
        build_fsc(root, ctx)
    assert "expected <root>/data/" in str(error.value) and "fluent.ai" in str(error.value)


def test_fsc_csv_without_the_expected_columns_is_refused(fsc_root: Path, tmp_path: Path, ctx) -> None:
    root = copy_corpus(fsc_root, tmp_path / "fsc")
    csv_path = root / "data" / "test_data.csv"
    csv_path.write_text(csv_path.read_text().replace("speakerId", "speaker", 1))
    with pytest.raises(DataError, match=r"test_data.csv lacks column\(s\) speakerId"):
        build_fsc(root, ctx)


def test_fsc_label_keeps_spaces_and_fills_empty_fields_with_none(fsc_root: Path, tmp_path: Path, ctx) -> None:
    """Real FSC has actions like 'change language' and writes 'none' for unused fields."""
    root = copy_corpus(fsc_root, tmp_path / "fsc")
    for split in ("train", "valid", "test"):
        path = root / "data" / f"{split}_data.csv"
        path.write_text(path.read_text().replace(",activate,music,none", ",change language,,"))
    result = build_fsc(root, ctx)
    assert "change language_none_none" in result.classes and "activate_music_none" not in result.classes
    assert len(result.classes) == 5


def test_missing_slurp_pieces_are_named(slurp_root: Path, tmp_path: Path, ctx) -> None:
    with pytest.raises(DataError, match="does not exist.*github.com/pswietojanski/slurp") as error:
        build_slurp(tmp_path / "nowhere", ctx)
    assert "\n" not in str(error.value)
    root = copy_corpus(slurp_root, tmp_path / "slurp")
    (root / "dataset" / "slurp" / "devel.jsonl").unlink()
    with pytest.raises(DataError, match=r"missing dataset/slurp/devel.jsonl; expected <root>/dataset/slurp/"):
        build_slurp(root, ctx)
    (root / "dataset" / "slurp" / "devel.jsonl").write_text((slurp_root / "dataset" / "slurp" / "devel.jsonl").read_text())
    (root / "dataset" / "slurp" / "train_synthetic.jsonl").unlink()
    with pytest.raises(DataError, match="missing dataset/slurp/train_synthetic.jsonl"):
        build_slurp(root, ctx, use_synthetic=True)
    shutil.rmtree(root / "audio" / "slurp_real")
    with pytest.raises(DataError, match=r"missing audio folder .*/audio/slurp_real/; .*scripts/download_audio.sh"):
        build_slurp(root, ctx)


def test_slurp_audio_left_in_its_tarball_says_how_to_extract_it(slurp_root: Path, tmp_path: Path, ctx) -> None:
    """download_audio.sh only downloads: audio/slurp_real.tar.gz must be extracted in place."""
    root = copy_corpus(slurp_root, tmp_path / "slurp")
    audio = root / "audio"
    with tarfile.open(audio / "slurp_real.tar.gz", "w:gz") as tar:
        tar.add(audio / "slurp_real", arcname="slurp_real")
    shutil.rmtree(audio / "slurp_real")
    with pytest.raises(DataError) as error:
        build_slurp(root, ctx)
    assert f"audio/slurp_real.tar.gz is not extracted (run 'tar -xzf {audio}/slurp_real.tar.gz -C {audio}')" in str(error.value)
    subprocess.run(["tar", "-xzf", str(audio / "slurp_real.tar.gz"), "-C", str(audio)], check=True)  # what the message says
    assert build_slurp(root, ctx).train_size == 16


def test_a_folder_in_neither_slurp_layout_lists_both(tmp_path: Path, ctx) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError) as error:
        build_slurp(tmp_path / "empty", ctx)
    message = str(error.value)
    assert "missing train.jsonl, devel.jsonl, test.jsonl (flat layout) and dataset/slurp/ (repository layout)" in message
    assert "<root>/dataset/slurp/{train,devel,test}.jsonl with the audio in <root>/audio/slurp_real/" in message
    assert "<root>/{train,devel,test}.jsonl with <root>/slurp_real/*.flac (flat layout)" in message
    assert "scripts/download_audio.sh saves audio/slurp_real.tar.gz" in message and "\n" not in message


def test_malformed_slurp_lines_are_located(slurp_root: Path, tmp_path: Path, ctx) -> None:
    root = copy_corpus(slurp_root, tmp_path / "slurp")
    test_file = root / "dataset" / "slurp" / "test.jsonl"
    lines = test_file.read_text().splitlines()
    entry = json.loads(lines[2])
    del entry["scenario"]
    test_file.write_text("\n".join(lines[:2] + [json.dumps(entry)] + lines[3:]) + "\n")
    with pytest.raises(DataError, match=r"test.jsonl:3: missing field\(s\) scenario"):
        build_slurp(root, ctx)
    test_file.write_text("{not json\n")
    with pytest.raises(DataError, match=r"test.jsonl:1: not valid JSON"):
        build_slurp(root, ctx)


def test_corrupt_audio_names_the_file(fsc_root: Path, tmp_path: Path, ctx) -> None:
    root = copy_corpus(fsc_root, tmp_path / "fsc")
    bad = first_wav(root)
    bad.write_bytes(b"RIFF0000WAVEfmt garbage" * 3)
    with pytest.raises(DataError) as error:
        build_fsc(root, ctx)
    assert str(bad) in str(error.value) and "skip_bad_audio" in str(error.value)


def test_corrupt_audio_is_skipped_counted_and_shown_on_request(fsc_root: Path, tmp_path: Path, ctx, capsys) -> None:
    root = copy_corpus(fsc_root, tmp_path / "fsc")
    wavs = sorted((root / "wavs" / "speakers").rglob("*.wav"))
    wavs[0].write_bytes(b"not audio at all")
    wavs[-1].unlink()
    result = build_fsc(root, ctx, skip_bad_audio=True)
    assert result.skipped_audio == 2 and result.skipped_files == sorted([str(wavs[0]), str(wavs[-1])])
    assert result.skipped_reasons[str(wavs[-1])] == f"{wavs[-1]}: audio file not found"
    assert "unreadable or corrupt audio" in result.skipped_reasons[str(wavs[0])]
    total = sum(len(exp.dataset) for stream in ("train_stream", "valid_stream", "test_stream") for exp in getattr(result.benchmark, stream))
    assert total == 48
    built = capsys.readouterr().err
    assert f"fsc: 2 unreadable audio file(s) skipped (scenario.skip_bad_audio): {wavs[0]} (unreadable" in built
    assert f"; {wavs[-1]} (audio file not found)" in built
    again = build_fsc(root, ctx, skip_bad_audio=True)
    assert again.features_from_cache and again.skipped_audio == 2 and again.skipped_files == result.skipped_files
    assert "fsc: 2 unreadable audio file(s) skipped" in capsys.readouterr().err  # shown again when read from the cache
    missing = rf"{wavs[-1]}: audio file not found \(listed at .*_data.csv:\d+\); 1 of 50 audio files are missing"
    with pytest.raises(DataError, match=missing):
        build_fsc(root, ctx)


def test_the_cache_remembers_unreadable_audio(fsc_root: Path, tmp_path: Path, ctx) -> None:
    root = copy_corpus(fsc_root, tmp_path / "fsc")
    first_wav(root).write_bytes(b"RIFF but not really")
    assert build_fsc(root, ctx, skip_bad_audio=True).skipped_audio == 1
    with pytest.raises(DataError, match=r"unreadable or corrupt audio .*\(1 unreadable audio file\(s\); set scenario.skip_bad_audio: true"):
        build_fsc(root, ctx)  # without the option the cached entry still refuses


def test_summary_of_many_skipped_files_names_the_first_few() -> None:
    skipped = {f"/data/{i:02d}.wav": f"/data/{i:02d}.wav: audio file not found" for i in range(8)}
    line = skipped_summary(skipped)
    assert line.startswith("8 unreadable audio file(s) skipped (scenario.skip_bad_audio): /data/00.wav (audio file not found); ")
    assert "/data/04.wav" in line and "/data/05.wav" not in line and line.endswith("; and 3 more")


def test_empty_audio_file_is_bad_audio(tmp_path: Path) -> None:
    path = tmp_path / "empty.wav"
    soundfile.write(str(path), np.zeros(0, np.int16), 16000, subtype="PCM_16")
    with pytest.raises(DataError, match=f"{path}: audio file holds no samples"):
        read_audio(path)


def test_audio_at_another_rate_is_resampled(slurp_root: Path, ctx) -> None:
    path = slurp_root / "audio" / "slurp_real" / RESAMPLED_FILE
    native = soundfile.info(str(path))
    assert native.samplerate == 22050
    waveform = read_audio(path)
    assert abs(len(waveform) - native.frames * 16000 / 22050) <= 1
    raw, _ = soundfile.read(str(path), dtype="float32")
    reference = torchaudio.functional.resample(torch.from_numpy(raw), 22050, 16000)
    assert torch.allclose(waveform, reference, atol=1e-4)
    result = build_slurp(slurp_root, ctx, num_experiences=1)
    assert result.skipped_audio == 0  # the 22,050 Hz file went in like the others


def test_audio_at_8k_is_upsampled(tmp_path: Path) -> None:
    path = tmp_path / "tone.wav"
    t = np.arange(8000) / 8000
    soundfile.write(str(path), (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 8000, subtype="PCM_16")
    waveform = read_audio(path)
    assert len(waveform) == 16000
    spectrum = np.abs(np.fft.rfft(waveform.numpy()))
    assert abs(int(spectrum.argmax()) - 440) <= 1  # same tone, twice the samples


def test_stereo_audio_is_mixed_down(tmp_path: Path) -> None:
    path = tmp_path / "stereo.flac"
    soundfile.write(str(path), np.stack([np.full(1600, 0.25), np.full(1600, -0.25)], axis=1), 16000, format="FLAC")
    assert read_audio(path).abs().max() < 1e-3


def test_tokenizer_file_that_is_not_one_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "tok.json"
    path.write_text("[1, 2]")
    with pytest.raises(DataError, match="not a tokenizer file"):
        Tokenizer.load(path)
