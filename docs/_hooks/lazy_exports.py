"""Griffe extensions for the API reference: lazy packages, example sections.

`LazyExports`: `keras_interp.serving` and `keras_interp.beam` load their public
names on first use from a literal `_NAMES = {"name": "module.path", ...}` table, with
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
    """Turn a package's `_NAMES` table into its exported aliases, and make every
    name of an `__all__` resolve as it does at run time."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        for module in _modules(pkg):
            _shadowed_submodules(module)
            _computed_names(module)
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


def _shadowed_submodules(module: griffe.Module) -> None:
    """`from keras_interp.methods.scorecam import scorecam` in a package: at run
    time the package attribute is the function (the import runs after the
    submodule is loaded); griffe keeps the submodule. Point the exported name
    at the object the package imports under that name."""
    for name in _names(module):
        member = module.members.get(name)
        if member is None or member.is_alias or not member.is_module:
            continue
        imported = module.imports.get(name)
        if imported is None or imported == member.path:
            continue
        try:
            target = module.modules_collection[imported]
        except KeyError:
            continue
        module.set_member(name, griffe.Alias(name, target, parent=module))


def _computed_names(module: griffe.Module) -> None:
    """An exported name computed by the module's `__getattr__` (`if name ==
    "EXPOSED": ...`) becomes an attribute documented by the `#:` comments
    right after its test."""
    getattr_function = module.members.get("__getattr__")
    if getattr_function is None or not module.exports:
        return
    lines = getattr_function.lines
    for name in _names(module):
        if name in module.members:
            continue
        for number, line in enumerate(lines):
            if f'== "{name}"' in line or f"== '{name}'" in line:
                comments = []
                for following in lines[number + 1 :]:
                    if not following.strip().startswith("#:"):
                        break
                    comments.append(following.strip()[2:].strip())
                attribute = griffe.Attribute(
                    name,
                    lineno=getattr_function.lineno + number,
                    docstring=griffe.Docstring(
                        " ".join(comments) or "Computed on access.",
                        parent=None,
                    ),
                )
                module.set_member(name, attribute)
                attribute.docstring.parent = attribute
                break


def _names(module: griffe.Module) -> list[str]:
    """The literal names of the module's `__all__` (griffe keeps expressions,
    e.g. `*METHODS`, as they are)."""
    return [name for name in module.exports or () if isinstance(name, str)]


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
