"""bench.rd: results schema, per-image CSV, and the cache (a rerun computes nothing)."""

from __future__ import annotations

import csv
import json

import pytest
from PIL import Image

from bench import rd
from bench.cache import ResultCache


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
