"""JSON-e rendering that parses each expression once: json-e's own `render`, output and errors
unchanged, with the parse trees of `${...}`, `$eval`, `$if`, ... kept in a bounded LRU.
"""

from __future__ import annotations

import functools
import importlib
import types
from collections.abc import Callable
from typing import Any

import jsone
from jsone.interpreter import Interpreter
from jsone.parser import Parser

# The module, not the function `jsone.render` that shadows it as an attribute of the package.
jsone_render = importlib.import_module("jsone.render")

# Distinct expressions of the templates a service renders (each `${...}` is keyed by the rest of
# its string): a few thousand trees of a few kB at most.
CACHE_SIZE = 4096

Tree = Any  # a json-e AST node


@functools.lru_cache(maxsize=CACHE_SIZE)
def _tree(source: str) -> Tree:
    """`source` parsed as one whole expression (json-e's `parse`, without evaluating it)."""
    parser = Parser(source, jsone_render.tokenizer)
    tree = parser.parse()
    if parser.current_token is not None:
        raise jsone_render.SyntaxError.unexpected(parser.current_token)
    return tree


@functools.lru_cache(maxsize=CACHE_SIZE)
def _tree_until(source: str, terminator: str) -> tuple[Tree, int]:
    """The expression at the start of `source` up to `terminator`, and where that is (json-e's
    `parse_until_terminator`, without evaluating it)."""
    parser = Parser(source, jsone_render.tokenizer)
    tree = parser.parse()
    if not parser.current_token:
        raise jsone_render.SyntaxError("unterminated ${..} expression")
    if parser.current_token.kind != terminator:
        raise jsone_render.SyntaxError.unexpected(parser.current_token)
    return tree, parser.current_token.start


def _parse(source: Any, context: dict[str, Any]) -> Any:
    if not isinstance(source, str):  # json-e's own error for `$if: 3` and the like
        return jsone_render.parse(source, context)
    return Interpreter(context).interpret(_tree(source))


def _parse_until_terminator(
    source: Any, context: dict[str, Any], terminator: str
) -> tuple[Any, int]:
    if not isinstance(source, str):
        return jsone_render.parse_until_terminator(source, context, terminator)  # type: ignore[no-any-return]
    tree, offset = _tree_until(source, terminator)
    return Interpreter(context).interpret(tree), offset


def _rebound(function: Callable[..., Any], namespace: dict[str, Any]) -> Callable[..., Any]:
    """`function` (json-e's code, as is) looking its global names up in `namespace`."""
    assert isinstance(function, types.FunctionType)
    bound = types.FunctionType(
        function.__code__, namespace, function.__name__, function.__defaults__, function.__closure__
    )
    bound.__kwdefaults__ = function.__kwdefaults__
    return bound


# json-e (4.x) tokenises and parses every expression on every render and has no hook for it:
# its operators call the module-level `jsone.render.parse` and `parse_until_terminator` by name.
# Rather than replace those in json-e for everyone (or copy its code), `render` runs json-e's own
# functions, their code objects as they are, bound to a private copy of the module's namespace in
# which those two names reuse cached trees.
# Proposed upstream: docs/upstream/json-e-expression-cache.md.
def _cached_render() -> Callable[[Any, dict[str, Any]], Any]:
    """json-e's `render`, with every function of `jsone.render` (the operators, `renderValue`,
    `interpolate`) bound to a copy of that module's namespace in which parsing is cached."""
    original = vars(jsone_render)
    namespace = dict(original)
    # The operators too: two share a function name (`merge`), so one is in no module name.
    functions = [*original.values(), *jsone_render.operators.values()]
    rebound = {
        id(value): _rebound(value, namespace)
        for value in functions
        if isinstance(value, types.FunctionType) and value.__globals__ is original
    }
    namespace.update(
        {name: rebound[id(value)] for name, value in original.items() if id(value) in rebound}
    )
    namespace["operators"] = {
        name: rebound[id(function)] for name, function in jsone_render.operators.items()
    }
    namespace["parse"] = _parse
    namespace["parse_until_terminator"] = _parse_until_terminator
    # `jsone.render` itself lives in the package's namespace, which imports `renderValue`.
    top = dict(vars(jsone), renderValue=namespace["renderValue"])
    return _rebound(jsone.render, top)


_render = _cached_render()


def render(template: Any, context: dict[str, Any]) -> Any:
    """`jsone.render(template, context)`, each expression parsed once per process."""
    return _render(template, context)


def cache_info() -> dict[str, Any]:
    """How the caches of whole expressions and `${...}` interpolations are used."""
    return {"expressions": _tree.cache_info(), "interpolations": _tree_until.cache_info()}
