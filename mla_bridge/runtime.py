"""Module fixes: small functions run on an MMF module right after it executes."""

import os

from omegaconf import OmegaConf


def config_only_command_line(configuration_cls) -> None:
    """Let ``mmf_run config=x.yaml`` take ``model`` and ``dataset(s)`` from the file.

    rc10 reads both from the command-line options only and raises when they are
    absent.  Command-line values, when given, still win: they are merged last.
    """
    build_model_config = configuration_cls._build_model_config
    build_dataset_config = configuration_cls._build_dataset_config

    def _with_file_default(self, opts, keys):
        user = self._user_config or {}
        values = {k: opts.get(k) for k in keys}
        if all(v is None for v in values.values()):
            for k in keys:
                values[k] = user.get(k)
        return OmegaConf.merge(opts, values)

    def _build_model_config(self, opts):
        return build_model_config(self, _with_file_default(self, opts, ["model"]))

    def _build_dataset_config(self, opts):
        return build_dataset_config(self, _with_file_default(self, opts, ["dataset", "datasets"]))

    configuration_cls._build_model_config = _build_model_config
    configuration_cls._build_dataset_config = _build_dataset_config


def local_rank() -> int:
    """The process's device index under torchrun (``LOCAL_RANK``), else 0."""
    return int(os.environ.get("LOCAL_RANK", 0))


def checked_set_seed(env_module) -> None:
    """``training.seed`` checked before rc10's ``set_seed`` hands it to numpy: a string
    such as ``abc`` failed there with "Cannot cast scalar from dtype('<U3') ..."."""
    set_seed = env_module.set_seed

    def _set_seed(seed):
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ValueError(
                f"training.seed: {seed!r} must be an integer (-1 or null: a random seed)"
            )
        return set_seed(seed)

    env_module.set_seed = _set_seed
