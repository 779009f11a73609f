"""Cache the paper datasets' expensive inputs once, so training never decodes media.

Usage::

    python -m mla_plugin.data.preprocess <dataset> --root <data_dir> --out <cache_dir> [options]

    <dataset>: cremad | ks | food101 | mvsa | iemocap

What is cached (see :mod:`mla_plugin.data.media_cache`): audio -> Kaldi fbank ``fbank/<id>.npy``
(128 mel bins, 10 ms shift, padded/cut to 1024 frames, the authors' parameters); video ->
frames at 1 fps in ``frames/<id>/`` (ffmpeg; the 3 used frames are selected from the sorted
frames at load time); text -> token ids ``text/tokens_*.npz`` (transformers tokenizer, no
special tokens, padded/truncated to 256).

The command is resumable: finished entries are kept (files are written atomically), so an
interrupted run continues where it stopped. Point ``dataset_config.<dataset>.cache_dir`` at
the same ``--out`` folder for training (with the same --mel-bins/--target-length/--tokenizer/
--max-length as the config). ``mmf_run`` also runs this step for whatever is missing unless
``dataset_config.<dataset>.preprocess=false``.

When no local tokenizer exists, the fallback vocabulary is trained on the train texts of the
very split training builds (the dataset module's ``SPLIT_OPTIONS``); pass the config's
--seed/--split-list/--test-fraction/--val-fraction when they differ from the defaults.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from .errors import DataError
from .media_cache import preprocess_records
from .splits import assign_splits

DATASETS = ("cremad", "ks", "food101", "mvsa", "iemocap")


def train_records(mod, records, args):
    """The train split of ``records`` exactly as ``mod.load_split`` builds it for training."""
    options = dict(mod.SPLIT_OPTIONS)
    if args.test_fraction is not None:
        options["test_fraction"] = args.test_fraction
    if args.val_fraction is not None:
        options["val_fraction"] = args.val_fraction
    return assign_splits(
        records, args.seed, dict(args.split_list) or None, name=mod.NAME, **options
    )["train"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m mla_plugin.data.preprocess", description=__doc__.split("\n\n")[0]
    )
    ap.add_argument("dataset", choices=DATASETS)
    ap.add_argument(
        "--root", required=True, help="the dataset folder in its owners' layout (docs/datasets.md)"
    )
    ap.add_argument(
        "--out", required=True, help="cache folder (= dataset_config.<dataset>.cache_dir)"
    )
    ap.add_argument("--modalities", nargs="+", default=None, help="default: all of the dataset's")
    ap.add_argument(
        "--frames-dir", default=None, help="cremad: already extracted frames <dir>/<clip>/*.jpg"
    )
    ap.add_argument("--faces-dir", default=None, help="iemocap: face crops <dir>/<utterance>/*.jpg")
    ap.add_argument("--mel-bins", type=int, default=128)
    ap.add_argument("--target-length", type=int, default=1024)
    ap.add_argument("--fps", type=float, default=1.0)
    ap.add_argument(
        "--tokenizer",
        default="bert-base-uncased",
        help="local tokenizer folder or name in the local HF cache (fallback: a WordPiece "
        "vocabulary trained on the train texts)",
    )
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument(
        "--seed",
        type=int,
        default=0,
        help="data seed (= dataset_config.<dataset>.seed; only for the fallback vocabulary's train split)",
    )
    ap.add_argument(
        "--split-list",
        nargs=2,
        action="append",
        default=[],
        metavar=("SPLIT", "FILE"),
        help="= dataset_config.<dataset>.split_lists.<SPLIT> (repeat for train, test, val)",
    )
    ap.add_argument(
        "--test-fraction",
        type=float,
        default=None,
        help="= dataset_config.<dataset>.test_fraction (default: the dataset's)",
    )
    ap.add_argument(
        "--val-fraction",
        type=float,
        default=None,
        help="= dataset_config.<dataset>.val_fraction (default: the dataset's)",
    )
    ap.add_argument(
        "--skip-bad",
        action="store_true",
        help="skip unreadable samples (counted) instead of stopping",
    )
    args = ap.parse_args(argv)

    mod = importlib.import_module(f"mla_plugin.data.{args.dataset}")
    modalities = list(args.modalities or mod.MODALITIES)
    scan_kwargs = {}
    if args.dataset in ("cremad", "iemocap"):
        scan_kwargs["modalities"] = modalities
    if args.dataset == "cremad":
        scan_kwargs["frames_dir"] = args.frames_dir
    if args.dataset == "iemocap":
        scan_kwargs["faces_dir"] = args.faces_dir
    try:
        records, classes = mod.scan(args.root, **scan_kwargs)
        if not records:
            raise DataError(f"{args.dataset}: no samples found in {args.root}. {mod.HOWTO}")
        train = train_records(mod, records, args) if "text" in modalities else []
        counts = preprocess_records(
            records,
            Path(args.out),
            [m for m in modalities if m in ("audio", "video", "text")],
            mel_bins=args.mel_bins,
            target_length=args.target_length,
            fps=args.fps,
            tokenizer=args.tokenizer,
            max_length=args.max_length,
            tokenizer_texts=[r.text for r in train if r.text is not None] or None,
            on_bad_sample="skip" if args.skip_bad else "error",
            desc=args.dataset,
        )
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        f"{args.dataset}: {len(records)} samples, {len(classes)} classes; cache {args.out}: "
        f"{counts['done']} computed, {counts['cached']} already cached, {counts['failed']} failed"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
