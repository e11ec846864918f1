"""The condition language of AnalysisTemplates, evaluated safely (no ``eval``).

Argo Rollouts evaluates ``successCondition`` and ``failureCondition`` with the expr language
(github.com/expr-lang/expr). This is the subset analysis conditions use, with the same meaning:

- literals: numbers (``0.01``, ``1e3``), strings (``'true'``, ``"x"``), ``true``, ``false``,
  ``nil``; the variable ``result``; indexing (``result[0]``) and member access (``result.ok``);
- ``len(x)``, ``isNaN(x)``, ``isInf(x)``, ``asFloat(x)``, ``asInt(x)``, ``all``-free builtins only;
- unary ``-``, ``!``/``not``; ``* / %``, ``+ -``; ``< <= > >= == !=``; ``&&``/``and``;
  ``||``/``or``; parentheses.

Expressions are bounded (``MAX_LENGTH`` characters) and parsed in one linear pass; anything
else is an ``ExprError`` with a one-line message.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

MAX_LENGTH = 1000
MAX_DEPTH = 50

_TOKEN = re.compile(
    r"""\s*(?:
    (?P<num>\d+\.\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?|\d+(?:[eE][-+]?\d+)?)
  | (?P<str>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>&&|\|\||==|!=|<=|>=|[-+*/%<>!()\[\].,])
    )""",
    re.VERBOSE,
)


class ExprError(ValueError):
    """An expression that cannot be parsed or evaluated."""


@dataclass(frozen=True)
class _Tok:
    kind: str
    text: str


def _tokens(source: str) -> list[_Tok]:
    if len(source) > MAX_LENGTH:
        raise ExprError(f"expression longer than {MAX_LENGTH} characters")
    out: list[_Tok] = []
    pos = 0
    end = len(source.rstrip())
    while pos < end:
        match = _TOKEN.match(source, pos)
        if match is None or match.end() == pos:
            raise ExprError(f"unexpected character at {pos}: {source[pos : pos + 10]!r}")
        kind = match.lastgroup or "op"
        out.append(_Tok(kind, match.group(kind)))
        pos = match.end()
    out.append(_Tok("end", ""))
    return out


def _unquote(text: str) -> str:
    body = text[1:-1]
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)), body)


def _num(value: Any, what: str) -> float | int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ExprError(f"{what} needs a number, got {_kind(value)}")
    return value


def _kind(value: Any) -> str:
    return "nil" if value is None else type(value).__name__


def _as_float(value: Any) -> float:
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        try:
            return float(value)
        except ValueError:
            pass
    raise ExprError(f"asFloat: not a number: {str(value)[:40]!r}")


def _as_int(value: Any) -> int:
    return int(_as_float(value))


def _len(value: Any) -> int:
    if isinstance(value, str | list | dict):
        return len(value)
    raise ExprError(f"len: needs a list, map or string, got {_kind(value)}")


BUILTINS: dict[str, Callable[[Any], Any]] = {
    "len": _len,
    "isNaN": lambda v: math.isnan(_num(v, "isNaN")),
    "isInf": lambda v: math.isinf(_num(v, "isInf")),
    "asFloat": _as_float,
    "asInt": _as_int,
}


Node = Callable[[], Any]


class _Parser:
    """Recursive descent over the token list (each token looked at once) into a tree of
    closures, evaluated afterwards so that ``&&`` and ``||`` short-circuit as in expr."""

    def __init__(self, tokens: list[_Tok], env: dict[str, Any]) -> None:
        self.tokens = tokens
        self.pos = 0
        self.env = env
        self.depth = 0

    def peek(self) -> _Tok:
        return self.tokens[self.pos]

    def take(self) -> _Tok:
        tok = self.tokens[self.pos]
        self.pos += 1
        return tok

    def expect(self, text: str) -> None:
        tok = self.take()
        if tok.text != text or tok.kind not in ("op", "name"):
            raise ExprError(f"expected {text!r}, found {tok.text or 'the end'!r}")

    def at(self, *texts: str) -> bool:
        tok = self.peek()
        return tok.kind in ("op", "name") and tok.text in texts

    def parse(self) -> Node:
        node = self.or_()
        if self.peek().kind != "end":
            raise ExprError(f"unexpected {self.peek().text!r}")
        return node

    def nested(self, parse: Callable[[], Node]) -> Node:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ExprError("expression nested too deeply")
        try:
            return parse()
        finally:
            self.depth -= 1

    def or_(self) -> Node:
        left = self.and_()
        while self.at("||", "or"):
            self.take()
            right = self.and_()
            left = _either(left, right)
        return left

    def and_(self) -> Node:
        left = self.compare()
        while self.at("&&", "and"):
            self.take()
            right = self.compare()
            left = _both(left, right)
        return left

    def compare(self) -> Node:
        left = self.additive()
        while self.at("==", "!=", "<", "<=", ">", ">="):
            op = self.take().text
            right = self.additive()
            left = _binary(_compare, op, left, right)
        return left

    def additive(self) -> Node:
        left = self.term()
        while self.at("+", "-"):
            op = self.take().text
            right = self.term()
            left = _binary(_arith, op, left, right)
        return left

    def term(self) -> Node:
        left = self.unary()
        while self.at("*", "/", "%"):
            op = self.take().text
            right = self.unary()
            left = _binary(_arith, op, left, right)
        return left

    def unary(self) -> Node:
        if self.at("-"):
            self.take()
            inner = self.nested(self.unary)
            return lambda: -_num(inner(), "-")
        if self.at("!", "not"):
            self.take()
            inner = self.nested(self.unary)
            return lambda: not _truth(inner())
        return self.postfix()

    def postfix(self) -> Node:
        node = self.primary()
        while self.at("[", "."):
            if self.take().text == "[":
                index = self.nested(self.or_)
                self.expect("]")
                node = _indexed(node, index)
            else:
                name = self.take()
                if name.kind != "name":
                    raise ExprError(f"expected a field name after '.', found {name.text!r}")
                node = _indexed(node, _const(name.text))
        return node

    def primary(self) -> Node:
        tok = self.take()
        if tok.kind == "num":
            text = tok.text
            number = float(text) if any(c in text for c in ".eE") else int(text)
            return lambda: number
        if tok.kind == "str":
            string = _unquote(tok.text)
            return lambda: string
        if tok.kind == "op" and tok.text == "(":
            node = self.nested(self.or_)
            self.expect(")")
            return node
        if tok.kind == "name":
            if tok.text in ("true", "false", "nil"):
                constant = {"true": True, "false": False, "nil": None}[tok.text]
                return lambda: constant
            if tok.text in BUILTINS and self.at("("):
                self.take()
                arg = self.nested(self.or_)
                self.expect(")")
                builtin = BUILTINS[tok.text]
                return lambda: builtin(arg())
            if tok.text in self.env:
                value = self.env[tok.text]
                return lambda: value
            raise ExprError(f"unknown name {tok.text!r}")
        raise ExprError(f"unexpected {tok.text or 'end of expression'!r}")


def _const(value: Any) -> Node:
    return lambda: value


def _either(a: Node, b: Node) -> Node:
    return lambda: _truth(a()) or _truth(b())


def _both(a: Node, b: Node) -> Node:
    return lambda: _truth(a()) and _truth(b())


def _binary(fn: Callable[[str, Any, Any], Any], op: str, a: Node, b: Node) -> Node:
    return lambda: fn(op, a(), b())


def _indexed(value: Node, key: Node) -> Node:
    return lambda: _index(value(), key())


def _arith(op: str, left: Any, right: Any) -> Any:
    if op == "+" and isinstance(left, str) and isinstance(right, str):
        return left + right
    a, b = _num(left, op), _num(right, op)
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    if op == "/":
        return a / b if b != 0 else (math.nan if a == 0 else math.copysign(math.inf, a))
    if b == 0:
        raise ExprError("modulo by zero")
    return a % b


def _truth(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise ExprError(f"a condition needs true or false, got {_kind(value)}")


def _index(value: Any, key: Any) -> Any:
    if isinstance(value, list) and isinstance(key, int) and not isinstance(key, bool):
        if -len(value) <= key < len(value):
            return value[key]
        raise ExprError(f"index {key} out of range (len {len(value)})")
    if isinstance(value, dict) and isinstance(key, str):
        return value.get(key)
    raise ExprError(f"cannot index {_kind(value)} with {_kind(key)}")


def _compare(op: str, left: Any, right: Any) -> bool:
    if op in ("==", "!="):
        same = left == right
        if isinstance(left, bool) != isinstance(right, bool):
            same = False
        return same if op == "==" else not same
    both_num = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (left, right))
    both_str = isinstance(left, str) and isinstance(right, str)
    if not (both_num or both_str):
        raise ExprError(f"cannot compare {_kind(left)} {op} {_kind(right)}")
    if op == "<":
        return bool(left < right)
    if op == "<=":
        return bool(left <= right)
    if op == ">":
        return bool(left > right)
    return bool(left >= right)


def evaluate(source: str, env: dict[str, Any]) -> Any:
    """The value of ``source`` with the names of ``env`` (``ExprError`` when it cannot be)."""
    try:
        return _Parser(_tokens(source), env).parse()()
    except RecursionError:
        raise ExprError("expression too deep to evaluate") from None


def condition(source: str, result: Any) -> bool:
    """A success or failure condition on a measurement's ``result``: true or false."""
    return _truth(evaluate(source, {"result": result}))
