"""Stand-ins that MMF's rewritten imports point at (see :mod:`mla_bridge.fixes`)."""

import importlib
import types

import yaml


class _Demjson(types.SimpleNamespace):
    """``demjson.decode`` for ``config_override``: JSON and the unquoted-key object
    syntax MMF documents (``{training: {batch_size: 8}}``) are both YAML flow mappings."""

    @staticmethod
    def decode(text: str):
        return yaml.safe_load(text)


demjson = _Demjson()


class LazyModule(types.ModuleType):
    """Imports the real module on first attribute access, with a clear error if it is
    not installed (MMF imports these at start-up but uses them in one code path)."""

    def __init__(self, name: str, needed_for: str):
        super().__init__(name)
        self._needed_for = needed_for

    def __getattr__(self, attr):
        if attr.startswith("_"):
            raise AttributeError(attr)
        try:
            module = importlib.import_module(self.__name__)
        except ImportError as e:
            raise ImportError(
                f"MMF needs the '{self.__name__}' package for {self._needed_for}; "
                f"it is not installed (pip install {self.__name__})"
            ) from e
        return getattr(module, attr)


lmdb = LazyModule("lmdb", "LMDB feature files")


class _TorchtextVocab(types.SimpleNamespace):
    """torchtext's ``vocab`` module is gone from current torchtext; MMF only uses its
    ``pretrained_aliases`` for GloVe/fastText word vectors."""

    @property
    def pretrained_aliases(self):
        raise ImportError(
            "MMF's pretrained word vectors need torchtext.vocab, which no release "
            "for torch 2.x provides; this bridge does not support them"
        )


torchtext_vocab = _TorchtextVocab()
