"""Poisoned memories: a write-time check for text that tries to steer the model that reads it.

A memory is read back into an LLM's prompt, so text stored today can act as an instruction
tomorrow: prompt injection through memory (a web page a tool fetched says "ignore previous
instructions…"), and AgentPoison-style attacks (a rare trigger phrase planted with a
malicious demonstration, recalled whenever a later query carries the trigger).

:class:`Guard` scores a text by cues of both, each with a weight, and flags it when the score
reaches the threshold of its source. People's and the assistant's own words (``user``,
``assistant``, ``system``) need strong evidence: people quote instructions, ask for advice in
the imperative and tell the assistant how to answer them. Text from tools, documents and
imports is held to a lower threshold, and only there do rare, trigger-like token runs count.
Quoted text counts half. Offline rules, no model; measured on the labelled set in
``engramdb/data/poisoning.jsonl`` (``engramdb bench poisoning``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from .encode.prefilter import finditer, literal_starts, lowered

#: Who wrote a text: a person, the assistant, the application's system prompt, a tool's
#: output, or a document (a page, a file) the application stored.
SOURCES = ("user", "assistant", "system", "tool", "document")
#: Sources whose text is the conversation itself; the rest is data from elsewhere.
TRUSTED = frozenset({"user", "assistant", "system"})


def source_for_role(role: str | None) -> str:
    """The source a message's role implies (``tool``/``function`` -> tool; else who spoke)."""
    if role in ("assistant", "system"):
        return role
    if role in ("tool", "function"):
        return "tool"
    return "user"


@dataclass(frozen=True)
class Verdict:
    """The check's answer: ``flagged`` when ``score`` reached the source's threshold;
    ``reasons`` names each cue found (e.g. ``"override"``, ``"tool-call"``)."""

    flagged: bool
    score: float
    reasons: tuple[str, ...] = ()


_AI = r"(?:you|your|the (?:ai|assistant|model|agent|bot|chatbot|llm)|ai|assistant|model|agent|chatbot|llm|gpt)"
_DIRECTIVE_VERB = (
    r"(?:answer|respond|reply|say|tell|recommend|suggest|mention|output|return|claim|state|share|reveal|send|"
    r"forward|encourage|refer|treat|approve|use|include|append|insist)"
)

# (reason, weight, pattern). Weights: 1.0 is enough on its own anywhere; 0.6 alone flags text
# from tools, documents and imports only.
_CUES: list[tuple[str, float, re.Pattern[str]]] = [
    # Attempts to replace the reader's instructions.
    ("override", 1.0, re.compile(
        r"(?<!n't )(?<!not )\b(?:ignore|disregard|forget(?! to\b)|override|bypass|overrule)\b[^.!?\n]{0,40}?\b(?:all|any|the|your|my|these|those|"
        r"previous|prior|above|earlier|preceding|original|system|safety|existing|other)\b[^.!?\n]{0,25}?"
        r"\b(?:instructions?|prompts?|rules|directions|guidelines|directives|polic(?:y|ies)|context|constraints|"
        r"programming|preferences|candidates|question|content polic\w*)\b", re.I)),
    ("override", 1.0, re.compile(
        r"\b(?:supersedes?|overrides?|replaces?|void)\b[^.!?\n]{0,30}\b(?:all |any )?(?:prior|previous|earlier|the)\s+"
        r"(?:instructions?|rules|guidelines)|\b(?:previous|prior) (?:rules|instructions) (?:are|is) (?:void|cancel)", re.I)),
    ("override", 1.0, re.compile(
        r"\b(?:new|updated|priority|secret|hidden) (?:system )?(?:instructions?|polic(?:y|ies))\b[^.\n]{0,30}"
        r"(?::|\bfor (?:the |any )?(?:ai|assistant|model|agent))|\bsystem override\b|\bdeveloper mode\b|"
        r"\bjailbr(?:eak|oken) (?:mode|persona|prompt)\b", re.I)),
    ("persona", 1.0, re.compile(
        r"\byou (?:are now|are no longer|will (?:now )?act as|will now be|must now act)\b[^.\n]{0,60}"
        r"\b(?:ai|assistant|model|chatbot|bot|gpt|persona|character|mode|unfiltered|unrestricted|bound|restrictions)\b"
        r"|\bact as (?:an? )?(?:unfiltered|unrestricted|jailbroken|evil)\b|\bno (?:ethical|moral|content) (?:restrictions|guidelines|filters)\b",
        re.I)),
    ("prompt-leak", 1.0, re.compile(
        r"\b(?:print|reveal|show|repeat|output|leak|dump|share)\b[^.\n]{0,25}\b(?:your|the)\s+(?:system prompt|"
        r"(?:hidden |original |initial )?instructions|memory|saved passwords?|api keys?|credentials)\b", re.I)),
    # Chat-template and role markers inside a message: text posing as the system or a turn.
    ("role-marker", 1.0, re.compile(
        r"<\|(?:im_start|im_end|system|user|assistant|endoftext|eot_id|start_header_id)\|>|\[/?INST\]|<</?SYS>>|"
        r"^\s*#{2,}\s*(?:system|instruction)s?\s*:|</?(?:system|sys)>|(?:^|\n)\s*system\s*:\s*\S"
        r"|<!--\s*(?:ai|assistant|system)\b", re.I | re.M)),
    ("addressed", 0.6, re.compile(
        r"\b(?:note|message|instructions?|attention) (?:to|for) (?:the |any )?(?:ai|assistant|model|agent|llm|bot)s?\b"
        r"|^\s*(?:ai|assistant|dear (?:ai|assistant))\s*[,:]", re.I | re.M)),
    # Standing orders about how to answer (memory is read on every later question).
    ("directive", 0.6, re.compile(
        r"\b(?:always|never|only|must|should|do not|don't)\b[^.!?\n]{0,40}\b" + _DIRECTIVE_VERB + r"\b[^.!?\n]{0,80}"
        r"\b(?:the user|users|anyone|everyone|whoever|(?:all |any |every )?(?:questions?|requests?|queries) (?:about|on|regarding)|"
        r"all (?:questions|requests|queries)|any (?:question|request|query))\b",
        re.I)),
    ("directive", 0.6, re.compile(
        r"\b(?:when|whenever|if)\b[^.!?\n]{0,20}\b(?:the user|a user|users|anyone|someone|you are|people)\b[^.!?\n]{0,10}"
        r"\b(?:asks?|asked|requests?|mentions?|says?)\b[^.!?\n]{0,80}\b" + _DIRECTIVE_VERB + r"\b", re.I)),
    ("directive", 0.6, re.compile(
        r"\b(?:the )?(?:assistant|ai|model|agent|bot|chatbot)\b (?:must|should|shall|will) (?:always |never |now |only )?"
        + _DIRECTIVE_VERB + r"\b|\b(?:in|for) (?:all|every|any) (?:future|later|subsequent) (?:conversations?|"
        r"answers|responses|replies|sessions)\b|\b(?:respond|reply|answer) to (?:all|every|any) (?:questions?|requests?)\b"
        r"|\bwhenever you (?:reply|respond|answer)\b|\bthe (?:correct|right|only) answer is\b|\bregardless of what\b"
        r"|\balways answer (?:this|that|the) question\b|\b(?:respond|reply|answer) to (?:the|this|that|all|every|any) "
        r"(?:questions?|requests?|query|queries)\b|\b(?:answer|respond|reply) accordingly\b", re.I)),
    ("hijack", 0.6, re.compile(
        r"\binstead\b[^.!?\n]{0,30}\b(?:respond|reply|answer|output|say|print|write)\b\s+(?:with|that|only|the)\b", re.I)),
    # Orders about what to tell other people: in a memory shared by many, one writer's text
    # should not decide what everyone else is told.
    ("audience", 0.4, re.compile(
        r"\b(?:tell|inform|recommend to|say to|answer|respond to)\s+(?:all\s+|other\s+)?(?:users|anyone|everyone|whoever|"
        r"customers|people)\b", re.I)),
    ("concealment", 0.6, re.compile(
        r"\b(?:do not|don't|never|without)\b[^.!?\n]{0,15}\b(?:tell(?:ing)?|inform(?:ing)?|mention(?:ing)?|"
        r"alert(?:ing)?|ask(?:ing)?)\b[^.!?\n]{0,20}\b(?:the user|them|anyone|for confirmation)\b[^.!?\n]{0,40}"
        r"(?:\babout this\b|\bquietly\b|\bsecret\b|\bconfirmation\b|\bnote\b)|\bquietly (?:forward|send|share|delete)",
        re.I)),
    ("memory-write", 0.6, re.compile(
        r"\b(?:store|save|keep|write) (?:this|that|it) (?:in|to|into) (?:your )?(?:long[- ]term )?memory\b|"
        r"\bremember (?:this |that )?(?:for|in) (?:all|every) (?:future|later)\b", re.I)),
    # Conditional triggers: "when this phrase appears in the question, answer X".
    ("trigger", 1.0, re.compile(
        r"\b(?:if|when|whenever|since)\b[^.!?\n]{0,60}\b(?:appears?|is (?:present|mentioned)|(?:is|are) in|contains?|"
        r"includes?)\b[^.!?\n]{0,20}\b(?:the |a |any |this |later )?(?:question|query|request|input|instruction|message|prompt)s?\b"
        r"|\b(?:if|when|whenever)\b[^.!?\n]{0,10}\b(?:you see (?:this|these|the) (?:phrase|words?|sequence|code|token|trigger)s?|"
        r"(?:the|a|any) (?:question|query|request|input|message|prompt) (?:contains|mentions|includes|says))\b"
        r"|\b(?:if|when|whenever) (?:this|the|these|that) (?:phrase|words?|sequence|token|trigger)s? (?:is|are) "
        r"(?:present|used|seen|mentioned|given)\b|\b(?:if|when|whenever)\b[^.!?\n]{0,40}\bis mentioned\b[^.!?\n]{0,20}"
        r"\b(?:refer|answer|respond|use|treat)\b", re.I)),
    ("trigger", 0.6, re.compile(r"\btrigger (?:phrase|word|words|sequence)s?\b", re.I)),
    # Actions: tool-call syntax, ReAct steps, sending data out.
    ("tool-call", 0.6, re.compile(
        r"""["'](?:tool|name|function|function_call|tool_name|action)["']\s*:\s*["'{][^}]{0,200}["'](?:arguments|"""
        r"""args|parameters|input|tool_input)["']\s*:|<tool_call>|<function[=\s]|\bfunctions\.\w+\(|"""
        r"""^\s*action(?: input)?\s*:\s*\w+(?:\[|\s*$|\s*\{)|^\s*observation\s*:""", re.I | re.M)),
    ("exfiltration", 0.6, re.compile(
        r"!\[[^\]]*\]\(https?://[^)\s]*[?&][^)\s]*\)|https?://\S*[?&]\w+=(?:\{|<|\$\{|%7B)|\{\{[^}]*\}\}|"
        r"\b(?:send|forward|email|post|upload|transfer|share)\b[^.!?\n]{0,60}\b(?:to|with)\b\s+(?:https?://|\S+@\S+\.\w+)|"
        r"\bcurl\b[^|\n]*\|\s*(?:ba)?sh\b", re.I)),
    ("action", 0.6, re.compile(
        r"\b(?:delete|wipe|erase) (?:all|every|the)\b[^.!?\n]{0,30}\b(?:memor(?:y|ies)|records?|files|data|notes)\b|"
        r"\bgrant(?:ed)? (?:you )?(?:admin|permission|access)\b|"
        r"\bwithout (?:asking|checks|confirmation|verification)\b", re.I)),
]

# Quoted spans: "…", “…”, ‘…’ and '…' (an apostrophe inside a word, as in "don't", is not a quote).
_QUOTED = re.compile(
    r"""["“](?P<q>[^"”\n]{8,300})["”]|(?<!\w)['‘](?P<s>(?:[^'’\n]|(?<=\w)['’](?=\w)){8,300})['’](?!\w)""")
_REPORTED = re.compile(
    r"\b(?:said|says|saying|told|tells|wrote|writes|posted|read|reads|joking|quote|sign|note|poster|example|"
    r"article|rule|instructions said|texted|email said|called)\b", re.I)


@lru_cache(maxsize=1)
def _vocabulary() -> frozenset[str]:
    """Whole words of the bundled tokenizer's vocabulary (~22k common English words)."""
    path = Path(__file__).parent / "data" / "models" / "all-MiniLM-L6-v2" / "tokenizer.json"
    try:
        vocab = json.loads(path.read_text(encoding="utf-8"))["model"]["vocab"]
    except (OSError, ValueError, KeyError):  # no tokenizer: rarity is not scored
        return frozenset()
    return frozenset(w for w in vocab if w.isalpha())


#: The words each cue must begin with (see :mod:`engramdb.encode.prefilter`): a cue is tried
#: only where one of them is, and most texts hold none of most cues'.
_STARTS = [literal_starts(pattern) for _, _, pattern in _CUES]

_WORD = re.compile(r"[A-Za-z]+(?:['’][a-z]+)?")
_ODD_PUNCT = re.compile(r"[\]\)][\(\[]|\\[!+]|\*\*\w|[~^;]{2,}|[%#@]\{|->\s*%|\)\w+\?")
_GLUED = re.compile(r"\b[a-z]{3,}[A-Z][a-z]{2,}\b")


def _rarity(text: str) -> list[tuple[str, float]]:
    """Trigger-likeness of prose, as cues: a run of rare words (weak alone: names, foreign
    words and jargon are rare too) and the punctuation of optimised adversarial suffixes."""
    vocab = _vocabulary()
    if not vocab or text.lstrip().startswith(("{", "[", "<")):
        return []
    words = [w.lower() for w in _WORD.findall(text) if len(w) >= 3]
    if len(words) < 4:
        return []
    rare = [w for w in words if w not in vocab and w.rstrip("s") not in vocab]
    odd = len(_ODD_PUNCT.findall(text)) + len(_GLUED.findall(text))
    cues = []
    if len(rare) / len(words) >= 0.3 and len(rare) >= 3:
        cues.append(("rare-words", 0.3))
    if odd >= 2:
        cues.append(("adversarial-punctuation", 0.6))
    return cues


class Guard:
    """Scores text for instruction-like and trigger-like content (see the module docstring).

    ``trusted_threshold`` applies to the user's, the assistant's and the system's text;
    ``untrusted_threshold`` to tools, documents and imports. Chosen on the tuning half of the
    labelled set (``engramdb bench poisoning --split tune``).
    """

    def __init__(self, *, trusted_threshold: float = 1.0, untrusted_threshold: float = 0.6) -> None:
        self.trusted_threshold = trusted_threshold
        self.untrusted_threshold = untrusted_threshold

    def check(
        self, text: str, source: str = "user", *, imported: bool = False,
        scored: tuple[float, tuple[str, ...]] | None = None,
    ) -> Verdict:
        """The verdict on ``text`` written by ``source``; ``imported``: it came in a file
        someone imported (held to the untrusted threshold). ``scored``: :func:`assess` of the
        text, if known, for whether it is trusted (see :func:`trusted`)."""
        ok = trusted(source, imported)
        score, reasons = scored if scored is not None else assess(text, ok)
        threshold = self.trusted_threshold if ok else self.untrusted_threshold
        return Verdict(score >= threshold, score, reasons)


def trusted(source: str, imported: bool) -> bool:
    """Whether text from ``source`` is held to the trusted threshold (and spared the rarity cues)."""
    return source in TRUSTED and not imported


def assess(text: str, trusted: bool) -> tuple[float, tuple[str, ...]]:
    """The score of ``text`` and the kinds of cue found in it, whatever the threshold."""
    quoted: list[tuple[int, int]] | None = None  # found when a cue is
    lower = lowered(text)
    found: dict[str, float] = {}
    for (reason, weight, pattern), starts in zip(_CUES, _STARTS):
        for m in finditer(pattern, starts, text, lower):
            if quoted is None:
                quoted = [q.span() for q in _QUOTED.finditer(text) if _REPORTED.search(text[: q.start()][-80:])]
            inside = any(a <= m.start() and m.end() <= b for a, b in quoted)
            w = weight / 2 if inside else weight
            found[reason] = max(found.get(reason, 0.0), w)
    if not trusted:
        for reason, weight in _rarity(text):
            found[reason] = weight
    # Cues of one kind count once; different kinds add up.
    return round(sum(found.values()), 3), tuple(sorted(found))
