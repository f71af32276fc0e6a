"""Converting an image tree to tar shards (``shards``), a task per shard, on an engine.

Engines:

- ``local``: this machine; ``workers`` processes (1: in this process).
- ``dask``: a Dask ``distributed`` cluster: a ``LocalCluster`` of ``workers`` single-threaded
  processes, or the running cluster at ``address`` (its workers need l3ic installed, and read
  SRC and write DST at the same paths). Dask reruns the task of a worker that dies on another
  worker; a shard is only ever renamed into place whole, so every image ends up in exactly one
  finished shard.

The plan (which image goes to which shard, and each image's key) is fixed in ``shards.json``
before any shard is written, so a second run, after a crash or a kill, writes only the shards
that are not finished (``shards.finished_shard``) and gives the same dataset. Images added to
SRC since the plan go to new shards at its end; new class folders get new label indices after
the existing ones. Workers load the network on the "auto" runtime (no TensorFlow) unless
``runtime`` names another; the worker processes this starts (local pool, LocalCluster) share the
cores among them: ``$L3IC_THREADS`` = cores // workers each, unless it is set.
"""

import json
import logging
import os
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from ..atomic_files import write_json_atomic
from ..errors import L3ICError, one_line
from ..presets import load_sidecar
from . import ENGINES
from .convert import Report, check_args, find_images, show_progress
from .pool import run_tasks, worker_env
from .shards import (
    SHARDS_FORMAT,
    SHARDS_NAME,
    SHARDS_VERSION,
    ShardTask,
    check_shard_list,
    finished_shard,
    shard_name,
    write_shard,
)

__all__ = ["DEFAULT_SHARD_SIZE", "convert_shards", "local_cluster", "parse_size"]

DEFAULT_SHARD_SIZE = 256 * 2**20  # bytes: "a few hundred MB", as WebDataset advises
TAR_BYTES_PER_IMAGE = 3 * 512 + 3 * 256 + 128  # three member headers, their padding, the JSON


def parse_size(text: str) -> int:
    """A byte count such as ``256MB``, ``1.5GiB``, ``4096`` (``k``/``M``/``G``: powers of 1024).

    Raises:
        L3ICError: not a positive size.
    """
    t = text.strip().upper().removesuffix("B").removesuffix("I")
    scale = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}.get(t[-1:], 1)
    try:
        value = float(t[:-1] if scale > 1 else t) * scale
    except ValueError:
        value = 0
    if not value >= 1:
        raise L3ICError(f"not a size in bytes: {text!r} (e.g. 256MB)")
    return int(value)


def _estimate_bytes(src: Path, rels: list[Path], preset: str) -> float:
    """Estimated shard bytes per image: the preset's validation bpp at the images' mean size."""
    from PIL import Image

    bpp = load_sidecar(preset).get("validation", {}).get("bpp", 1.0)
    pixels = []
    for rel in rels[:: max(1, len(rels) // 16)][:16]:
        try:
            with Image.open(src / rel) as im:
                pixels.append(im.width * im.height)
        except Exception:  # noqa: BLE001 - an unreadable image says nothing about sizes
            continue
    mean = sum(pixels) / len(pixels) if pixels else 256 * 256
    return mean * bpp / 8 + TAR_BYTES_PER_IMAGE


def _plan(src: Path, dst: Path, preset: str, fp: str, shard_size: int) -> dict:
    """The dataset's plan: the existing ``shards.json`` extended by new images, or a new one."""
    sources = find_images(src)
    path = dst / SHARDS_NAME
    if path.exists():
        try:
            meta = json.loads(path.read_text())
        except (OSError, ValueError):
            meta = None
        if not isinstance(meta, dict) or meta.get("format") != SHARDS_FORMAT:
            raise L3ICError(f"{path} exists and is not an l3ic shard list; use another DST")
        check_shard_list(meta, path, finished=False)  # nothing read or written outside
        if meta["preset"] != preset or meta["fingerprint"] != fp:
            raise L3ICError(
                f"{dst} already holds a conversion by preset {meta['preset']} (weights "
                f"{meta['fingerprint']}); to convert with preset {preset} ({fp}), use another "
                f"DST or delete {dst} first"
            )
    else:
        strays = sorted(p.name for p in dst.glob("shard-*")) if dst.is_dir() else []
        if strays:  # never overwrite a file that l3ic did not write
            raise L3ICError(
                f"{dst} holds {strays[0]} but no {SHARDS_NAME}, so l3ic did not write it; "
                "use another DST"
            )
        meta = {
            "format": SHARDS_FORMAT,
            "version": SHARDS_VERSION,
            "preset": preset,
            "fingerprint": fp,
            "classes": [],
            "shards": [],
        }
    planned = {rel for shard in meta["shards"] for rel in shard["sources"]}
    new = [rel for rel in sources if rel.as_posix() not in planned]
    labels = sorted({rel.parts[0] for rel in new if len(rel.parts) > 1})
    meta["classes"] += [c for c in labels if c not in meta["classes"]]
    if new:
        per_shard = max(1, int(shard_size // _estimate_bytes(src, new, preset)))
        key = sum(len(shard["sources"]) for shard in meta["shards"])
        for i in range(0, len(new), per_shard):
            chunk = new[i : i + per_shard]
            meta["shards"].append(
                {
                    "name": shard_name(len(meta["shards"])),
                    "first_key": key,
                    "sources": [rel.as_posix() for rel in chunk],
                }
            )
            key += len(chunk)
    return meta


def _tasks(meta: dict, src: Path, dst: Path, runtime: str, drop_alpha: bool) -> list[ShardTask]:
    classes, tasks = meta["classes"], []
    for shard in meta["shards"]:
        items = []
        for j, rel in enumerate(shard["sources"]):
            parts = rel.split("/")
            label = classes.index(parts[0]) if len(parts) > 1 else -1
            items.append((f"{shard['first_key'] + j:09d}", rel, label))
        tasks.append(
            ShardTask(
                shard["name"],
                items,
                classes,
                str(src),
                str(dst),
                meta["preset"],
                runtime,
                drop_alpha,
            )
        )
    return tasks


def _run_local(
    tasks: list[ShardTask], workers: int
) -> Iterator[tuple[ShardTask, dict | Exception]]:
    """(task, its shard's index, or the exception that failed it) as the shards finish, on
    this machine (``pool.run_tasks``): a failed shard is reported and the run goes on."""
    yield from run_tasks(write_shard, tasks, workers, catch=(Exception,))


def local_cluster(workers: int):
    """A Dask ``LocalCluster`` of ``workers`` single-threaded processes sharing the cores
    (``pool.worker_env``), quiet and without a dashboard."""
    from distributed import LocalCluster

    return LocalCluster(
        n_workers=workers,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        silence_logs=logging.ERROR,
        env=worker_env(workers),
    )


def _run_dask(
    tasks: list[ShardTask], workers: int, address: str | None
) -> Iterator[tuple[ShardTask, dict | Exception]]:
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise L3ICError(
            'the dask engine needs Dask: pip install "l3ic[dask]" (or use --engine local)'
        ) from None
    cluster = None if address is not None else local_cluster(workers)
    try:
        client = Client(address or cluster, timeout="30s")
    except OSError as e:
        if cluster is not None:
            cluster.close()
        raise L3ICError(f"cannot reach the Dask scheduler at {address}: {one_line(e)}") from None
    run = uuid.uuid4().hex[:8]
    try:
        futures = {
            client.submit(write_shard, task, key=f"l3ic-{task.name}-{run}", pure=False): task
            for task in tasks
        }
        for future in as_completed(futures):
            task = futures[future]
            try:
                yield task, future.result()
            except Exception as e:  # noqa: BLE001 - reported per shard (e.g. KilledWorker)
                yield task, e
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def convert_shards(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    preset: str | None = None,
    *,
    workers: int = 1,
    engine: str = "local",
    address: str | None = None,
    shard_size: int = DEFAULT_SHARD_SIZE,
    drop_alpha: bool = False,
    progress: bool | None = None,
    runtime: str | None = None,
) -> Report:
    """Converts the image tree ``src`` to tar shards under ``dst`` (layout: ``shards``).

    Args:
        src: folder of images, e.g. ImageFolder layout ``src/<class>/<image>``.
        dst: output folder (created if needed); may hold an earlier run of the same conversion.
        preset: preset to compress with (default ``presets.DEFAULT_PRESET``).
        workers: worker processes (local engine or a Dask LocalCluster; ignored with
            ``address``).
        engine: "local" or "dask".
        address: a running Dask scheduler, e.g. ``tcp://10.0.0.1:8786`` (engine "dask").
        shard_size: aimed bytes per shard; the plan puts ``shard_size`` / (estimated bytes per
            image) images in each shard, so shards come out near that size.
        drop_alpha: discard alpha channels instead of failing on RGBA images.
        progress: show a progress bar on stderr (None: when stderr is a terminal).
        runtime: the network's runtime, "auto", "onnx", "openvino" or "keras" (default
            ``$L3IC_RUNTIME``, else "auto").

    Returns:
        The Report (``index`` is ``dst/shards.json``; ``skipped``: images in shards finished
        by an earlier run; ``failed``: every image of the dataset not converted, with why).

    Raises:
        L3ICError: bad arguments, or ``dst`` holds another conversion (then nothing is
            written).
    """
    from tqdm import tqdm

    if engine not in ENGINES:
        raise L3ICError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    if address is not None and engine != "dask":
        raise L3ICError("--address needs --engine dask")
    if shard_size < 1:
        raise L3ICError(f"shard_size must be at least 1 byte, got {shard_size}")
    src, dst, preset, runtime, fp = check_args(src, dst, workers, preset, None, runtime)
    if (dst / "index.json").exists():
        raise L3ICError(f"{dst} holds a conversion to .l3ic files (index.json); use another DST")
    meta = _plan(src, dst, preset, fp, shard_size)
    dst.mkdir(parents=True, exist_ok=True)
    write_json_atomic(dst / SHARDS_NAME, meta)
    report, indexes, todo = Report(index=dst / SHARDS_NAME), {}, []
    for task in _tasks(meta, src, dst, runtime, drop_alpha):
        index = finished_shard(dst, task.name, [key for key, _, _ in task.items])
        if index is None:
            todo.append(task)
        else:
            indexes[task.name] = index
            report.skipped += len(index["samples"])
    t0 = time.perf_counter()
    total = sum(len(task.items) for task in todo)
    bar = tqdm(
        total=total, unit="img", file=sys.stderr, disable=not show_progress(progress), leave=False
    )
    run = _run_dask(todo, workers, address) if engine == "dask" else _run_local(todo, workers)
    with bar:
        for task, result in run:
            bar.update(len(task.items))
            if isinstance(result, Exception):
                reason = f"shard {task.name} failed: {one_line(result)}"
                report.failed += [(rel, reason) for _, rel, _ in task.items]
                bar.set_postfix(failed=len(report.failed))
                continue
            indexes[task.name] = result
            report.converted += len(result["samples"])
            report.bytes_out += result["tar_bytes"]
            report.bytes_in += sum((src / s["source"]).stat().st_size for s in result["samples"])
    report.seconds = time.perf_counter() - t0
    for shard in meta["shards"]:
        index = indexes.get(shard["name"])
        if index is None:
            continue
        shard.update(
            samples=len(index["samples"]), bytes=index["tar_bytes"], failed=len(index["failed"])
        )
        report.failed += [tuple(f) for f in index["failed"]]
        report.warnings += [tuple(w) for w in index.get("warnings", [])]
    report.indexed = sum(shard.get("samples", 0) for shard in meta["shards"])
    write_json_atomic(dst / SHARDS_NAME, meta)
    for leftover in dst.glob(".shard-*.tmp"):  # of writers killed mid-shard; all are done now
        leftover.unlink(missing_ok=True)
    report.failed.sort()
    report.warnings.sort()
    return report
