"""Token-aware, sentence-aware chunking of long texts into passages (pure, no tokenizer here).

The caller gives the character spans of the text's tokens (from the index's own tokenizer);
this module cuts the text at sentence ends so that every passage fits ``max_tokens``, with about
``overlap`` tokens of whole sentences repeated between neighbours. A passage at least half full
ends at a paragraph break (blank line) where there is one, and the next starts a fresh paragraph
without overlap. A sentence longer than a passage is cut at token boundaries. CJK sentence ends
(。！？；) need no following space.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass

Span = tuple[int, int]

# A sentence ends after . ! ? … (and closing quotes/brackets) followed by whitespace, after a
# CJK full-width terminator, or at a line break.
_SENTENCE_END = re.compile(
    r"[.!?…]+[\"'”’)\]]*(?=\s)"  # Latin-script terminators need a following space
    r"|[。！？；]+[”’」』）]*"  # CJK terminators end a sentence on their own
    r"|\n"
)


@dataclass(frozen=True)
class Passage:
    """One passage of a document: its text and where it sits in the document's text."""

    text: str
    start: int
    end: int
    tokens: int


def sentence_spans(text: str) -> list[Span]:
    """Character spans of the sentences of ``text``, whitespace trimmed, empty ones dropped."""
    spans: list[Span] = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        spans.append((start, match.end()))
        start = match.end()
    spans.append((start, len(text)))
    trimmed = []
    for s, e in spans:
        while s < e and text[s].isspace():
            s += 1
        while e > s and text[e - 1].isspace():
            e -= 1
        if e > s:
            trimmed.append((s, e))
    return trimmed


def _sentence_token_ranges(sentences: Sequence[Span], tokens: Sequence[Span]) -> list[Span]:
    """For each sentence, the range of token indices that start inside it (may be empty)."""
    ranges: list[Span] = []
    t = 0
    for i, (_, end) in enumerate(sentences):
        first = t
        last_sentence = i == len(sentences) - 1
        while t < len(tokens) and (last_sentence or tokens[t][0] < end):
            t += 1
        ranges.append((first, t))
    return ranges


def paragraph_ends(text: str, sentences: Sequence[Span]) -> list[bool]:
    """For each sentence, whether a blank line follows it (the last one ends the text)."""
    gaps = [text[end:nxt] for (_, end), (nxt, _) in itertools.pairwise(sentences)]
    return [gap.count("\n") >= 2 for gap in gaps] + [True]


def _units(
    ranges: Sequence[Span], ends: Sequence[bool], max_tokens: int
) -> tuple[list[Span], list[bool]]:
    """Token ranges to pack: whole sentences, over-long ones cut into ``max_tokens`` pieces;
    and whether each unit ends a paragraph."""
    units: list[Span] = []
    breaks: list[bool] = []
    for (first, last), end in zip(ranges, ends, strict=True):
        for s in range(first, last, max_tokens):
            units.append((s, min(s + max_tokens, last)))
            breaks.append(end and s + max_tokens >= last)
    return units, breaks


def plan_passages(
    sentences: Sequence[Span],
    tokens: Sequence[Span],
    max_tokens: int,
    overlap: int,
    ends: Sequence[bool] | None = None,
) -> list[Span]:
    """Token index ranges of the passages: greedy packing of sentences, sentence-level overlap,
    a cut at a paragraph end (``ends``) once a passage is half full."""
    if max_tokens < 1:
        raise ValueError("max_tokens must be >= 1")
    ranges = _sentence_token_ranges(sentences, tokens)
    units, breaks = _units(ranges, ends or [False] * len(ranges), max_tokens)
    passages: list[Span] = []
    i = 0
    while i < len(units):
        j, size, cuts, at_break = i, 0, [], False
        while j < len(units) and size + (units[j][1] - units[j][0]) <= max_tokens:
            size += units[j][1] - units[j][0]
            j += 1
            if breaks[j - 1] and size >= max_tokens // 2:
                cuts.append(j)  # paragraph ends in the second half of the passage
        # cut at the last of them; when the rest of the text fits, keep its last paragraph(s)
        # apart too rather than diluting them with the paragraphs before
        usable = cuts if j < len(units) else [c for c in cuts if c < j]
        if usable:
            j, at_break = usable[-1], True
        passages.append((units[i][0], units[j - 1][1]))
        if j >= len(units):
            break
        if at_break:
            i = j
            continue
        back, carried = j, 0  # step back over whole sentences worth <= overlap tokens
        while back - 1 > i and carried + (units[back - 1][1] - units[back - 1][0]) <= overlap:
            back -= 1
            carried += units[back][1] - units[back][0]
        i = back
    return passages


def chunk_text(
    text: str, tokens: Sequence[Span], max_tokens: int, overlap: int = 0
) -> list[Passage]:
    """Cut ``text`` (whose tokens have character spans ``tokens``) into passages.

    A text with no more than ``max_tokens`` tokens is one passage: the whole (trimmed) text.
    """
    if not tokens:
        stripped = text.strip()
        start = text.find(stripped) if stripped else 0
        return [Passage(stripped, start, start + len(stripped), 0)] if stripped else []
    if len(tokens) <= max_tokens:
        start, end = tokens[0][0], tokens[-1][1]
        return [Passage(text[start:end], start, end, len(tokens))]
    out = []
    sentences = sentence_spans(text)
    ends = paragraph_ends(text, sentences)
    for first, last in plan_passages(sentences, tokens, max_tokens, overlap, ends):
        start, end = tokens[first][0], tokens[last - 1][1]
        out.append(Passage(text[start:end], start, end, last - first))
    return out
