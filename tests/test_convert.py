"""l3ic convert: ImageFolder tree -> .l3ic tree and index; resumable; bad inputs reported."""

import json

import imageio.v3 as iio
import numpy as np
import pytest
from support import smooth_image

import l3ic
from l3ic.cli import main
from l3ic.datasets.convert import convert
from l3ic.datasets.folder_index import read_index


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
    assert index["preset"] == "16c" and index["classes"] == ["cat", "dog"]
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
        assert l3ic.open(dst / path).shape == (item["height"], item["width"])

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
    iio.imwrite(src / "deep.png", smooth_image(16, 16)[..., 1].astype(np.uint16) * 257)
    report = convert(src, tmp_path / "dst", preset="16c", workers=2, progress=False)
    assert (report.converted, report.skipped, report.failed) == (6, 0, [])
    assert report.warnings == [("deep.png", "16-bit image converted to 8 bits")]
    assert report.bytes_out == sum(p.stat().st_size for p in (tmp_path / "dst").rglob("*.l3ic"))
    assert report.bytes_in > 0 and report.indexed == 6
    latent, meta = l3ic.read_latent((tmp_path / "dst" / "cat" / "a.l3ic").read_bytes())
    assert latent.shape == (3, 4, 16) and meta["preset"] == "16c"
    assert not list((tmp_path / "dst").rglob("*.tmp"))


def test_unreadable_output_is_reported_not_overwritten(presets, tmp_path):
    src = make_tree(tmp_path / "src", corrupt=False)
    dst = tmp_path / "dst"
    (dst / "dog").mkdir(parents=True)
    (dst / "dog" / "c.l3ic").write_bytes(b"not an l3ic file")
    report = convert(src, dst, preset="16c", progress=False)
    assert len(report.failed) == 1 and report.failed[0][0] == "dog/c.png"
    assert "unreadable" in report.failed[0][1]
    assert (dst / "dog" / "c.l3ic").read_bytes() == b"not an l3ic file"
    assert [item["path"] for item in read_index(dst)["items"]] == [
        "cat/a.l3ic",
        "cat/b.l3ic",
        "dog/d.l3ic",
        "top.l3ic",
    ]


def test_inputs_with_one_output_are_all_reported(presets, tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("a.png", "a.jpg", "b.png"):
        iio.imwrite(src / name, smooth_image(16, 16))
    why = "a.jpg and a.png would both be written to"
    report = convert(src, tmp_path / "dst", preset="16c", progress=False)
    assert [rel for rel, _ in report.failed] == ["a.jpg", "a.png"]
    assert all(why in reason and "a.l3ic; rename one" in reason for _, reason in report.failed)
    assert report.converted == 1 and not (tmp_path / "dst" / "a.l3ic").exists()
    assert [item["path"] for item in read_index(tmp_path / "dst")["items"]] == ["b.l3ic"]

    assert main(["convert", str(src), str(tmp_path / "dst2"), "-m", "16c"]) == 1
    err = capsys.readouterr().err.splitlines()
    errors = [line for line in err if line.startswith("l3ic: error:")]
    assert len(errors) == 2 and all(why in line for line in errors)
    assert errors[0].startswith(f"l3ic: error: {src / 'a.jpg'}: ")
    assert not (tmp_path / "dst2" / "a.l3ic").exists()


def test_dst_of_another_model_is_left_untouched(presets, tmp_path, capsys):
    from l3ic.datasets.keras_data import LatentDataset

    src, dst = make_tree(tmp_path / "src", corrupt=False), tmp_path / "lat"
    assert main(["convert", str(src), str(dst), "-m", "32c"]) == 0
    files = {p: p.read_bytes() for p in dst.rglob("*") if p.is_file()}
    capsys.readouterr()
    assert main(["convert", str(src), str(dst), "-m", "16c"]) == 1
    out, err = capsys.readouterr()
    assert out == "" and len(err.splitlines()) == 1 and err.startswith("l3ic: error:")
    assert "preset 32c" in err and str(dst) in err and "delete" in err
    assert {p: p.read_bytes() for p in dst.rglob("*") if p.is_file()} == files
    dataset = LatentDataset(dst, batch_size=2)
    assert dataset.files.preset == "32c" and len(dataset.files) == 5
    with pytest.warns(DeprecationWarning, match="use LatentFiles.preset"):
        assert dataset.files.model == "32c"  # the old name still answers

    index = json.loads((dst / "index.json").read_text())
    (dst / "index.json").unlink()  # the files themselves tell which model wrote them
    with pytest.raises(l3ic.L3ICError, match=r"preset 32c \(e\.g\. .*cat/a\.l3ic\)"):
        convert(src, dst, preset="16c", progress=False)
    assert {p for p in dst.rglob("*") if p.is_file()} == set(files) - {dst / "index.json"}
    for text, preset, match in [
        (json.dumps(index | {"fingerprint": "00" * 8}), "32c", "other weights of preset 32c"),
        ("{}", "32c", "not an l3ic index"),
    ]:
        (dst / "index.json").write_text(text)
        with pytest.raises(l3ic.L3ICError, match=match):
            convert(src, dst, preset=preset, progress=False)
        assert (dst / "index.json").read_text() == text

    # An index listing nothing (as earlier l3ic left after refusing the files) holds nothing.
    (dst / "index.json").write_text(json.dumps(index | {"preset": "16c", "items": []}))
    report = convert(src, dst, preset="32c", progress=False)
    assert (report.skipped, report.failed, read_index(dst)) == (5, [], index)


def test_convert_at_a_quality_and_resume_only_at_it(presets, tmp_path, capsys):
    from l3ic.codebook import dequantize
    from l3ic.datasets.latent_files import LatentFiles
    from l3ic.rate_control import quality_scale

    src, dst = make_tree(tmp_path / "src", corrupt=False), tmp_path / "lat"
    assert main(["convert", str(src), str(dst), "-m", "16c", "--quality", "30"]) == 0
    scale = quality_scale(30)
    assert read_index(dst)["quality"] == 30
    data = (dst / "cat" / "a.l3ic").read_bytes()
    assert data == l3ic.compress(iio.imread(src / "cat" / "a.png"), "16c", quality=30)
    q, meta = l3ic.read_latent(data)
    files = LatentFiles(dst)
    i = [item["path"] for item in files.items].index("cat/a.l3ic")
    x, _ = files.batch([i])
    np.testing.assert_array_equal(x[0], dequantize(q, scale))  # latents as q / s
    assert convert(src, dst, preset="16c", quality=30, progress=False).skipped == 5
    capsys.readouterr()
    assert main(["convert", str(src), str(dst), "-m", "16c"]) == 1  # quality 50
    assert "at quality 30" in capsys.readouterr().err
    (dst / "index.json").unlink()  # the files tell their scale too
    with pytest.raises(l3ic.L3ICError, match=f"at scale {scale:g} .*quality 50"):
        convert(src, dst, preset="16c", progress=False)
    with pytest.raises(SystemExit) as e:
        main(["convert", str(src), str(tmp_path / "sh"), "--layout", "shards", "-q", "30"])
    assert e.value.code == 2


def test_warnings_one_line_per_file(presets, tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    iio.imwrite(src / "deep.png", smooth_image(16, 16)[..., 1].astype(np.uint16) * 257)
    assert main(["convert", str(src), str(tmp_path / "dst"), "-m", "16c"]) == 0
    err = capsys.readouterr().err
    assert [line for line in err.splitlines() if "warning" in line] == [
        f"l3ic: warning: {src / 'deep.png'}: 16-bit image converted to 8 bits"
    ]
    assert "UserWarning" not in err


def test_convert_usage_errors(presets, tmp_path, capsys):
    assert main(["convert", str(tmp_path / "nope"), str(tmp_path / "dst"), "-m", "16c"]) == 1
    assert capsys.readouterr().err.count("\n") == 1
    with pytest.raises(l3ic.L3ICError, match="workers"):
        convert(tmp_path, tmp_path / "dst", preset="16c", workers=0)
    (tmp_path / "index.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(l3ic.L3ICError, match="not an l3ic index"):
        read_index(tmp_path)


@pytest.mark.parametrize(
    "items",
    [[5], [{}], [{"path": "../../etc/passwd", "label_index": -1, "width": 8, "height": 8}],
     [{"path": "/abs/x.l3ic", "label_index": -1, "width": 8, "height": 8}],
     [{"path": "a.l3ic", "label_index": 3, "width": 8, "height": 8}],
     [{"path": "a.l3ic", "label_index": -1, "width": "8", "height": 8}]],
)  # fmt: skip
def test_a_damaged_index_is_an_l3icerror_before_any_file_is_read(tmp_path, items):
    index = {"format": "l3ic-index", "version": 2, "preset": "16c", "classes": ["cat"]}
    (tmp_path / "index.json").write_text(json.dumps({**index, "items": items}))
    with pytest.raises(l3ic.L3ICError, match=r"index.json: items\[0\]"):
        read_index(tmp_path)
    with pytest.raises(l3ic.L3ICError, match=r"index.json: items\[0\]"):
        l3ic.LatentFiles(tmp_path)


def test_images_of_one_size_go_through_the_encoder_together(presets, tmp_path, monkeypatch):
    from l3ic.codec import Codec

    batches = []
    encode = Codec._encode

    def recorded(self, x):
        batches.append(x.shape[:3])
        return encode(self, x)

    monkeypatch.setattr(Codec, "_encode", recorded)
    src = make_tree(tmp_path / "src")
    report = convert(src, tmp_path / "dst", preset="16c", progress=False)
    assert report.converted == 5 and [rel for rel, _ in report.failed] == ["dog/broken.png"]
    # cat/a, cat/b and dog/d are 24x32 (one batch), dog/c 32x24, top 16x16
    assert batches == [(3, 24, 32), (1, 32, 24), (1, 16, 16)]
    codec = l3ic.Codec("16c")
    for rel in ["cat/a", "cat/b", "dog/c", "dog/d", "top"]:
        written = (tmp_path / "dst" / f"{rel}.l3ic").read_bytes()
        assert written == codec.compress(next(src.glob(f"{rel}.*"))), rel

    # An image the codec refuses (RGBA without drop_alpha) fails alone: its batch is
    # compressed again image by image.
    rgba = np.dstack([smooth_image(24, 32, 5), np.full((24, 32), 200, np.uint8)])
    iio.imwrite(src / "cat" / "e.png", rgba)
    report = convert(src, tmp_path / "dst2", preset="16c", progress=False)
    assert report.converted == 5
    assert sorted(rel for rel, _ in report.failed) == ["cat/e.png", "dog/broken.png"]
    assert "alpha" in dict(report.failed)["cat/e.png"]
    for rel in ["cat/a", "cat/b", "dog/c", "dog/d", "top"]:
        assert (tmp_path / "dst2" / f"{rel}.l3ic").read_bytes() == (
            tmp_path / "dst" / f"{rel}.l3ic"
        ).read_bytes()
