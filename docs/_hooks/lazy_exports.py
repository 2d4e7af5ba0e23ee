"""Griffe extension: expose the names of lazily loaded packages.

`keras_interp.serving` and `keras_interp.beam` load their public names on first
use from a literal `_NAMES = {"name": "module.path", ...}` table, with
`__all__ = sorted(_NAMES)`, so that importing them imports neither TensorFlow
nor Apache Beam. Griffe reads code statically and cannot evaluate that
`__all__`; this extension reads the table instead and adds each name to the
package as an alias of the object it names, so the API reference renders
every public name under `keras_interp.<package>.<name>`, without importing
the package (Apache Beam need not be installed to build the docs).
"""

from __future__ import annotations

import ast
from typing import Any

import griffe


class LazyExports(griffe.Extension):
    """Turn a package's `_NAMES` table into its exported aliases."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        for module in _modules(pkg):
            table = module.members.get("_NAMES")
            if table is None or module.exports:
                continue
            names = ast.literal_eval(str(table.value))
            targets = {}
            for name, where in names.items():
                source = pkg.modules_collection[where]
                targets[name] = source.members[name]
            for name, target in targets.items():
                module.set_member(name, griffe.Alias(name, target, parent=module))
            module.exports = sorted(names)


def _modules(module: griffe.Module):
    yield module
    for member in list(module.members.values()):
        if not member.is_alias and member.is_module:
            yield from _modules(member)
