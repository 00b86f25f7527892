"""eSpeak NG speech synthesis through ctypes, reproducible to the sample.

The engine comes from the ``espeakng-loader`` wheel (library and voice data inside the
wheel: no system package, no download). libespeak-ng 1.52 is not reproducible inside one
process: a second synthesis of the same text differs from the first by a few samples, and
its breath/whisper noise is seeded from the clock. What *is* reproducible is the first
synthesis after start-up with a fixed random seed. So synthesis runs in a small helper
process (started with ``python -m scenarios.slu.espeak``, so it carries none of the
caller's state), which initializes the engine once and forks one child per utterance; each
child seeds the engine, synthesizes one utterance, writes its samples and exits.
"""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from suite.errors import DataError

SAMPLE_RATE = 22050  # what libespeak-ng produces in synchronous mode

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INIT_DONT_EXIT = 0x8000  # without it, a failed initialization calls exit(1)
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_END_PAUSE = 0x1000
_PARAM_RATE = 1
_PARAM_PITCH = 3

_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


@dataclass(frozen=True)
class SynthJob:
    """One utterance to synthesize: text, voice (name plus ``+variant``), pitch 0-100, rate in words/min."""

    text: str
    voice: str
    pitch: int
    rate: int
    seed: int


class Engine:
    """The eSpeak NG library, initialized for synchronous synthesis into a Python buffer."""

    def __init__(self) -> None:
        import espeakng_loader

        self._lib = ctypes.CDLL(espeakng_loader.get_library_path())
        self._declare()
        data_path = espeakng_loader.get_data_path().encode()
        rate = self._lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path, _INIT_DONT_EXIT)
        if rate != SAMPLE_RATE:
            raise RuntimeError(f"espeak_Initialize returned {rate}, expected {SAMPLE_RATE} (data path {data_path!r})")
        self._chunks: list[np.ndarray] = []
        self._callback = _CALLBACK(self._collect)  # kept referenced: the library calls it later
        self._lib.espeak_SetSynthCallback(self._callback)

    def _declare(self) -> None:
        lib = self._lib
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_CALLBACK]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        lib.espeak_Synth.argtypes = [
            ctypes.c_char_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_Synchronize.restype = ctypes.c_int

    def _collect(self, wav: ctypes.POINTER(ctypes.c_short), count: int, events: int) -> int:
        if count > 0 and wav:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(count,)).copy())
        return 0

    def synthesize(self, job: SynthJob) -> np.ndarray:
        """int16 samples at 22,050 Hz. Reproducible only as the first call in a fresh process."""
        if self._lib.espeak_SetVoiceByName(job.voice.encode()) != 0:
            raise ValueError(f"eSpeak NG refused voice '{job.voice}'")
        self._lib.espeak_SetParameter(_PARAM_RATE, int(job.rate), 0)
        self._lib.espeak_SetParameter(_PARAM_PITCH, int(job.pitch), 0)
        self._lib.espeak_ng_SetRandSeed(int(job.seed) % 2**31)
        self._chunks = []
        text = job.text.encode()
        status = self._lib.espeak_Synth(text, len(text) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8 | _END_PAUSE, None, None)
        if status != 0:
            raise RuntimeError(f"espeak_Synth failed with status {status} for {job.text!r}")
        self._lib.espeak_Synchronize()
        return np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)


def synthesize(jobs: Sequence[SynthJob], workers: int = 2) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(index, int16 samples at 22,050 Hz)`` for every job, in completion order.

    Runs the forking helper process; the samples of a job depend only on the job.
    """
    if not jobs:
        return
    with tempfile.TemporaryDirectory(prefix="espeak-") as tmp:
        request = {"out_dir": tmp, "workers": max(1, workers), "jobs": [asdict(job) for job in jobs]}
        paths = [_package_root()] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(paths))
        log_path = Path(tmp) / "helper.log"
        with open(log_path, "w") as log:  # a file, not a pipe: a full pipe could block the helper
            proc = subprocess.Popen(
                [sys.executable, "-m", "scenarios.slu.espeak"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                env=env,
            )
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(json.dumps(request))
        proc.stdin.close()
        done = 0
        try:
            for result in _read_results(proc.stdout, Path(tmp), jobs, log_path):
                done += 1
                yield result
        finally:
            proc.stdout.close()
            proc.wait()
        if proc.returncode != 0 or done != len(jobs):
            raise DataError(f"eSpeak NG helper failed (exit {proc.returncode}, {done}/{len(jobs)} utterances): {_last_line(log_path)}")


def _read_results(stdout, tmp: Path, jobs: Sequence[SynthJob], log_path: Path) -> Iterator[tuple[int, np.ndarray]]:
    for line in stdout:
        index_text, status = line.split()[:2]
        index = int(index_text)
        if status != "ok":
            job = jobs[index]
            raise DataError(f"eSpeak NG could not synthesize {job.text!r} with voice {job.voice}: {_last_line(log_path)}")
        raw = tmp / f"{index}.pcm"
        samples = np.fromfile(raw, dtype=np.int16)
        raw.unlink()
        yield index, samples


def _last_line(path: Path) -> str:
    lines = path.read_text(errors="replace").strip().splitlines() if path.exists() else []
    return lines[-1] if lines else "no message"


def _package_root() -> str:
    return str(Path(__file__).resolve().parents[2])


# ---------------------------------------------------------------- the helper process


def _serve(request: dict, emit: Callable[[str], None]) -> None:
    """Initialize once, then fork one child per job with at most ``workers`` alive."""
    engine = Engine()
    out_dir = Path(request["out_dir"])
    jobs = [SynthJob(**job) for job in request["jobs"]]
    running: dict[int, int] = {}
    for index, job in enumerate(jobs):
        while len(running) >= request["workers"]:
            _reap_one(running, emit)
        pid = os.fork()
        if pid == 0:
            _child(engine, job, out_dir / f"{index}.pcm")
        running[pid] = index
    while running:
        _reap_one(running, emit)


def _child(engine: Engine, job: SynthJob, path: Path) -> None:
    code = 0
    try:
        samples = engine.synthesize(job)
        tmp = path.with_suffix(".part")
        samples.astype(np.int16).tofile(tmp)
        os.replace(tmp, path)
    except BaseException as error:  # a child must never return into the parent's loop
        sys.stderr.write(f"{type(error).__name__}: {error}\n")
        code = 3
    finally:
        os._exit(code)


def _reap_one(running: dict[int, int], emit: Callable[[str], None]) -> None:
    pid, status = os.wait()
    index = running.pop(pid)
    ok = os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    emit(f"{index} ok" if ok else f"{index} failed child exit status {status}")


def _main() -> None:
    request = json.load(sys.stdin)

    def emit(line: str) -> None:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    _serve(request, emit)


if __name__ == "__main__":
    _main()
