"""The l3ic command: outputs, --force, exit codes 0 / 1 / 2, one line per error."""

import json
import subprocess
import sys

import imageio.v3 as iio
import numpy as np
import pytest
from support import smooth_image

import l3ic.api
from l3ic.cli import main


@pytest.fixture
def png(tmp_path):
    path = tmp_path / "photo.png"
    iio.imwrite(path, smooth_image(30, 44))
    return path


def test_compress_decompress_info(presets, png, capsys):
    assert main(["compress", "-m", "16c", str(png)]) == 0
    out = png.with_suffix(".l3ic")
    assert out.is_file() and "bpp" in capsys.readouterr().out
    assert main(["info", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["preset"] == "16c" and (info["width"], info["height"]) == (44, 30)
    assert (
        sum(info["channel_bytes"]) + info["header_bytes"] + 4 == info["bytes"] == out.stat().st_size
    )
    png.unlink()
    assert main(["decompress", str(out)]) == 0
    assert iio.imread(png).shape == (30, 44, 3)


def test_existing_output_needs_force(presets, png, capsys):
    target = png.with_name("x.l3ic")
    target.write_bytes(b"keep me")
    assert main(["compress", "-m", "16c", str(png), "-o", str(target)]) == 1
    assert target.read_bytes() == b"keep me"
    assert "exists" in capsys.readouterr().err
    assert main(["compress", "-m", "16c", str(png), "-o", str(target), "--force"]) == 0
    assert target.read_bytes()[:4] == b"L3IC"


def test_outdir_many_files(presets, tmp_path, capsys):
    paths = []
    for i in range(3):
        paths.append(tmp_path / f"im{i}.png")
        iio.imwrite(paths[-1], smooth_image(16, 16 + i))
    assert main(["compress", "-m", "16c", *map(str, paths), "--outdir", str(tmp_path / "out")]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "im0.l3ic",
        "im1.l3ic",
        "im2.l3ic",
    ]


@pytest.mark.parametrize("content", [b"", b"hello", b"L3IC\x01garbage", bytes(range(256))])
def test_bad_input_one_line_exit_1_no_output(presets, tmp_path, capsys, content):
    bad = tmp_path / "bad.l3ic"
    bad.write_bytes(content)
    assert main(["decompress", str(bad)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("l3ic: error:")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.l3ic"]
    assert main(["info", str(bad)]) == 1
    notimage = tmp_path / "bad.png"
    notimage.write_bytes(content)
    assert main(["compress", "-m", "16c", str(notimage)]) == 1
    assert not (tmp_path / "bad.l3ic.tmp").exists() and len(list(tmp_path.iterdir())) == 2


def test_truncated_file_leaves_no_output(presets, png, tmp_path):
    assert main(["compress", "-m", "16c", str(png)]) == 0
    data = png.with_suffix(".l3ic").read_bytes()
    cut = tmp_path / "cut.l3ic"
    cut.write_bytes(data[: len(data) // 2])
    assert main(["decompress", str(cut)]) == 1
    assert not (tmp_path / "cut.png").exists()


def test_missing_weights_message(presets, png, capsys):
    assert main(["compress", "-m", "64c", str(png)]) == 1
    assert "64c.npz" in capsys.readouterr().err


def test_usage_errors_exit_2(png):
    with pytest.raises(SystemExit) as e:
        main(["compress", "-m", "99c", str(png)])
    assert e.value.code == 2
    with pytest.raises(SystemExit) as e:
        main([])
    assert e.value.code == 2
    assert main(["compress", str(png), str(png), "-o", "x.l3ic"]) == 2


def test_help_shows_examples():
    result = subprocess.run(
        [sys.executable, "-m", "l3ic", "--help"], capture_output=True, text=True, check=True
    )
    assert "examples:" in result.stdout and "l3ic compress" in result.stdout


def test_console_script_bad_file_exit_1(tmp_path):
    bad = tmp_path / "x.l3ic"
    bad.write_bytes(b"nonsense")
    result = subprocess.run(
        [sys.executable, "-m", "l3ic", "decompress", str(bad)], capture_output=True, text=True
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"l3ic: error: {bad}: not an .l3ic file (wrong magic bytes)"
    ]
    assert "Traceback" not in result.stderr


def test_grayscale_png_roundtrip(presets, tmp_path):
    src = tmp_path / "g.png"
    iio.imwrite(src, smooth_image(20, 20)[..., 1])
    assert main(["compress", "-m", "16c", str(src)]) == 0
    assert main(["decompress", str(src.with_suffix(".l3ic")), "-o", str(tmp_path / "h.png")]) == 0
    assert iio.imread(tmp_path / "h.png").shape == (20, 20)
    np.testing.assert_array_equal(iio.imread(tmp_path / "h.png").shape, (20, 20))


def test_warnings_are_one_line(presets, tmp_path, capsys):
    deep = tmp_path / "deep.png"
    iio.imwrite(deep, smooth_image(20, 20)[..., 1].astype(np.uint16) * 257)
    assert iio.imread(deep).dtype == np.uint16
    assert main(["compress", "-m", "16c", str(deep)]) == 0
    err = capsys.readouterr().err
    assert [line for line in err.splitlines() if "warning" in line.lower()] == [
        f"l3ic: warning: {deep}: 16-bit image converted to 8 bits"
    ]
    assert "UserWarning" not in err


@pytest.mark.parametrize(
    "name, shown", [("out.xyz", "unknown image format '.xyz'"), ("out", "extension")]
)
def test_unknown_output_format_refused_before_decoding(
    presets, png, monkeypatch, capsys, name, shown
):
    assert main(["compress", "-m", "16c", str(png)]) == 0
    capsys.readouterr()

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded before checking the output format")

    monkeypatch.setattr(l3ic.api, "decompress", no_decoding)
    out = png.with_name(name)
    assert main(["decompress", str(png.with_suffix(".l3ic")), "-o", str(out)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"l3ic: error: {png.with_suffix('.l3ic')}: ")
    assert shown in err[0] and "this install writes .png, .jpg" in err[0]
    assert not out.exists()


def test_an_unwritable_known_format_is_not_offered(presets, png, monkeypatch, capsys):
    # Without a plugin that writes .tif, the message says so and offers only what this
    # install writes (it once offered .tif for .tif).
    from l3ic import cli

    assert main(["compress", "-m", "16c", str(png)]) == 0
    writable = cli._writable
    monkeypatch.setattr(cli, "_writable", lambda suffix: suffix != ".tif" and writable(suffix))
    out = png.with_name("out.tif")
    assert main(["decompress", str(png.with_suffix(".l3ic")), "-o", str(out)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "no installed imageio plugin writes '.tif' images" in err[0]
    assert ".tif" not in err[0].split("this install writes")[1] and not out.exists()


@pytest.mark.parametrize("command", ["decompress", "info"])
def test_folder_input_is_named_a_folder(presets, tmp_path, capsys, command):
    folder = tmp_path / "pictures"
    folder.mkdir()
    assert main([command, str(folder)]) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"l3ic: error: {folder}: is a folder, not an .l3ic file"
    ]
    assert list(tmp_path.iterdir()) == [folder]


@pytest.mark.parametrize(
    "command, name", [("compress", "e.png"), ("decompress", "e.l3ic"), ("info", "e.l3ic")]
)
def test_an_empty_file_gets_one_message_from_every_command(
    presets, tmp_path, capsys, command, name
):
    empty = tmp_path / name
    empty.write_bytes(b"")
    assert main([command, str(empty)]) == 1
    assert capsys.readouterr().err.splitlines() == [f"l3ic: error: {empty}: is empty (0 bytes)"]


def test_compress_refuses_an_image_name_and_warns_on_other_names(presets, png, capsys):
    assert main(["compress", "-m", "16c", str(png), "-o", str(png.with_name("x.webp"))]) == 2
    assert "writes an .l3ic file" in capsys.readouterr().err
    assert not png.with_name("x.webp").exists()
    assert main(["compress", "-m", "16c", str(png), "-o", str(png.with_name("x.bin"))]) == 0
    assert capsys.readouterr().err.splitlines() == [
        f"l3ic: warning: {png.with_name('x.bin')}: an .l3ic file is written"
    ]
    assert png.with_name("x.bin").read_bytes()[:4] == b"L3IC"


def test_a_bad_shard_size_is_bad_usage(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["convert", str(tmp_path), str(tmp_path / "out"), "--shard-size", "2XB"])
    assert e.value.code == 2 and "not a size in bytes" in capsys.readouterr().err


def test_info_takes_many_files_and_reports_each_bad_one(presets, png, tmp_path, capsys):
    assert main(["compress", "-m", "16c", str(png)]) == 0
    good, bad = png.with_suffix(".l3ic"), tmp_path / "bad.l3ic"
    bad.write_bytes(b"nonsense")
    capsys.readouterr()
    assert main(["info", "--json", str(good), str(bad), str(good)]) == 1
    out, err = capsys.readouterr()
    assert [entry["file"] for entry in json.loads(out)] == [str(good), str(good)]
    assert err.splitlines() == [f"l3ic: error: {bad}: not an .l3ic file (wrong magic bytes)"]
    assert main(["info", str(good), str(good)]) == 0
    assert capsys.readouterr().out.count("l3ic preset 16c") == 2


def test_a_closed_pipe_ends_quietly(presets, png, tmp_path):
    """``l3ic info --json *.l3ic | head -1``: no traceback, exit 141 (as after SIGPIPE)."""
    assert main(["compress", "-m", "16c", str(png)]) == 0
    files = [str(png.with_suffix(".l3ic"))] * 400  # far more JSON than a pipe buffer holds
    with subprocess.Popen(
        [sys.executable, "-m", "l3ic", "info", "--json", *files],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as proc:
        assert proc.stdout.readline().strip() == b"["
        proc.stdout.close()  # the reader goes away
        err = proc.stderr.read().decode()
        assert proc.wait() == 141
    assert err == ""


def test_no_progress_bar_in_a_redirected_stderr(presets, tmp_path):
    paths = []
    for i in range(3):
        paths.append(tmp_path / f"im{i}.png")
        iio.imwrite(paths[-1], smooth_image(16, 16))
    result = subprocess.run(
        [sys.executable, "-m", "l3ic", "compress", "-m", "16c", *map(str, paths)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0 and result.stderr == ""
    assert len(result.stdout.splitlines()) == 3


def test_compress_help_gives_the_presets_in_bits_and_ssim(capsys):
    """From the shipped sidecars' validation figures."""
    with pytest.raises(SystemExit):
        main(["compress", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for name in ("16c", "32c", "64c"):
        assert f"{name} " in text and "bpp at SSIM" in text


def _zlib_level_class(png_bytes: bytes) -> int:
    """FLEVEL of a PNG's zlib stream: 0 for zlib levels 0-1, 1 for 2-5, 2 for 6, 3 for 7-9."""
    idat = png_bytes.index(b"IDAT")
    return png_bytes[idat + 5] >> 6  # the zlib header's FLG byte follows CMF


def test_decompress_writes_fast_png_unless_a_level_is_asked(presets, tmp_path, capsys):
    src = tmp_path / "photo.png"
    iio.imwrite(src, smooth_image(96, 128))
    assert main(["compress", "-m", "16c", str(src), "-o", str(tmp_path / "p.l3ic")]) == 0
    fast, small = tmp_path / "fast.png", tmp_path / "small.png"
    assert main(["decompress", str(tmp_path / "p.l3ic"), "-o", str(fast)]) == 0
    argv = ["decompress", str(tmp_path / "p.l3ic"), "-o", str(small), "--png-level", "9"]
    assert main(argv) == 0
    assert _zlib_level_class(fast.read_bytes()) == 0  # level 1, the default
    assert _zlib_level_class(small.read_bytes()) == 3
    np.testing.assert_array_equal(iio.imread(fast), iio.imread(small))
    with pytest.raises(SystemExit) as e:
        main(["decompress", str(tmp_path / "p.l3ic"), "--png-level", "10"])
    assert e.value.code == 2 and "--png-level" in capsys.readouterr().err
