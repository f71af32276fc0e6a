"""l3ic convert: ImageFolder tree -> .l3ic tree and index; resumable; bad inputs reported."""

import json

import imageio.v3 as iio
import numpy as np
import pytest
from support import smooth_image

import l3ic
from l3ic.cli import main
from l3ic.convert import convert, read_index


def make_tree(root, corrupt=True):
    """cat/ 2 images, dog/ 2 images (one JPEG), one unlabelled image, a text file, a bad PNG."""
    for rel, (h, w), seed in [
        ("cat/a.png", (24, 32), 0),
        ("cat/b.png", (24, 32), 1),
        ("dog/c.png", (32, 24), 2),
        ("dog/d.jpg", (24, 32), 3),
        ("top.png", (16, 16), 4),
    ]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        iio.imwrite(root / rel, smooth_image(h, w, seed))
    (root / "notes.txt").write_text("not an image")
    if corrupt:
        (root / "dog" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    return root


def test_convert_resume_and_report(presets, tmp_path, capsys):
    src, dst = make_tree(tmp_path / "src"), tmp_path / "dst"
    assert main(["convert", str(src), str(dst), "-m", "16c", "--workers", "1"]) == 1
    out, err = capsys.readouterr()
    assert "converted 5 images" in out and "1 failed" in out
    errors = [line for line in err.splitlines() if line.startswith("l3ic: error")]
    assert len(errors) == 1 and "broken.png" in errors[0]
    files = sorted(p.relative_to(dst).as_posix() for p in dst.rglob("*") if p.is_file())
    assert files == [
        "cat/a.l3ic",
        "cat/b.l3ic",
        "dog/c.l3ic",
        "dog/d.l3ic",
        "index.json",
        "top.l3ic",
    ]
    index = read_index(dst)
    assert index["model"] == "16c" and index["classes"] == ["cat", "dog"]
    items = {item["path"]: item for item in index["items"]}
    assert items["dog/c.l3ic"] | {"bytes": 0} == {
        "path": "dog/c.l3ic",
        "source": "dog/c.png",
        "label": "dog",
        "label_index": 1,
        "width": 24,
        "height": 32,
        "bytes": 0,
    }
    assert items["top.l3ic"]["label"] is None and items["top.l3ic"]["label_index"] == -1
    for path, item in items.items():
        assert item["bytes"] == (dst / path).stat().st_size
        assert l3ic.open(dst / path).size == (item["width"], item["height"])

    before = {p: (dst / p).stat().st_mtime_ns for p in items}
    assert main(["convert", str(src), str(dst), "-m", "16c"]) == 1
    out, err = capsys.readouterr()
    assert "converted 0 images" in out and "skipped 5 existing" in out and "broken.png" in err
    assert {p: (dst / p).stat().st_mtime_ns for p in items} == before
    assert read_index(dst) == index

    (src / "dog" / "broken.png").unlink()
    assert main(["convert", str(src), str(dst), "-m", "16c"]) == 0
    assert "0 failed" in capsys.readouterr().out


def test_convert_in_two_processes(presets, tmp_path):
    src = make_tree(tmp_path / "src", corrupt=False)
    report = convert(src, tmp_path / "dst", model="16c", workers=2, progress=False)
    assert (report.converted, report.skipped, report.failed) == (5, 0, [])
    assert report.bytes_out == sum(p.stat().st_size for p in (tmp_path / "dst").rglob("*.l3ic"))
    assert report.bytes_in > 0 and report.indexed == 5
    latent, meta = l3ic.read_latent((tmp_path / "dst" / "cat" / "a.l3ic").read_bytes())
    assert latent.shape == (3, 4, 16) and meta["preset"] == "16c"
    assert not list((tmp_path / "dst").rglob("*.tmp"))


def test_conflicts_are_reported_not_overwritten(presets, tmp_path):
    src = make_tree(tmp_path / "src", corrupt=False)
    iio.imwrite(src / "cat" / "a.bmp", smooth_image(8, 8))
    dst = tmp_path / "dst"
    (dst / "dog").mkdir(parents=True)
    (dst / "dog" / "c.l3ic").write_bytes(b"not an l3ic file")
    (dst / "top.l3ic").write_bytes(l3ic.compress(np.zeros((16, 16, 3), np.uint8), model="32c"))
    report = convert(src, dst, model="16c", progress=False)
    reasons = dict(report.failed)
    assert sorted(reasons) == ["cat/a.png", "dog/c.png", "top.png"]
    assert "same output" in reasons["cat/a.png"] and "unreadable" in reasons["dog/c.png"]
    assert "written by model 32c" in reasons["top.png"]
    assert (dst / "dog" / "c.l3ic").read_bytes() == b"not an l3ic file"
    assert [item["path"] for item in read_index(dst)["items"]] == [
        "cat/a.l3ic",
        "cat/b.l3ic",
        "dog/d.l3ic",
    ]


def test_convert_usage_errors(presets, tmp_path, capsys):
    assert main(["convert", str(tmp_path / "nope"), str(tmp_path / "dst"), "-m", "16c"]) == 1
    assert capsys.readouterr().err.count("\n") == 1
    with pytest.raises(l3ic.L3ICError, match="workers"):
        convert(tmp_path, tmp_path / "dst", model="16c", workers=0)
    (tmp_path / "index.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(l3ic.L3ICError, match="not an l3ic index"):
        read_index(tmp_path)
