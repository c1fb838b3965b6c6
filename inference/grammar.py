"""Grammar-constrained sampling (JSON mode, JSON schemas) with llama.cpp's GBNF grammar sampler.

Applying a grammar to the whole vocabulary costs more than the rest of a token's work on a small model, so the
token is first sampled without it and only checked; the full grammar pass runs when that token is rejected (the
same approach as llama.cpp's ``common_sampler``).
"""

from __future__ import annotations

import ctypes
import json
from typing import TYPE_CHECKING, Any, Sequence

import jsonschema
import llama_cpp
import numpy as np
from llama_cpp.llama_grammar import JSON_GBNF, json_schema_to_gbnf

from inference.errors import EngineError

if TYPE_CHECKING:
    from inference.llama_model import LlamaModel
    from inference.sampling import SamplingOptions
    from inference.spec_sampling import Dist

_TOKEN_DATA = np.dtype([("id", np.int32), ("logit", np.float32), ("p", np.float32)], align=True)


class GrammarError(EngineError, ValueError):
    """A JSON schema or grammar that cannot be turned into a llama.cpp grammar."""


class SchemaError(GrammarError):
    """A JSON schema that is not valid JSON Schema (Draft 2020-12's metaschema refuses it)."""


# The longest a schema error's message gets (jsonschema quotes the offending value, which may be large).
_MAX_SCHEMA_MESSAGE = 300


def check_schema(schema: Any, *, where: str = "schema") -> None:
    """Check that ``schema`` is valid JSON Schema (Draft 2020-12's metaschema, formats such as ``pattern``'s regex
    included); ``where`` names the schema in the request (``tools[0].function.parameters``) for the message.

    Valid schemas that the grammar builder cannot follow are not refused here.

    Raises:
        SchemaError: naming the bad part, e.g. ``tools[0].function.parameters: properties: [1, 2] is not of type
            'object'``.
    """
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        path = ".".join(str(p) for p in exc.path)
        message = exc.message if len(exc.message) <= _MAX_SCHEMA_MESSAGE \
            else exc.message[:_MAX_SCHEMA_MESSAGE] + "..."
        at = f"{where}: {path}" if path else where
        raise SchemaError(f"{at}: {message} (not a valid JSON Schema).") from None
    except RecursionError:
        raise SchemaError(f"{where}: the schema is nested too deeply.") from None


def json_grammar(schema: dict[str, Any] | None = None, *, where: str = "schema") -> str:
    """A GBNF grammar for any JSON object (``schema`` None) or for JSON matching ``schema``; ``where`` names the
    schema in the request for error messages.

    Raises:
        SchemaError: the schema is not valid JSON Schema (:func:`check_schema`).
        GrammarError: the schema uses something the converter does not support, or makes it fail.
    """
    if schema is None:
        return JSON_GBNF  # its root rule is an object, as OpenAI's JSON mode asks
    check_schema(schema, where=where)
    try:
        return json_schema_to_gbnf(json.dumps(_bounded_integers_as_enums(schema)))
    # llama-cpp-python's converter fails in many ways on schemas it does not expect (AttributeError and
    # IndexError included); every one means "this schema cannot constrain the output", a request error.
    except (ValueError, KeyError, TypeError, AttributeError, IndexError, AssertionError, NotImplementedError,
            RecursionError) as exc:
        raise GrammarError(f"{where}: the JSON schema cannot be used to constrain the output ({exc}).") from exc


# Integer ranges up to this many values are written out as enums so the grammar enforces them.
MAX_ENUM_RANGE = 1000


def _bounded_integers_as_enums(node: Any) -> Any:
    """The schema with bounded integers (``minimum``/``maximum``) rewritten as ``enum`` lists.

    llama-cpp-python's schema converter ignores integer bounds, so ``{"type": "integer", "maximum": 8}`` would
    allow 12; an enum of the allowed values is enforced exactly. Ranges wider than ``MAX_ENUM_RANGE`` are left as
    they are (bounds not enforced).
    """
    if isinstance(node, list):
        return [_bounded_integers_as_enums(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _bounded_integers_as_enums(v) for k, v in node.items()}
    if out.get("type") == "integer" and ("minimum" in out or "exclusiveMinimum" in out) \
            and ("maximum" in out or "exclusiveMaximum" in out) and "enum" not in out:
        low = out["minimum"] if "minimum" in out else out["exclusiveMinimum"] + 1
        high = out["maximum"] if "maximum" in out else out["exclusiveMaximum"] - 1
        if isinstance(low, (int, float)) and isinstance(high, (int, float)) and 0 <= high - low <= MAX_ENUM_RANGE:
            values = list(range(int(-(-low // 1)), int(high // 1) + 1))
            rest = {k: v for k, v in out.items() if k not in ("type", "minimum", "maximum", "exclusiveMinimum",
                                                               "exclusiveMaximum")}
            return {**rest, "enum": values}
    return out


class GrammarGate:
    """A GBNF grammar sampler applied around a sampler chain."""

    def __init__(self, grammar: str, *, vocab: llama_cpp.llama_vocab_p, n_vocab: int) -> None:
        self._grammar = llama_cpp.llama_sampler_init_grammar(vocab, grammar.encode("utf-8"), b"root")
        if not self._grammar:
            raise GrammarError("The output format could not be turned into a llama.cpp grammar.")
        self._n_vocab = n_vocab
        self._cand = np.zeros(n_vocab, dtype=_TOKEN_DATA)
        self._ids = np.arange(n_vocab, dtype=np.int32)
        self._one = np.zeros(1, dtype=_TOKEN_DATA)

    def sample(self, chain: llama_cpp.llama_sampler_p, ctx: llama_cpp.llama_context_p, idx: int) -> int:
        """A token from ``chain`` that the grammar allows; both the grammar and the chain record it."""
        logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(ctx, idx), shape=(self._n_vocab,))
        token = self._apply(chain, logits, grammar_first=False)
        self._one["id"][0], self._one["logit"][0], self._one["p"][0] = token, 1.0, 0.0
        one = self._array(self._one)
        llama_cpp.llama_sampler_apply(self._grammar, ctypes.byref(one))
        if not np.isfinite(self._one["logit"][0]):
            token = self._apply(chain, logits, grammar_first=True)
        llama_cpp.llama_sampler_accept(self._grammar, token)
        llama_cpp.llama_sampler_accept(chain, token)
        return token

    def _apply(self, chain: llama_cpp.llama_sampler_p, logits: np.ndarray, *, grammar_first: bool) -> int:
        cand = self._cand
        cand["id"] = self._ids
        cand["logit"] = logits
        cand["p"] = 0.0
        arr = self._array(cand)
        if grammar_first:
            llama_cpp.llama_sampler_apply(self._grammar, ctypes.byref(arr))
        llama_cpp.llama_sampler_apply(chain, ctypes.byref(arr))
        if arr.selected < 0:
            raise EngineError("The sampler chose no token.")
        return int(arr.data[arr.selected].id)

    @staticmethod
    def _array(data: np.ndarray) -> llama_cpp.llama_token_data_array:
        return llama_cpp.llama_token_data_array(
            data=data.ctypes.data_as(llama_cpp.llama_token_data_p), size=len(data), selected=-1, sorted=False)

    def close(self) -> None:
        """Free the grammar sampler (idempotent)."""
        if self._grammar is not None:
            llama_cpp.llama_sampler_free(self._grammar)
            self._grammar = None


class GrammarDists:
    """A grammar for the speculative path, which samples in numpy (:mod:`inference.spec_sampling`): the token
    the plain path's :class:`GrammarGate` would pick at temperature 0, and the distribution it samples from
    otherwise, so speculation under a grammar keeps the plain path's output."""

    def __init__(self, grammar: str, model: "LlamaModel") -> None:
        self._gate = GrammarGate(grammar, vocab=model.vocab, n_vocab=model.n_vocab)
        self._n_vocab = model.n_vocab

    def allowed(self, tokens: np.ndarray) -> np.ndarray:
        """Which of ``tokens`` the grammar allows next (a bool per token)."""
        cand = np.zeros(len(tokens), dtype=_TOKEN_DATA)
        cand["id"] = tokens
        arr = GrammarGate._array(cand)
        llama_cpp.llama_sampler_apply(self._gate._grammar, ctypes.byref(arr))
        return np.isfinite(cand["logit"])

    def masked(self, logits: np.ndarray) -> np.ndarray:
        """A copy of ``logits`` with -inf for every token the grammar does not allow next."""
        cand = np.zeros(self._n_vocab, dtype=_TOKEN_DATA)
        cand["id"] = np.arange(self._n_vocab, dtype=np.int32)
        cand["logit"] = logits
        arr = GrammarGate._array(cand)
        llama_cpp.llama_sampler_apply(self._gate._grammar, ctypes.byref(arr))
        return cand["logit"].copy()

    def greedy(self, row: np.ndarray, history: Sequence[int], options: "SamplingOptions") -> int:
        """The greedy token after penalties, among those the grammar allows."""
        from inference.spec_sampling import apply_penalties

        x = apply_penalties(row, history, options)
        tok = int(np.argmax(x))
        if self.allowed(np.array([tok], dtype=np.int32))[0]:
            return tok
        return int(np.argmax(self.masked(x)))

    def constrain(self, p: "Dist", row: np.ndarray, history: Sequence[int], options: "SamplingOptions") -> "Dist":
        """What the plain path samples from under the grammar, given the chain's distribution ``p`` for ``row``:
        it draws from ``p`` and keeps the token when the grammar allows it, else draws again from the chain
        applied to the grammar-masked logits. So allowed tokens keep their ``p``, and the mass of forbidden ones
        goes to the masked distribution."""
        from inference.spec_sampling import Dist, target_dist

        ok = self.allowed(p.tokens.astype(np.int32))
        if ok.all():
            return p
        forbidden = float(p.probs[~ok].sum())
        again = target_dist(self.masked(row), history, options)
        again = Dist(again.tokens[again.probs > 0], again.probs[again.probs > 0])
        tokens = np.union1d(p.tokens[ok], again.tokens)
        probs = np.zeros(len(tokens))
        probs[np.searchsorted(tokens, p.tokens[ok])] += p.probs[ok]
        probs[np.searchsorted(tokens, again.tokens)] += forbidden * again.probs
        return Dist(tokens.astype(np.int64), probs / probs.sum())

    def accept(self, token: int) -> None:
        """Advance the grammar past ``token``."""
        llama_cpp.llama_sampler_accept(self._gate._grammar, token)

    def close(self) -> None:
        """Free the grammar sampler (idempotent)."""
        self._gate.close()
