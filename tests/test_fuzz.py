"""Mutation fuzzing in CI: thousands of damaged files end as an image of the declared size or
an L3ICError, never another exception, each within seconds (tests/fuzz_l3ic.py)."""

import json
import subprocess
import sys
from pathlib import Path

from support import models_at

FUZZER = Path(__file__).with_name("fuzz_l3ic.py")


def test_mutated_files_decode_or_raise_l3icerror_only(tmp_path):
    report_path = tmp_path / "fuzz.json"
    out = subprocess.run(
        [sys.executable, str(FUZZER), "--inputs", "5000", "--seed", "20261130",
         "--report", str(report_path), "--save-failures", str(tmp_path / "failures")],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert report_path.is_file(), out.stderr[-3000:]
    report = json.loads(report_path.read_text())
    assert report["failures"] == [], json.dumps(report["failures"][:5], indent=1)
    assert out.returncode == 0
    outcomes = report["outcomes"]
    assert sum(outcomes.values()) == 5000
    # the fuzzer reached every end: decoded images, latents, refusals and errors of many kinds
    assert outcomes.get("image", 0) > 100 and outcomes.get("latent", 0) > 50
    assert outcomes.get("refused (pixel limit)", 0) > 10
    assert sum(1 for k in outcomes if k.startswith("error: ")) > 12
    assert outcomes.get("error: stream length vs image size (seal)", 0) > 50
    # mutants of small files (declared under one megapixel, or refused) take seconds, not
    # minutes: a guard against work out of proportion to the file, not a speed figure (the
    # slowest decodes a full megapixel: 7.2 s on a 2-core AMD EPYC under load, 2026-12-06)
    assert report["slowest"][0]["seconds"] < 30.0, report["slowest"]


CORPUS = Path(__file__).with_name("corpus")


def test_the_kept_corpus_replays(monkeypatch, tmp_path):
    # The minimised corpus of each fuzz target (tests/fuzz_targets.py; docs/fuzzing.md) replays
    # under the normal build: each input is accepted or refused with L3ICError, nothing else,
    # and each target's corpus holds inputs of both kinds. The targets run on the 16c entropy
    # model the corpus was made with (fuzz_targets.FROZEN), whatever 16c ships.
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    import fuzz_targets

    fuzz_targets._shard_folder.cache_clear()  # its records are the frozen model's
    try:
        with models_at(fuzz_targets.frozen_models(tmp_path / "models"), monkeypatch):
            for target in fuzz_targets.TARGETS:
                inputs = sorted((CORPUS / target).iterdir())
                accepted = [getattr(fuzz_targets, target)(path.read_bytes()) for path in inputs]
                assert any(accepted) and not all(accepted), (target, len(inputs), sum(accepted))
    finally:
        fuzz_targets._shard_folder.cache_clear()
