"""Module fixes: small functions run on an MMF module right after it executes."""

import os

from omegaconf import OmegaConf

from mla_bridge import BRIDGE_DIR


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


CONFIG_DIR = os.path.join(BRIDGE_DIR, "configs")


def _versions_as_text(node) -> None:
    """Retag every plain scalar under a ``version`` key as a string, in place."""
    import yaml

    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if (
                isinstance(key, yaml.ScalarNode)
                and key.value == "version"
                and isinstance(value, yaml.ScalarNode)
            ):
                value.tag = "tag:yaml.org,2002:str"
            else:
                _versions_as_text(value)
    elif isinstance(node, yaml.SequenceNode):
        for value in node.value:
            _versions_as_text(value)


def load_zoo(path: str, zoo_type: str):
    """A zoo file (``env.dataset_zoo`` / ``env.model_zoo``) as rc10's ``get_zoo_config``
    loads it, but with every ``version`` read as its text: YAML reads
    ``1.0_2020_10_01`` as the float 1.0202010001, which never equals the version string
    in ``.built.json``, so MMF re-downloads data that is present.  rc10's default path
    (``configs/zoo/<type>.yaml``, absent from the wheel) means the bridge's own zoo."""
    import yaml
    from mmf.utils.general import get_absolute_path

    if path is None or (path == f"configs/zoo/{zoo_type}.yaml" and not os.path.isfile(path)):
        path = os.path.join(CONFIG_DIR, "zoo", f"{zoo_type}.yaml")
    path = get_absolute_path(path)
    with open(path) as f:
        node = yaml.compose(f, Loader=yaml.SafeLoader)
    if node is None:
        return OmegaConf.create()
    _versions_as_text(node)
    loader = yaml.SafeLoader("")
    data = loader.construct_document(node)
    return OmegaConf.create(data or {})


def register_bridge_resolver(configuration_cls) -> None:
    """``${mla_bridge_dir:}`` (this folder) in the dataset configs the bridge supplies;
    rc10 clears all resolvers and registers its own each time it builds a config."""
    register = configuration_cls._register_resolvers

    def _register_resolvers(self):
        register(self)
        OmegaConf.register_resolver("mla_bridge_dir", lambda: BRIDGE_DIR, replace=True)

    configuration_cls._register_resolvers = _register_resolvers


def expected_files(config, splits=("train", "val", "test")) -> list[str]:
    """The annotation files and image folders an MMF dataset config points at."""
    paths = []
    attributes = ["annotations"] + (["images"] if config.get("use_images", False) else [])
    for attribute in attributes:
        for split in splits:
            entries = config[attribute].get(split, [])
            for entry in [entries] if isinstance(entries, str) else entries:
                paths += [os.path.join(config.data_dir, p) for p in entry.split(",")]
    return paths


def supply_dataset_config(name: str, builder_cls) -> None:
    """Point ``builder_cls.config_path`` at the bridge's ``configs/datasets/<name>/
    defaults.yaml`` and have its ``build`` check that the data is where the config says
    (MMF's own layout) before MMF's zoo step, with a FileNotFoundError naming what is
    absent."""
    path = os.path.join(CONFIG_DIR, "datasets", name, "defaults.yaml")
    builder_cls.config_path = classmethod(lambda cls: path)
    parent_build = builder_cls.__mro__[1].build

    def build(self, config, *args, **kwargs):
        missing = [p for p in expected_files(config) if not os.path.exists(p)]
        if missing:
            root = os.path.join(config.data_dir, name, "defaults")
            raise FileNotFoundError(
                f"dataset {name}: no data in MMF's layout under {root} (nothing is "
                f"downloaded); missing: {', '.join(missing)}. Expected "
                f"{root}/annotations/<split>.jsonl (as dataset_config.{name}.annotations "
                f"names them) and {root}/images/img/*.png; set env.data_dir or "
                f"dataset_config.{name}.data_dir (docs/datasets.md)"
            )
        parent_build(self, config, *args, **kwargs)

    builder_cls.build = build
