"""Small SLU corpora synthesized with the suite's own eSpeak NG synthesizer, built once per session.

* ``fsc_root``: 5 intents x 2 phrasings x 5 speakers (3/1/1) in the Fluent Speech Commands
  layout, written by the spoken-commands synthesizer itself.
* ``slurp_root``: 4 scenarios x 2 sentences laid out as a clone of the SLURP repository with
  its audio extracted: ``dataset/slurp/{train,devel,test,train_synthetic}.jsonl`` and
  ``audio/slurp_real/``, ``audio/slurp_synth/``, the recordings named as distributed
  (``audio-<timestamp>.flac``, ``audio-<timestamp>-headset.flac``, some timestamps negative:
  ``audio--1490100014.flac``); one test recording stored at 22,050 Hz to exercise resampling.
  ``flatten_slurp`` rearranges a copy into the flat layout.

``conftest.py`` registers this module as a pytest plugin; the builders cache their
result in this module so several modules share one corpus.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from scenarios.slu.audio import resample, to_pcm16
from scenarios.slu.espeak import SAMPLE_RATE, SynthJob, synthesize
from scenarios.slu.spoken_commands import CorpusSpec, synthesize_corpus
from suite.api import BuildContext

torch.set_num_threads(1)

TINY_SPEC = CorpusSpec(seed=0, speakers=5, valid_speakers=1, test_speakers=1, phrasings_per_intent=2, intents=5)

SLURP_SENTENCES = {
    "iot": [("iot_hue_lightson", "turn on the lights"), ("iot_hue_lightsoff", "switch off the lights")],
    "music": [("play_music", "play some jazz music"), ("music_likeness", "i like this song")],
    "weather": [("weather_query", "what is the weather today"), ("weather_query", "will it rain tomorrow")],
    "alarm": [("alarm_set", "wake me up at seven"), ("alarm_remove", "cancel my alarm")],
}
SLURP_SPEAKERS = {"train": ["en-us+m1", "en+f1"], "valid": ["en-GB-x-rp+m3"], "test": ["en-029+f4"]}
SLURP_FILES = {"train": "train.jsonl", "valid": "devel.jsonl", "test": "test.jsonl"}
SLURP_SYNTHETIC = {"iot": "lights on", "music": "play music", "weather": "is it sunny", "alarm": "set an alarm"}
SLURP_ANNOTATIONS = Path("dataset") / "slurp"
SLURP_AUDIO = Path("audio")


def recording_name(slurp_id: int, take: int) -> str:
    """As distributed: a take's timestamp, '-headset' for the close-talk microphone, some timestamps negative."""
    stamp = 1490100000 + slurp_id * 7
    sign = "-" if slurp_id % 5 == 2 else ""
    return f"audio-{sign}{stamp}{'-headset' if take % 2 else ''}.flac"


RESAMPLED_FILE = recording_name(16, 0)  # the first test recording (ids 0-7 train, 8-15 devel), stored at 22,050 Hz

_BUILT: dict[str, Path] = {}


def build_fsc_corpus(folder: Path, spec: CorpusSpec = TINY_SPEC) -> Path:
    synthesize_corpus(folder, spec)
    return folder


def build_slurp_corpus(folder: Path) -> Path:
    """A clone of the SLURP repository with audio/slurp_real.tar.gz and slurp_synth.tar.gz extracted in place."""
    entries, jobs, names = _slurp_plan()
    for folder_name in ("slurp_real", "slurp_synth"):
        (folder / SLURP_AUDIO / folder_name).mkdir(parents=True)
    for index, samples in synthesize(jobs):
        _write_flac(folder / SLURP_AUDIO / names[index], samples, native=names[index].endswith("/" + RESAMPLED_FILE))
    annotations = folder / SLURP_ANNOTATIONS
    annotations.mkdir(parents=True)
    for name, lines in entries.items():
        (annotations / name).write_text("".join(json.dumps(line) + "\n" for line in lines))
    return folder


def flatten_slurp(repository: Path, target: Path) -> Path:
    """The same corpus in the flat layout: the jsonl files beside slurp_real/ and slurp_synth/."""
    target.mkdir(parents=True)
    for path in (repository / SLURP_ANNOTATIONS).glob("*.jsonl"):
        shutil.copy(path, target / path.name)
    for folder_name in ("slurp_real", "slurp_synth"):
        shutil.copytree(repository / SLURP_AUDIO / folder_name, target / folder_name)
    return target


def _slurp_plan():
    entries: dict[str, list[dict]] = {name: [] for name in [*SLURP_FILES.values(), "train_synthetic.jsonl"]}
    jobs, names = [], []
    slurp_id = 0
    for split, voices in SLURP_SPEAKERS.items():
        for scenario, sentences in SLURP_SENTENCES.items():
            for intent, sentence in sentences:
                files = [recording_name(slurp_id, take) for take in range(len(voices))]
                for take, voice in enumerate(voices):
                    jobs.append(SynthJob(sentence, voice, 50, 170, slurp_id * 10 + take))
                    names.append(f"slurp_real/{files[take]}")
                entries[SLURP_FILES[split]].append(_slurp_entry(slurp_id, sentence, intent, scenario, files))
                slurp_id += 1
    for scenario, sentence in SLURP_SYNTHETIC.items():
        file = recording_name(100 + slurp_id, 0)
        jobs.append(SynthJob(sentence, "en-us+f2", 50, 170, slurp_id))
        names.append(f"slurp_synth/{file}")
        intent = next(intent for intent, _ in SLURP_SENTENCES[scenario])
        entries["train_synthetic.jsonl"].append(_slurp_entry(slurp_id, sentence, intent, scenario, [file]))
        slurp_id += 1
    return entries, jobs, names


def _slurp_entry(slurp_id: int, sentence: str, intent: str, scenario: str, files: list[str]) -> dict:
    """One jsonl line with SLURP's fields."""
    return {
        "slurp_id": slurp_id,
        "sentence": sentence,
        "sentence_annotation": sentence,
        "intent": intent,
        "action": intent.split("_", 1)[1],
        "tokens": [{"surface": word, "id": i, "lemma": word, "pos": "NN"} for i, word in enumerate(sentence.split())],
        "scenario": scenario,
        "recordings": [{"file": file, "wer": 0.0, "ent_wer": None, "status": "correct"} for file in files],
        "entities": [],
    }


def _write_flac(path: Path, samples: np.ndarray, native: bool) -> None:
    if native:
        soundfile.write(str(path), samples, SAMPLE_RATE, format="FLAC", subtype="PCM_16")
        return
    waveform = resample(torch.from_numpy(samples.astype(np.float32) / 32768.0), SAMPLE_RATE, 16000)
    soundfile.write(str(path), to_pcm16(waveform), 16000, format="FLAC", subtype="PCM_16")


def _once(name: str, factory: pytest.TempPathFactory, builder) -> Path:
    if name not in _BUILT or not _BUILT[name].exists():
        _BUILT[name] = builder(factory.mktemp(name) / "corpus")
    return _BUILT[name]


@pytest.fixture(scope="session")
def fsc_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny corpus in the FSC layout (read-only: copy it before damaging it)."""
    return _once("fsc", tmp_path_factory, build_fsc_corpus)


@pytest.fixture(scope="session")
def slurp_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny corpus in the SLURP layout (read-only: copy it before damaging it)."""
    return _once("slurp", tmp_path_factory, build_slurp_corpus)


@pytest.fixture
def ctx(tmp_path: Path) -> BuildContext:
    """A build context whose cache and run folders are private to the test."""
    return BuildContext(seed=0, cache_dir=tmp_path / "cache", run_dir=tmp_path / "run", quiet=True)


def copy_corpus(root: Path, target: Path) -> Path:
    shutil.copytree(root, target)
    return target
