"""The MMF builder shared by the paper's datasets (``cremad``, ``ks``, ``food101``, ``mvsa``,
``iemocap``): reads ``dataset_config.<name>`` and calls the dataset module's ``load_split``
(framework-free, :mod:`mla_plugin.data`). Missing data stops the run before training with a
message saying where the data must be and how to get it."""

from mmf.common.registry import registry

from mla_plugin.builders.auto import DataDrivenBuilder, as_list, resolve_path
from mla_plugin.data.paths import default_cache_path, default_data_path
from mla_plugin.data.text import check_text_encoder

COMMON_KEYS = (
    "seed",
    "limit",
    "test_fraction",
    "val_fraction",
    "mel_bins",
    "target_length",
    "fps",
    "num_frames",
    "image_size",
    "tokenizer",
    "max_length",
    "missing_rate",
    "mask_scheme",
    "on_bad_sample",
)


class MediaBuilder(DataDrivenBuilder):
    """Subclasses set ``NAME``, ``MODULE`` (the data module) and optionally ``EXTRA_PATHS``
    (config keys passed on as paths, e.g. ``frames_dir``)."""

    MODULE = None
    EXTRA_PATHS = ()

    def __init__(self):
        super().__init__(self.NAME)

    def make_reader(self, config, dataset_type):
        data_dir = resolve_path(config.data_dir) or default_data_path(
            f"MLA_{self.NAME.upper()}_DIR", "shared", "data", self.NAME
        )
        cache_dir = resolve_path(config.cache_dir) or default_cache_path(self.NAME)
        kwargs = {k: config[k] for k in COMMON_KEYS if config[k] is not None}
        for k in self.EXTRA_PATHS:
            if config[k] is not None:
                kwargs[k] = str(resolve_path(config[k]))
        lists = config.split_lists
        if lists is not None:
            kwargs["split_lists"] = {s: str(resolve_path(p)) for s, p in lists.items() if p}
        reader = self.MODULE.load_split(
            dataset_type,
            data_dir,
            cache_dir,
            modalities=as_list(config.modalities) or None,
            preprocess=bool(config.preprocess),
            **kwargs,
        )
        check_text_model(reader, self.NAME)
        return reader


def check_text_model(reader, name) -> None:
    """The run's ``bert`` text encoder against the tokenizer of the reader's ids
    (:func:`~mla_plugin.data.text.check_text_encoder`), before training."""
    root = registry.get("config", no_warning=True)
    tok = getattr(reader, "tokenizer", None)
    if root is None or tok is None or name not in str(root.get("datasets") or "").split(","):
        return
    spec = ((root.get("multimodal") or {}).get("encoders") or {}).get("text")
    if spec is not None and spec.get("type") == "bert":
        check_text_encoder(
            tok,
            spec.get("params"),
            f"dataset_config.{name}.tokenizer vs multimodal.encoders.text",
        )
