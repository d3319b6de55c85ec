"""What tokens cost: a pricing table by model name, and a turn's cost from its usage (no I/O).

A table maps a model name, exactly or by prefix (``gpt-5.6`` prices ``gpt-5.6-sol-2026-07-09``;
the longest matching prefix wins), to USD per million tokens: ``input``, ``cached_input``,
``cache_write``, ``output``; where a model has them, audio prices and a long-context tier
(above ``long.above`` input tokens, the whole request moves to that tier's prices). tracer
ships ``DEFAULT_PRICING`` with its date and, for each model, the page its prices came from;
a user's file (``--pricing FILE``, ``TRACER_PRICING``) extends it and wins where both name a
model. A cost is None, never 0, when the model has no price or the usage is unknown.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from typing import Any

from tracer.errors import TracerError
from tracer.files import read_table
from tracer.protocols.base import Tokens

__all__ = [
    "DEFAULT_PRICING",
    "PRICING_DATE",
    "Cost",
    "Price",
    "Pricing",
    "PricingError",
    "load_pricing",
]

PRICING_DATE = "2026-12-03"
"""When the default table was last checked against its sources."""

_MILLION = 1_000_000


class PricingError(TracerError):
    """A pricing file that cannot be read or says something that is not a price."""

    exit_code = 2


@dataclass(frozen=True, slots=True)
class Price:
    """USD per million tokens of one model. ``cached_input`` and ``cache_write`` default to
    ``input`` (no discount, no premium) when a table leaves them out."""

    input: float
    output: float
    cached_input: float | None = None
    cache_write: float | None = None
    audio_input: float | None = None  # voice models: audio tokens in and out
    audio_cached_input: float | None = None
    audio_output: float | None = None
    long_above: int | None = None  # input tokens above which the long-context tier applies
    long_input_factor: float = 1.0  # the tier's prices: these times the short ones
    long_output_factor: float = 1.0
    source: str = ""  # the page the prices came from
    third_party: bool = False  # the source is not the provider's own page

    def tier(self, input_tokens: int) -> Price:
        """The prices a request of ``input_tokens`` pays: the long-context tier's above its
        threshold (all of the request, input and output), else these."""
        if self.long_above is None or input_tokens <= self.long_above:
            return self
        fi, fo = self.long_input_factor, self.long_output_factor
        return replace(
            self,
            input=self.input * fi,
            cached_input=None if self.cached_input is None else self.cached_input * fi,
            cache_write=None if self.cache_write is None else self.cache_write * fi,
            output=self.output * fo,
            long_above=None,
        )


@dataclass(frozen=True, slots=True)
class Cost:
    """What a turn cost, and the parts the session report adds up."""

    total: float
    input: float  # what its input cost, cached and written parts included
    saved_by_cache: float  # its cached tokens at the input price, less what they cost
    cache_write: float  # what writing the cache cost (the premium included)


@dataclass(slots=True)
class Pricing:
    """Prices by model name (exact or prefix; the longest match wins)."""

    models: dict[str, Price] = field(default_factory=dict)
    date: str = PRICING_DATE
    sources: list[str] = field(default_factory=list)  # the files that extended the default

    def find(self, model: str | None) -> Price | None:
        if not model:
            return None
        if model in self.models:
            return self.models[model]
        best = max((k for k in self.models if model.startswith(k)), key=len, default=None)
        return self.models[best] if best is not None else None

    def cost(self, model: str | None, tokens: Tokens) -> Cost | None:
        """The turn's cost; None when the model has no price or the usage is unknown:
        ``(input - cached - cache_write) x input + cached x cached_input + cache_write x
        cache_write + output x output``, at the tier the request's input falls in; audio
        tokens (voice models) at the audio prices."""
        price = self.find(model)
        if price is None or tokens.input is None or tokens.output is None:
            return None
        p = price.tier(tokens.input)
        cached, written = tokens.cached or 0, tokens.cache_write or 0
        audio_in, audio_out = tokens.input_audio or 0, tokens.output_audio or 0
        cached_rate = p.input if p.cached_input is None else p.cached_input
        write_rate = p.input if p.cache_write is None else p.cache_write
        plain = max(0, tokens.input - cached - written - audio_in)
        audio_in_rate = p.input if p.audio_input is None else p.audio_input
        audio_out_rate = p.output if p.audio_output is None else p.audio_output
        input_cost = (
            plain * p.input + cached * cached_rate + written * write_rate + audio_in * audio_in_rate
        )
        output_cost = max(0, tokens.output - audio_out) * p.output + audio_out * audio_out_rate
        return Cost(
            total=(input_cost + output_cost) / _MILLION,
            input=input_cost / _MILLION,
            saved_by_cache=cached * (p.input - cached_rate) / _MILLION,
            cache_write=written * write_rate / _MILLION,
        )

    def extended(self, other: Pricing) -> Pricing:
        """This table with ``other``'s models added, ``other`` winning where both name one."""
        return Pricing({**self.models, **other.models}, self.date, [*self.sources, *other.sources])


def load_pricing(path: str | os.PathLike[str], base: Pricing | None = None) -> Pricing:
    """A pricing file (JSON ``{"models": {NAME: {input, cached_input, cache_write, output,
    ...}}}``, or TOML with the same keys under ``[models."NAME"]``) over ``base`` (the
    default table when None)."""
    data = read_table(path, "pricing file", PricingError)
    name = os.fspath(path)
    own = Pricing(_models(data, name), sources=[name])
    return (base if base is not None else DEFAULT_PRICING).extended(own)


_KEYS = {
    "input", "output", "cached_input", "cache_write", "audio_input", "audio_cached_input",
    "audio_output", "long_above", "long_input_factor", "long_output_factor", "source",
}  # fmt: skip


def _models(data: Any, where: str) -> dict[str, Price]:
    models = data.get("models") if isinstance(data, dict) else None
    if not isinstance(models, dict) or not models:
        raise PricingError(f"{where}: expected a 'models' table naming at least one model")
    out: dict[str, Price] = {}
    for name, fields in models.items():
        at = f"{where}: models.{name}"
        if not isinstance(fields, dict):
            raise PricingError(f"{at} must be a table of prices")
        unknown = set(fields) - _KEYS
        if unknown:
            raise PricingError(f"{at}: unknown key(s) {sorted(unknown)}")
        for key in ("input", "output"):
            if key not in fields:
                raise PricingError(f"{at}: '{key}' is required (USD per million tokens)")
        values: dict[str, Any] = {}
        for key, value in fields.items():
            if key == "source":
                if not isinstance(value, str):
                    raise PricingError(f"{at}: 'source' must be text")
                values[key] = value
                continue
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise PricingError(f"{at}: '{key}' must be a number >= 0")
            values[key] = int(value) if key == "long_above" else float(value)
        out[str(name)] = Price(**values)
    return out


# -- the default table ------------------------------------------------------------------------
# USD per million tokens. Official figures come from OpenAI's model pages; third-party ones
# say whose they are (``third_party``), with the page.

_OPENAI = "https://developers.openai.com/api/docs/models/"
_APIYI = "https://docs.apiyi.com/en/models/"
_MORPH = "https://www.morphllm.com/openai-api-pricing"
_LAZZARI = "https://nicolalazzari.ai/articles/openai-api-pricing-explained-2026"
_OPENAI_COST = "https://docs.rs/crate/openai-cost/latest/source/src/pricing.rs"
# GPT-5.6: cache writes at 1.25x input; above 272K input tokens the whole request pays 2x
# input and 1.5x output (the gpt-5.6-sol page).
_LONG = {"long_above": 272_000, "long_input_factor": 2.0, "long_output_factor": 1.5}


def _p(input: float, cached: float, output: float, source: str, **extra: Any) -> Price:
    return Price(input=input, cached_input=cached, output=output, source=source, **extra)


def _third(input: float, cached: float, output: float, source: str, **extra: Any) -> Price:
    return _p(input, cached, output, source, third_party=True, **extra)


_SOL = _p(5.0, 0.5, 30.0, _OPENAI + "gpt-5.6-sol", cache_write=6.25, **_LONG)
_AUDIO = {"audio_input": 32.0, "audio_cached_input": 0.4, "audio_output": 64.0}

DEFAULT_PRICING = Pricing(
    {
        # Sol's list price; its page also announced a promotional $4 / $0.40 / $20 "at least
        # through November 21, 2026": give it in a pricing file while it lasts.
        "gpt-5.6": _SOL,
        "gpt-5.6-sol": _SOL,
        "gpt-5.6-terra": _third(2.5, 0.25, 15.0, _APIYI + "gpt-5-6-terra", cache_write=3.125,
                                **_LONG),
        "gpt-5.6-luna": _third(1.0, 0.1, 6.0, _APIYI + "gpt-5-6-luna", cache_write=1.25,
                               **_LONG),
        "gpt-5.5": _third(5.0, 0.5, 30.0, _MORPH),
        "gpt-5.4": _third(2.5, 0.25, 15.0, _MORPH),
        "gpt-5.4-mini": _third(0.75, 0.075, 4.5, _MORPH),
        "gpt-5.4-nano": _third(0.2, 0.02, 1.25, _MORPH),
        "gpt-5.2": _third(1.75, 0.175, 14.0, _LAZZARI),
        "gpt-5-mini": _third(0.25, 0.025, 2.0, _LAZZARI),
        "gpt-5": _third(1.25, 0.125, 10.0, _OPENAI_COST),
        # Voice (the Realtime API): text and audio tokens priced apart.
        "gpt-realtime": _p(4.0, 0.4, 16.0, _OPENAI + "gpt-realtime-1.5", **_AUDIO),
        "gpt-realtime-2": _p(4.0, 0.4, 24.0, _OPENAI + "gpt-realtime-2", **_AUDIO),
        "gpt-realtime-2.1-mini": _p(0.6, 0.06, 2.4, _OPENAI + "gpt-realtime-2.1-mini",
                                    audio_input=10.0, audio_cached_input=0.3,
                                    audio_output=20.0),
    }
)  # fmt: skip
