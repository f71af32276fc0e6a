"""Tar shards: conversion (local engine and Dask, a worker killed mid-run), the shard indexes,
the streaming loaders through each interface, and damaged shards."""

import json
import os
import signal
import sys
import tarfile
import threading
import time
import warnings

import imageio.v3 as iio
import numpy as np
import pytest
from support import smooth_image

from l3ic import container
from l3ic.cli import main
from l3ic.datasets.latent_shards import LatentShards, split_range, wds_decoder
from l3ic.datasets.shard_convert import convert_shards, parse_size
from l3ic.datasets.shards import ShardSet, read_shards
from l3ic.errors import L3ICError
from l3ic.latent_coder import get_coder


def make_folder(root, per_class=6, size=(24, 32)):
    """A 2-class ImageFolder (cat/, dog/) of small PNGs, and one broken file in dog/."""
    for c, name in enumerate(("cat", "dog")):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            iio.imwrite(root / name / f"{i:02d}.png", smooth_image(*size, seed=10 * c + i))
    (root / "dog" / "zz-broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    return root


def tar_samples(dst):
    """{key: {extension: bytes}} of every member of every shard, read with tarfile."""
    samples = {}
    for path in sorted(dst.glob("shard-*.tar")):
        with tarfile.open(path) as tar:
            for m in tar.getmembers():
                key, ext = m.name.split(".", 1)
                samples.setdefault(key, {})[ext] = tar.extractfile(m).read()
    return samples


def check_dataset(src, dst, expected_sources):
    """Every source in exactly one shard, and the indexes agree with the tars byte for byte."""
    meta = read_shards(dst)
    members = tar_samples(dst)
    sources = [json.loads(s["json"])["source"] for s in members.values()]
    assert sorted(sources) == sorted(expected_sources)  # each exactly once
    assert not list(dst.glob(".*.tmp"))
    total = 0
    for shard in meta["shards"]:
        index = json.loads((dst / shard["name"].replace(".tar", ".json")).read_text())
        data = (dst / shard["name"]).read_bytes()
        assert index["tar_bytes"] == len(data) == shard["bytes"]
        assert len(index["samples"]) == shard["samples"]
        for s in index["samples"]:
            record = data[s["offset"] : s["offset"] + s["bytes"]]
            assert record == members[s["key"]]["l3ic"]
            c = container.parse(record, get_coder(meta["preset"]).channel_order)
            ends = [c.offsets[k] + c.stream_lengths[k] for k in c.channel_order]
            assert s["streams"] == [c.header_bytes, *ends] and ends[-1] == len(record) - 4
            assert int(members[s["key"]]["cls"]) == s["label"]
            assert meta["classes"][s["label"]] == s["source"].split("/")[0]
        total += len(index["samples"])
    assert total == len(expected_sources)
    return meta


def test_convert_to_shards_locally_resume_and_cli(presets, tmp_path, capsys):
    src, dst = make_folder(tmp_path / "src"), tmp_path / "dst"
    code = main(["convert", str(src), str(dst), "-m", "16c", "--layout", "shards",
                 "--shard-size", "6kB"])  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 1 and "converted 12 images" in out and "1 failed" in out
    assert "zz-broken.png" in err
    good = [f"{c}/{i:02d}.png" for c in ("cat", "dog") for i in range(6)]
    meta = check_dataset(src, dst, good)
    assert meta["classes"] == ["cat", "dog"] and len(meta["shards"]) > 2
    # a rerun writes nothing and reports the same dataset
    stamps = {p.name: p.stat().st_mtime_ns for p in dst.iterdir()}
    report = convert_shards(src, dst, "16c", progress=False)
    assert report.converted == 0 and report.skipped == 12 and len(report.failed) == 1
    assert {p.name: p.stat().st_mtime_ns for p in dst.iterdir() if p.suffix == ".tar"} == {
        k: v for k, v in stamps.items() if k.endswith(".tar")
    }
    # a shard whose index is lost (killed between tar and index) is rewritten; new images go to
    # new shards after the planned ones
    (dst / "shard-000001.json").unlink()
    iio.imwrite(src / "cat" / "new.png", smooth_image(24, 32, seed=99))
    report = convert_shards(src, dst, "16c", progress=False)
    assert (
        report.converted == len(json.loads((dst / "shard-000001.json").read_text())["samples"]) + 1
    )
    check_dataset(src, dst, [*good, "cat/new.png"])
    # the other layout, another preset, bad options: one error line, exit 1
    assert main(["convert", str(src), str(dst), "-m", "16c"]) == 1
    assert main(["convert", str(src), str(dst), "-m", "32c", "--layout", "shards"]) == 1
    for usage in (["--layout", "files", "--engine", "dask"], ["--shard-size", "lots"]):
        with pytest.raises(SystemExit) as e:  # bad usage: exit 2
            main(["convert", str(src), str(tmp_path / "x"), *usage])
        assert e.value.code == 2
    err = capsys.readouterr().err
    assert "holds tar shards" in err and "preset 16c" in err and "need --layout shards" in err
    assert "not a size" in err
    assert parse_size("256MB") == 256 * 2**20 and parse_size("1.5k") == 1536


def test_dask_engine_survives_a_killed_worker(presets, tmp_path):
    distributed = pytest.importorskip("distributed")
    src, dst = make_folder(tmp_path / "src", per_class=20), tmp_path / "dst"
    good = [f"{c}/{i:02d}.png" for c in ("cat", "dog") for i in range(20)]
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    )
    client = distributed.Client(cluster)
    try:
        result = {}

        def run():
            result["report"] = convert_shards(
                src, dst, "16c", engine="dask", address=cluster.scheduler_address,
                shard_size=1, progress=False,
            )  # fmt: skip

        thread = threading.Thread(target=run)
        thread.start()
        deadline, killed = time.monotonic() + 120, None
        while killed is None and time.monotonic() < deadline:
            busy = [w for w, keys in client.processing().items() if keys]
            if busy and list(dst.glob("shard-*.json")):
                pids = client.run(os.getpid, workers=[busy[0]])
                assert thread.is_alive()  # mid-run: some shards done, some being written
                os.kill(pids[busy[0]], signal.SIGKILL)
                killed = busy[0]
            time.sleep(0.05)
        thread.join(300)
        assert killed is not None and not thread.is_alive()
        # the workers wrote latents without TensorFlow (ONNX Runtime runs the encoder)
        loaded = client.run(
            lambda: sorted({"tensorflow", "keras", "l3ic.datasets.shards"} & set(sys.modules))
        )
        assert ["l3ic.datasets.shards"] in loaded.values() and all(
            m in (["l3ic.datasets.shards"], []) for m in loaded.values()
        )
    finally:
        client.close()
        cluster.close()
    report = result["report"]
    assert report.converted == 40 and [f for f, _ in report.failed] == ["dog/zz-broken.png"]
    meta = check_dataset(src, dst, good)
    assert len(meta["shards"]) == 41  # one image per shard: shard_size 1 byte
    # what the loaders read is what was written
    coder = get_coder("16c")
    members = tar_samples(dst)
    first = next(iter(LatentShards(dst)))[0]
    assert np.array_equal(first, coder.read(members["000000000"]["l3ic"])[0])


@pytest.fixture(scope="module")
def shards(tmp_path_factory, models_dir):
    """A 2-class dataset of 12 images in 5 shards, converted with the test 16c preset through
    the Dask engine (a LocalCluster of 2 workers)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("L3IC_MODELS_DIR", str(models_dir))
    from l3ic import api, latent_coder

    api._shared_codec.cache_clear()
    latent_coder.get_coder.cache_clear()
    root = tmp_path_factory.mktemp("shards")
    src = make_folder(root / "src")
    (src / "dog" / "zz-broken.png").unlink()
    pytest.importorskip("distributed")
    report = convert_shards(
        src, root / "dst", "16c", engine="dask", workers=2, shard_size=7000, progress=False
    )
    assert report.converted == 12 and not report.failed
    yield root / "dst"
    mp.undo()
    api._shared_codec.cache_clear()
    latent_coder.get_coder.cache_clear()


def test_streaming_splits_ranks_and_workers_evenly(shards):
    full = list(LatentShards(shards))
    assert len(full) == 12 and full[0][0].shape == (3, 4, 16) and full[0][0].dtype == np.float32
    assert [y for _, y in full] == [0] * 6 + [1] * 6
    keyed = {x.tobytes(): y for x, y in full}
    for epoch in range(3):
        seen = []
        for rank in range(5):
            ds = LatentShards(
                shards, shuffle=True, shuffle_buffer=3, seed=7, rank=rank, world_size=5
            )
            ds.set_epoch(epoch)
            got = list(ds)
            assert len(got) == len(ds) == 2  # 12 // 5 on every rank: 2 left over
            parts = [list(ds._read(ds.plan(w, 3))) for w in range(3)]
            assert sorted(len(p) for p in parts) == [0, 1, 1]
            seen += [x.tobytes() for x, _ in got]
        assert len(set(seen)) == 10 and set(seen) <= set(keyed)  # each sample at most once
    orders = []
    for epoch in range(2):
        ds = LatentShards(shards, shuffle=True, seed=1)
        ds.set_epoch(epoch)
        orders.append([x.tobytes() for x, _ in ds])
    assert orders[0] != orders[1] and sorted(orders[0]) == sorted(orders[1])
    assert split_range(10, 3, 0) == (0, 3) and split_range(10, 3, 2) == (6, 10)


def test_channel_subsets_read_only_their_bytes(shards, monkeypatch):
    full = [x for x, _ in LatentShards(shards)]
    reads = []
    real = os.pread
    monkeypatch.setattr(os, "pread", lambda fd, n, off: reads.append(n) or real(fd, n, off))
    for channels in ([3, 0], [0, 1, 2, 3, 4, 5, 6, 7]):
        reads.clear()
        ds = LatentShards(shards, channels)
        got = [x for x, _ in ds]
        assert all(np.array_equal(g, f[..., channels]) for g, f in zip(got, full, strict=True))
        sh = ds.shards
        at = {k: i for i, k in enumerate(get_coder("16c").channel_order)}  # stream positions
        wanted = sum(
            s["streams"][0] + sum(s["streams"][at[k] + 1] - s["streams"][at[k]] for k in channels)
            for i in range(len(sh.names))
            for s in sh.samples(i)
        )
        assert (
            sum(reads)
            == wanted
            < sum(s["bytes"] for i in range(len(sh.names)) for s in sh.samples(i))
        )
    top = LatentShards(shards, top_channels=4)
    assert top.channels == get_coder("16c").top_channels(4)
    reads.clear()
    assert sum(1 for _ in top) == 12
    assert len(reads) == 12  # the 4 most important channels: one read (a prefix) per record
    assert reads == [s["streams"][4] for i in range(len(sh.names)) for s in top.shards.samples(i)]
    decoded = next(iter(LatentShards(shards, top_channels=4, decode=True)))[0]
    assert decoded.shape == (24, 32, 3) and 0 <= decoded.min() and decoded.max() <= 1


def test_decoding_runs_in_batches_and_keeps_each_sample(shards, monkeypatch):
    from l3ic.api import get_codec
    from l3ic.datasets import latent_shards

    codec = get_codec("16c")
    one_by_one = [
        (codec.decode_latent(q.astype(np.int8), (24, 32)).astype(np.float32) / 255.0, label)
        for q, label in LatentShards(shards)
    ]  # the latents (yielded as float32, exact) decoded one at a time
    calls = []
    real = type(codec).decode_latent_batch
    monkeypatch.setattr(
        type(codec), "decode_latent_batch",
        lambda self, qs, shapes, s=None: calls.append(len(qs)) or real(self, qs, shapes, s),
    )  # fmt: skip
    monkeypatch.setattr(latent_shards, "DECODE_BATCH", 5)
    batched = list(LatentShards(shards, decode=True))
    assert calls == [5, 5, 2]  # 12 samples, 5 per call
    assert len(batched) == len(one_by_one) == 12
    for (x, label), (y, ref_label) in zip(batched, one_by_one, strict=True):
        assert label == ref_label and np.array_equal(x, y)


def test_torch_webdataset_keras_and_tf_interfaces(shards):
    import keras
    import torch
    import webdataset as wds

    from l3ic.datasets.keras_data import ShardBatches, as_tf_dataset
    from l3ic.datasets.torch_data import TorchLatentShards

    full = {x.tobytes() for x, _ in LatentShards(shards)}
    data = TorchLatentShards(shards, shuffle=True)
    data.set_epoch(1)
    batches = list(torch.utils.data.DataLoader(data, batch_size=4, num_workers=2))
    xs = [x.numpy().tobytes() for b, _ in batches for x in b]
    assert len(xs) == 12 and set(xs) == full  # two workers, each sample once
    urls = [str(p) for p in sorted(shards.glob("shard-*.tar"))]
    pipe = wds.DataPipeline(
        wds.SimpleShardList(urls), wds.tarfile_to_samples(), wds.decode(wds_decoder()),
        wds.to_tuple("l3ic", "cls"),
    )  # fmt: skip
    got = list(pipe)
    assert {x.tobytes() for x, _ in got} == full and [y for _, y in got] == [0] * 6 + [1] * 6
    # and as the source of a webdataset pipeline
    pipe = wds.DataPipeline(TorchLatentShards(shards), wds.shuffle(5), wds.batched(5))
    assert sorted(len(y) for _, y in pipe) == [2, 5, 5]
    pydata = ShardBatches(shards, batch_size=5, top_channels=8, rank=1, world_size=2)
    assert sorted(len(pydata[i][1]) for i in range(len(pydata))) == [1, 5]
    model = keras.Sequential(
        [keras.Input((None, None, 8)), keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(2)]
    )
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(pydata, epochs=1, verbose=0)
    tfdata = as_tf_dataset(LatentShards(shards, top_channels=2), batch_size=5)
    assert [tuple(x.shape) for x, _ in tfdata] == [(5, 3, 4, 2), (5, 3, 4, 2), (2, 3, 4, 2)]


def _copy(shards, tmp_path):
    dst = tmp_path / "copy"
    dst.mkdir()
    for p in shards.iterdir():
        (dst / p.name).write_bytes(p.read_bytes())
    return dst


def test_damaged_shards_raise_naming_the_shard_or_are_skipped(shards, tmp_path):
    dst = _copy(shards, tmp_path)
    index = json.loads((dst / "shard-000001.json").read_text())
    sample = index["samples"][0]
    data = bytearray((dst / "shard-000001.tar").read_bytes())
    data[sample["offset"] + sample["streams"][1] + 1] ^= 0xFF  # inside channel 1's stream
    (dst / "shard-000001.tar").write_bytes(bytes(data))
    with pytest.raises(L3ICError, match=f"shard-000001.tar, sample {sample['key']}"):
        list(LatentShards(dst))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = LatentShards(dst, on_error="skip")
        assert len(list(ds)) == 11 and ds.skipped[0][1] == sample["key"]
    assert "skipped 1" in str(caught[-1].message)
    (dst / "shard-000001.tar").write_bytes((shards / "shard-000001.tar").read_bytes())
    (dst / "shard-000002.tar").write_bytes((dst / "shard-000002.tar").read_bytes()[:-700])
    with pytest.raises(L3ICError, match="shard-000002.tar has .* bytes, its index says"):
        list(LatentShards(dst))
    (dst / "shard-000003.tar").unlink()
    with pytest.raises(L3ICError, match="cannot open shard .*shard-000003.tar"):
        ShardSet(dst).read(3, 0, [0])
    index = json.loads((dst / "shard-000000.json").read_text())
    index["samples"][0]["streams"][2] += 4  # the index disagrees with the record's header
    (dst / "shard-000000.json").write_text(json.dumps(index))
    with pytest.raises(L3ICError, match="shard-000000.tar, sample 000000000 .*does not match"):
        ShardSet(dst).read(0, 0, [1])
    with warnings.catch_warnings(record=True):
        ds = LatentShards(dst, channels=[1], on_error="skip")
        n = len(list(ds))
    # skipped: one sample of shard 0, and shards 2 and 3 whole
    assert n == 12 - 1 - sum(read_shards(dst)["shards"][i]["samples"] for i in (2, 3)) > 0
    meta = json.loads((dst / "shards.json").read_text())
    del meta["shards"][1]["samples"]  # a conversion that did not finish
    (dst / "shards.json").write_text(json.dumps(meta))
    with pytest.raises(L3ICError, match="shard-000001.tar is not finished"):
        ShardSet(dst)


def test_wds_decoder_channels_and_other_members(shards):
    members = tar_samples(shards)
    record = members["000000000"]["l3ic"]
    full = get_coder("16c").read(record)[0]
    handler = wds_decoder([2, 5])
    assert np.array_equal(handler(".l3ic", record), full[..., [2, 5]])
    assert handler(".cls", b"0") is None
    top = wds_decoder(top_channels=3, preset="16c")(".l3ic", record)
    assert np.array_equal(top, full[..., get_coder("16c").top_channels(3)])
    with pytest.raises(L3ICError):
        wds_decoder(top_channels=3)


# ----- hostile and damaged metadata, descriptors ------------------------------------------


@pytest.mark.parametrize(
    "shard, field",
    [
        ({"name": "../victim.txt", "first_key": 0, "sources": ["cat/00.png"]}, "name"),
        ({"name": "/tmp/x.tar", "first_key": 0, "sources": ["cat/00.png"]}, "name"),
        ({"name": "shard-000000.tar", "first_key": 0, "sources": ["cat/../../s/p.png"]}, "sources"),
        ({"name": "shard-000000.tar", "first_key": 0, "sources": ["/etc/passwd"]}, "sources"),
        ({"name": "shard-000000.tar", "first_key": 0, "sources": ["bird/00.png"]}, "sources"),
        ({"name": "shard-000000.tar", "first_key": -3, "sources": []}, "first_key"),
        ({"name": "shard-000000.tar", "first_key": 0, "sources": "cat/00.png"}, "sources"),
    ],
)
def test_a_hostile_shard_list_stops_the_resume_before_anything_is_written(
    presets, tmp_path, capsys, shard, field
):
    # shards.json decides where convert reads and writes when it resumes: every name and
    # source is checked first, then one error line, exit 1, and nothing read or written.
    src, dst = make_folder(tmp_path / "src", per_class=1), tmp_path / "dst"
    dst.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("mine")
    meta = {"format": "l3ic-shards", "version": 1, "preset": "16c", "fingerprint": "0" * 16,
            "classes": ["cat", "dog"], "shards": [shard]}  # fmt: skip
    (dst / "shards.json").write_text(json.dumps(meta))
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    assert main(["convert", str(src), str(dst), "-m", "16c", "--layout", "shards"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("l3ic: error: ") and f"shards[0].{field}" in err[0]
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
    assert victim.read_text() == "mine"


def test_shard_files_that_l3ic_did_not_write_are_never_overwritten(presets, tmp_path, capsys):
    src, dst = make_folder(tmp_path / "src", per_class=1), tmp_path / "dst"
    dst.mkdir()
    (dst / "shard-000000.tar").write_text("mine")  # no shards.json: not l3ic's
    assert main(["convert", str(src), str(dst), "-m", "16c", "--layout", "shards"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "holds shard-000000.tar but no shards.json" in err[0]
    assert [p.name for p in dst.iterdir()] == ["shard-000000.tar"]
    assert (dst / "shard-000000.tar").read_text() == "mine"


DAMAGES = {
    "an item that is a number": lambda ix: ix["samples"].__setitem__(0, 5),
    "an empty item": lambda ix: ix["samples"].__setitem__(0, {}),
    "a negative offset": lambda ix: ix["samples"][0].update(offset=-512),
    "a terabyte record": lambda ix: ix["samples"][0].update(bytes=2**40),
    "a record past the tar": lambda ix: ix["samples"][0].update(offset=ix["tar_bytes"] - 8),
    "a label that is text": lambda ix: ix["samples"][0].update(label="cat"),
    "a label past the classes": lambda ix: ix["samples"][0].update(label=7),
    "a stream position missing": lambda ix: ix["samples"][0]["streams"].pop(),
    "stream positions out of order": lambda ix: ix["samples"][0]["streams"].reverse(),
    "streams that are not a list": lambda ix: ix["samples"][0].update(streams=None),
    "a key that is a number": lambda ix: ix["samples"][0].update(key=3),
    "a width of zero": lambda ix: ix["samples"][0].update(width=0),
    "tar_bytes as text": lambda ix: ix.update(tar_bytes="many"),
    "samples that are not a list": lambda ix: ix.update(samples={"0": 1}),
    "failed that is not a list": lambda ix: ix.update(failed=None),
    "another shard's index": lambda ix: ix.update(shard="shard-000000.tar"),
    "a list instead of an index": lambda ix: ix.clear(),
}


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_a_damaged_shard_index_is_an_l3icerror_and_is_skipped(shards, tmp_path, damage):
    dst = _copy(shards, tmp_path)
    index = json.loads((dst / "shard-000001.json").read_text())
    DAMAGES[damage](index)
    (dst / "shard-000001.json").write_text(json.dumps(index or [5]))
    with pytest.raises(L3ICError, match="shard-000001.json"):
        ShardSet(dst).samples(1)
    with pytest.raises(L3ICError, match="shard-000001"):
        list(LatentShards(dst))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = LatentShards(dst, channels=[0, 3], on_error="skip")
        n = len(list(ds))
    assert n == 12 - read_shards(dst)["shards"][1]["samples"]
    assert ds.skipped[0][0] == "shard-000001.tar" and "skipped 1" in str(caught[-1].message)


@pytest.mark.parametrize(
    "change",
    [
        lambda m: m["shards"][0].update(name="../shard-000000.tar"),
        lambda m: m["shards"][1].update(samples=-1),
        lambda m: m["shards"][2].update(first_key="7"),
        lambda m: m.update(classes="cat"),
        lambda m: m.update(shards=None),
        lambda m: m.update(preset=16),
    ],
)
def test_a_damaged_shard_list_is_an_l3icerror(shards, tmp_path, change):
    dst = _copy(shards, tmp_path)
    meta = json.loads((dst / "shards.json").read_text())
    change(meta)
    (dst / "shards.json").write_text(json.dumps(meta))
    with pytest.raises(L3ICError, match="shards.json"):
        LatentShards(dst)


def _open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts /proc/self/fd")
def test_loaders_close_their_shard_files(shards):
    import gc

    gc.collect()
    before = _open_descriptors()
    loaders = [LatentShards(shards) for _ in range(30)]
    for ds in loaders:
        assert len(list(ds)) == 12  # every shard opened
    assert _open_descriptors() >= before + 30 * 5  # each loader holds its 5 shards
    for ds in loaders[:10]:
        ds.close()
    for ds in loaders[10:20]:
        with ds:
            next(iter(ds))  # reopens one shard, closed again at the end of the block
    del ds, loaders  # the last ten are dropped without closing
    gc.collect()
    assert _open_descriptors() == before
