"""bench.rd: results schema, per-image CSV, the cache (a rerun computes nothing), and the one
scoring path it shares with ``l3ic.evaluate``."""

from __future__ import annotations

import csv
import json

import pytest
from PIL import Image

from bench import rd
from bench.cache import ResultCache
from bench.codecs import L3IC


@pytest.fixture
def dataset(tmp_path, make_image):
    folder = tmp_path / "tiny-set"
    folder.mkdir()
    for i in range(2):
        Image.fromarray(make_image(40, 56, seed=i)).save(folder / f"img{i}.png")
    return folder


def test_run_writes_schema_and_uses_cache(dataset, tmp_path, monkeypatch):
    out, cache = tmp_path / "out", tmp_path / "cache"
    argv = [
        str(dataset),
        "--codecs",
        "jpeg420",
        "--qualities",
        "30",
        "90",
        "--out",
        str(out),
        "--cache",
        str(cache),
    ]
    assert rd.main(argv) == 0
    doc = json.loads((out / "jpeg420.json").read_text())
    assert doc["name"] == "jpeg420" and "libjpeg" in doc["description"]
    res = doc["results"]
    assert res["quality"] == [30, 90]
    assert res["bpp"][0] < res["bpp"][1] and res["psnr"][0] < res["psnr"][1]
    assert res["ms-ssim"] == [None, None]  # 40x56 is too small for five scales
    rows = list(csv.DictReader((out / "per_image" / "jpeg420.csv").open()))
    assert len(rows) == 4 and {r["image"] for r in rows} == {"img0.png", "img1.png"}
    assert (out / "summary.md").exists() and (out / "rd_psnr.png").exists()

    def fail(*args, **kwargs):
        raise AssertionError("cached result recomputed")

    monkeypatch.setattr(rd, "evaluate", fail)
    assert rd.main(argv) == 0


def test_cache_ignores_other_descriptions_and_torn_lines(tmp_path):
    path = tmp_path / "c.jsonl"
    ResultCache(path, "v1").put("30|abc", {"bpp": 1.0})
    with path.open("a") as f:
        f.write('{"key": "90|abc", "descr')  # interrupted write
    assert ResultCache(path, "v1").get("30|abc")["bpp"] == 1.0
    assert ResultCache(path, "v1").get("90|abc") is None
    assert ResultCache(path, "v2").get("30|abc") is None


def test_evaluate_scores_as_the_bench_does(dataset):
    """``l3ic.evaluate`` and ``bench.rd`` report one image with the same keys and figures."""
    if not L3IC.is_available().ok:
        pytest.skip("l3ic unavailable")
    from l3ic.evaluate import evaluate_folder

    result = evaluate_folder("16c", dataset, verbose=False)
    first = result["per_image"][0]
    image = rd.load_image(dataset / first["image"])
    bench = rd.evaluate(L3IC(), image, "16c")
    for key in set(bench) - {"encoding_time", "decoding_time"}:
        assert first[key] == pytest.approx(bench[key], nan_ok=True), key
    means = rd.average({"16c": [{**first, "encoding_time": 0.0, "decoding_time": 0.0}]})
    assert set(result["mean"]) == set(means) - {"quality", "encoding_time", "decoding_time"}
