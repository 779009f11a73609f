"""A meta-path finder that rewrites the source of MMF's own modules as they load.

Only modules named ``mmf`` / ``mmf.*`` / ``mmf_cli.*`` are touched; every other import
goes through Python's normal machinery untouched.  After a module executes, the
module-level fixes registered for it run on the fresh module object.
"""

import importlib.abc
import importlib.machinery
import sys
from collections.abc import Callable, Sequence

SourceRewrite = tuple[str, str]  # (old text, new text)


def is_mmf_module(name: str) -> bool:
    return name in ("mmf", "mmf_cli") or name.startswith(("mmf.", "mmf_cli."))


class _PatchingLoader(importlib.machinery.SourceFileLoader):
    def __init__(self, fullname, path, finder):
        super().__init__(fullname, path)
        self._finder = finder

    def get_code(self, fullname):
        source = self.get_data(self.path).decode("utf-8")
        source = self._finder.rewrite(fullname, source)
        return compile(source, self.path, "exec", dont_inherit=True)

    def exec_module(self, module):
        super().exec_module(module)
        for fix in self._finder.module_fixes.get(module.__name__, ()):
            fix(module)


class MMFPatchFinder(importlib.abc.MetaPathFinder):
    """Finds MMF modules with the path finder, then loads them through the rewriter."""

    def __init__(self):
        self.rewrites: list[tuple[str, Callable[[str], bool], SourceRewrite]] = []
        self.module_fixes: dict[str, list[Callable]] = {}

    def add_rewrite(self, fix_name: str, modules: Callable[[str], bool], old: str, new: str):
        self.rewrites.append((fix_name, modules, (old, new)))

    def add_module_fix(self, module: str, fix: Callable):
        self.module_fixes.setdefault(module, []).append(fix)

    def rewrite(self, fullname: str, source: str) -> str:
        for _, applies, (old, new) in self.rewrites:
            if applies(fullname) and old in source:
                source = source.replace(old, new)
        return source

    def find_spec(self, fullname: str, path: Sequence[str] = None, target=None):
        if not is_mmf_module(fullname):
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or not isinstance(spec.loader, importlib.machinery.SourceFileLoader):
            return spec
        spec.loader = _PatchingLoader(fullname, spec.origin, self)
        return spec


def install(finder: MMFPatchFinder) -> None:
    if any(isinstance(f, MMFPatchFinder) for f in sys.meta_path):
        return
    loaded = sorted(n for n in sys.modules if is_mmf_module(n))
    if loaded:
        raise RuntimeError(
            "mla_bridge must be installed before MMF is imported; already loaded: "
            + ", ".join(loaded[:5])
        )
    sys.meta_path.insert(0, finder)
