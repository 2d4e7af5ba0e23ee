"""Griffe extensions for the API reference: lazy packages, example sections.

`LazyExports`: `keras_interp.serving` and `keras_interp.beam` load their public names on first
use from a literal `_NAMES = {"name": "module.path", ...}` table, with
`__all__ = sorted(_NAMES)`, so that importing them imports neither TensorFlow
nor Apache Beam. Griffe reads code statically and cannot evaluate that
`__all__`; this extension reads the table instead and adds each name to the
package as an alias of the object it names, so the API reference renders
every public name under `keras_interp.<package>.<name>`, without importing
the package (Apache Beam need not be installed to build the docs).

`ExampleSections`: the docstrings' `Example:` sections render as code.
"""

from __future__ import annotations

import ast
import re
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


_EXAMPLE = re.compile(r"^(\s*)Example:[ \t]*$", re.MULTILINE)


class ExampleSections(griffe.Extension):
    """Read `Example:` sections as Google-style `Examples:` sections.

    The project's docstrings title their runnable examples `Example:` (the
    Google style guide's spelling); griffe's Google parser knows only
    `Examples:` and would render `Example:` as an admonition, turning each
    `>>>` line into a Markdown block quote (and `x["a"]["b"]` into a broken
    reference link). The docstrings are not changed, only how they are read.
    """

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        docstring = obj.docstring
        if docstring is not None and "Example:" in docstring.value:
            docstring.value = _EXAMPLE.sub(r"\1Examples:", docstring.value)
