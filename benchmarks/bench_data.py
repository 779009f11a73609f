"""Data loading from the avdigits fbank cache over decoding the WAV files each epoch.

``avdigits`` computes each clip's Kaldi log-mel fbank (1x100x40) once and keeps it in
``<cache>/fsdd_fbank_*.npz`` (mla_plugin/data/fsdd.py, ``fbank_cache``); a run then
reads the cache once and serves every epoch from memory.  Without the cache every epoch
would decode every clip (``load_wav`` + ``kaldi_fbank``).  Measured on the train split
(2,430 FSDD clips), one run, alternating:

- ``cached``: the split's fbanks from the cache file (``fbank_cache`` on a warm cache:
  read and look up the .npz) and stacked into the batch tensor;
- ``decode``: the same fbanks decoded from the WAV files (``load_wav`` + ``kaldi_fbank``)
  and stacked;
- ``epoch``: one pass of batches of 64 through the trainer's loader path (the MMF
  dataset's batched fetch and MMF's BatchCollator) over the in-memory features, paid
  every epoch in both cases.

Figures: decode / cached (feature acquisition per epoch), and over a 15-epoch run
(the avdigits config), (15 x (decode + epoch)) / (cached + 15 x epoch).

    .venv/bin/python benchmarks/bench_data.py [--rounds 3] [--quick]
"""

import argparse
import shutil
import statistics
import tempfile
from pathlib import Path

import numpy as np
import torch
from _common import cpu_threads, interleaved, machine, ratios, summary, verdict

from mla_plugin.data import avdigits, fsdd
from mla_plugin.data.audio import kaldi_fbank, load_wav


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument(
        "--epochs", type=int, default=15, help="epochs of the run for the whole-run figure"
    )
    p.add_argument(
        "--quick", action="store_true", help="5 clips per class, 1 round (for the tests)"
    )
    args = p.parse_args(argv)
    if args.quick:
        args.rounds = 1
    cpu_threads()
    print(machine())
    per_class = 5 if args.quick else None
    rec_dir, _ = fsdd.list_fsdd(fsdd.default_fsdd_dir())
    cache_dir = avdigits.default_cache_dir()
    if args.quick:  # a private cache for the few clips, so the test needs no prior cache
        cache_dir = Path(tempfile.mkdtemp(prefix="bench_data_"))
    data = avdigits.AVDigitsDataset(
        "train", cache_dir=cache_dir, max_per_class=per_class
    )  # warms the cache
    names = data.audio_files
    print(f"avdigits train split: {len(names)} clips from {rec_dir}; cache {cache_dir}")
    mel, frames = data.feature_shapes["audio"][2], data.feature_shapes["audio"][1]

    def cached():
        fb = fsdd.fbank_cache(rec_dir, names, cache_dir, mel, frames)
        torch.from_numpy(np.stack([fb[n] for n in names]))

    def decode():
        torch.stack(
            [
                kaldi_fbank(*load_wav(rec_dir / n), num_mel_bins=mel, target_length=frames)
                for n in names
            ]
        )

    from mmf.common.batch_collator import BatchCollator

    import mla_plugin

    mla_plugin.register()
    from mla_plugin.builders.base import MultimodalDataset
    from mla_plugin.trainers.sampler import EpochSampler

    wrapped = MultimodalDataset("avdigits", {}, "train", data)
    loader = torch.utils.data.DataLoader(
        wrapped,
        batch_size=64,
        sampler=EpochSampler(len(wrapped), 1),
        collate_fn=BatchCollator("avdigits", "train"),
    )

    def epoch():
        for _ in loader:
            pass

    times = interleaved(
        {"cached": cached, "decode": decode, "epoch": epoch}, args.rounds, 1, warmup=1
    )
    for n in times:
        print(f"{n:7s} seconds {summary(times[n])}")
    r = ratios(times, "decode", "cached")
    print(f"decode/cached per round: {summary(r)}")
    run = [
        args.epochs * (d + e) / (c + args.epochs * e)
        for d, c, e in zip(times["decode"], times["cached"], times["epoch"], strict=False)
    ]
    print(f"{args.epochs}-epoch run, data time without/with the cache: {summary(run)}")
    print(verdict("decode_over_cache_per_epoch", statistics.median(r), None))
    print(
        verdict(
            f"run_data_time_without_over_with_cache_{args.epochs}_epochs",
            statistics.median(run),
            None,
        )
    )
    if args.quick:
        shutil.rmtree(cache_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
