"""The cache of built graphs: last use recorded, unused files removed, ``l3ic cache``."""

import json
import os
import time

import pytest
from support import smooth_image

from l3ic import graph_cache
from l3ic.cli import main
from l3ic.codec import Codec
from l3ic.graph_cache import GRAPH_VERSION

DAY = 86400
OLD_FP, OTHER_FP = "0123456789abcdef", "fedcba9876543210"


def _age(path, days: float) -> None:
    """Makes ``path`` look written and last used ``days`` days ago."""
    then = time.time() - days * DAY
    os.utime(path, (then, then))


def _names(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("L3IC_CACHE_DIR", str(folder))
    return folder


def _stale_files(folder) -> dict[str, bytes]:
    """Files of weights no preset has, of an older graph version, and not l3ic's at all."""
    files = {
        f"16c-{OLD_FP}-g{GRAPH_VERSION}.encoder.onnx": b"e" * 100,
        f"16c-{OLD_FP}-g{GRAPH_VERSION}.decoder.openvino-0123456789ab.blob": b"b" * 50,
        f"32c-{OTHER_FP}-g{GRAPH_VERSION - 1}.decoder.onnx": b"d" * 70,
        "notes.txt": b"not l3ic's",
        f"16c-{OLD_FP}-g{GRAPH_VERSION}.encoder.onnx.bak": b"not l3ic's either",
    }
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return files


def test_a_reused_graph_is_marked_used_and_keeps_its_write_time(presets, cache):
    codec = Codec("16c", runtime="onnx")
    codec.compress(smooth_image(16, 16))
    (path,) = cache.iterdir()
    _age(path, 10)
    written = path.stat().st_mtime_ns
    Codec("16c", runtime="onnx").compress(smooth_image(16, 16))
    assert path.stat().st_mtime_ns == written  # reused, not rebuilt
    assert time.time() - path.stat().st_atime < 60  # its last use is now
    (listed,) = graph_cache.cached_files(cache)
    assert listed.key == f"16c-{codec.fingerprint.hex()}" and listed.runtime == "onnx"
    assert time.time() - listed.last_used < 60


def test_writing_a_graph_removes_files_unused_for_30_days(presets, cache):
    _stale_files(cache)
    old = cache / f"16c-{OLD_FP}-g{GRAPH_VERSION}.encoder.onnx"
    recent = cache / f"32c-{OTHER_FP}-g{GRAPH_VERSION - 1}.decoder.onnx"
    foreign = cache / "notes.txt"
    leftover = cache / f".{old.name}.abc123.tmp"  # a write killed half-way
    leftover.write_bytes(b"half")
    for path in (old, foreign, leftover):
        _age(path, graph_cache.UNUSED_DAYS + 1)
    _age(recent, graph_cache.UNUSED_DAYS - 1)
    codec = Codec("16c", runtime="onnx")
    codec.compress(smooth_image(16, 16))  # builds and writes the encoder graph
    names = _names(cache)
    assert old.name not in names and leftover.name not in names
    assert recent.name in names and foreign.name in names
    assert f"16c-{codec.fingerprint.hex()}-g{GRAPH_VERSION}.encoder.onnx" in names


def test_prune_keeps_the_installed_presets_graphs_and_others_files(presets, cache):
    stale = _stale_files(cache)
    fresh_tmp = cache / f".16c-{OLD_FP}-g{GRAPH_VERSION}.decoder.onnx.x1y2.tmp"
    fresh_tmp.write_bytes(b"being written now")
    for preset in ("16c", "32c"):
        codec = Codec(preset, runtime="onnx")
        codec.decompress(codec.compress(smooth_image(16, 16)))
    in_use = graph_cache.in_use_keys()
    assert in_use == {f"{p}-{Codec(p, runtime='onnx').fingerprint.hex()}" for p in ("16c", "32c")}
    ours = {f.path.name for f in graph_cache.cached_files(cache)}
    assert len(ours) == 4 + 3  # two graphs of each preset, three stale files
    removed, freed = graph_cache.prune(cache, keep=in_use)
    assert removed == 3 and freed == 100 + 50 + 70
    assert {f.path.name for f in graph_cache.cached_files(cache)} == {
        n for n in ours if n not in stale
    }
    assert {"notes.txt", fresh_tmp.name} <= set(_names(cache))  # not l3ic's, or not a leftover
    assert graph_cache.prune(cache, keep=in_use) == (0, 0)
    removed, _ = graph_cache.prune(cache)  # --clear
    assert removed == 4 and graph_cache.cached_files(cache) == []
    assert "notes.txt" in _names(cache)
    assert graph_cache.prune(cache / "absent") == (0, 0)


def test_l3ic_cache_shows_prunes_and_clears(presets, cache, capsys):
    _stale_files(cache)
    codec = Codec("16c", runtime="onnx")
    codec.compress(smooth_image(16, 16))
    assert main(["cache"]) == 0
    out = capsys.readouterr().out
    assert str(cache) in out and "in 4 files" in out and "in use by the installed presets" in out
    assert "l3ic cache --prune removes them" in out
    assert main(["cache", "--prune", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["removed_files"] == 3 and report["removed_bytes"] == 220
    (entry,) = report["files"]
    assert entry["in_use"] and entry["runtime"] == "onnx" and entry["name"].startswith("16c-")
    assert report["bytes"] == report["in_use_bytes"] == entry["bytes"] > 1000
    assert main(["cache", "--clear"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("removed 1 files") and "0.0 MB in 0 files" in out
    assert _names(cache) == sorted(["notes.txt", f"16c-{OLD_FP}-g{GRAPH_VERSION}.encoder.onnx.bak"])


def test_l3ic_cache_of_an_absent_folder_and_bad_usage(presets, cache, capsys):
    assert main(["cache"]) == 0
    assert "0.0 MB in 0 files" in capsys.readouterr().out
    assert not cache.exists()  # looking creates nothing
    with pytest.raises(SystemExit) as e:
        main(["cache", "--prune", "--clear"])
    assert e.value.code == 2


def test_mark_used_sets_the_last_use_alone(cache):
    cache.mkdir()
    path = cache / f"16c-{OLD_FP}-g{GRAPH_VERSION}.encoder.onnx"
    path.write_bytes(b"graph")
    _age(path, 40)
    written = path.stat().st_mtime_ns
    graph_cache.mark_used(path)
    assert path.stat().st_mtime_ns == written
    assert time.time() - path.stat().st_atime < 60
    assert graph_cache.prune(cache, unused_for=graph_cache.UNUSED_DAYS * DAY) == (0, 0)
    graph_cache.mark_used(cache / "absent.onnx")  # nothing to mark: no error
