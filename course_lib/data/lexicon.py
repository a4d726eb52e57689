"""Word lists and a template renderer shared by the templated tasks (templates.py, tagging.py).

A template is a string of space-separated tokens in which ``{slot}`` stands for a value drawn
from the lexicon. Rendering keeps track of where each slot's value landed, which gives the
answer span of a QA example and the BIO tags of an NER example for free.
"""
from __future__ import annotations

import re

import numpy as np

from .common import Vocab

FIRST_NAMES = ["Ana", "Ben", "Chloe", "Dmitri", "Elif", "Farah", "Goro", "Hana", "Ivan", "Jonas",
               "Kofi", "Lucia", "Mateo", "Nadia", "Omar", "Priya", "Quinn", "Rosa", "Sven", "Tariq",
               "Uma", "Victor", "Wen", "Yara", "Zoe", "Minji", "Aiko", "Leon", "Ines", "Raj"]
LAST_NAMES = ["Lima", "Sato", "Okafor", "Novak", "Garcia", "Kim", "Müller", "Haddad", "Rossi",
              "Silva", "Nguyen", "Cohen", "Larsen", "Mensah", "Ivanova", "Park", "Dubois", "Khan"]
CITIES = ["Paris", "Lyon", "Seoul", "Busan", "Lagos", "Oslo", "Lima", "Kyoto", "Cairo", "Porto",
          "New York", "Buenos Aires", "Hong Kong", "Cape Town", "Rio de Janeiro", "San Diego",
          "Kuala Lumpur", "Tel Aviv", "Mexico City", "Addis Ababa"]
ORGANISATIONS = ["Acme Corp", "Nordic Rail", "Sunrise Labs", "Blue River Bank", "Open Health Foundation",
                 "Orbital Dynamics", "Green Leaf Cooperative", "Atlas Shipping", "Pixel Forge",
                 "Harbor Insurance", "Silver Peak Mining", "Riverside Hospital", "Quantum Bakery"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December"]
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
JOBS = ["engineer", "teacher", "baker", "nurse", "pilot", "farmer", "painter", "lawyer", "chemist",
        "carpenter", "journalist", "musician", "librarian", "plumber", "gardener", "architect"]
OBJECTS = ["bicycle", "piano", "table", "car", "lamp", "boat", "clock", "window", "fence", "laptop",
           "guitar", "kettle", "camera", "sofa", "bookshelf", "printer"]
COLOURS = ["red", "blue", "green", "yellow", "black", "white", "grey", "orange", "purple", "brown"]
ADJECTIVES = ["young", "tired", "cheerful", "careful", "busy", "famous", "quiet", "clever", "retired"]
PAST_VERBS = ["repaired", "painted", "sold", "bought", "cleaned", "moved", "found", "lost", "built",
              "delivered", "borrowed", "returned", "photographed", "measured"]
MANNERS = ["carefully", "quickly", "quietly", "proudly", "slowly", "reluctantly", "happily"]
PLACES = ["in the garage", "at the market", "near the station", "behind the school", "in the old barn",
          "on the harbour", "at the workshop", "in the city centre"]
WHEN = ["on Monday", "last week", "yesterday morning", "in March", "two days ago", "at dawn",
        "after lunch", "on a rainy afternoon"]

POSITIVE = ["great", "excellent", "wonderful", "delicious", "friendly", "comfortable", "lovely",
            "fantastic", "superb", "pleasant", "charming", "spotless"]
NEGATIVE = ["terrible", "awful", "bland", "rude", "dirty", "boring", "disappointing", "poor",
            "horrible", "noisy", "cramped", "overpriced"]
REVIEW_ITEMS = ["food", "service", "room", "staff", "movie", "music", "coffee", "hotel", "view",
                "breakfast", "pizza", "concert", "bed", "soup", "waiter", "plot", "soundtrack"]
INTENSIFIERS = ["really", "very", "truly", "quite", "incredibly", "rather"]

_SLOT = re.compile(r"\{(\w+)\}")


def words(text: str) -> list[str]:
    """Split text into words and punctuation marks: ``"Hi, Ana."`` -> ``["Hi", ",", "Ana", "."]``."""
    return re.findall(r"\w+|[^\w\s]", text)


def render(template: str, values: dict[str, str]) -> tuple[list[str], dict[str, tuple[int, int]]]:
    """Fill a template; return its tokens and, per slot, the token span ``(start, end)`` (end exclusive).

    ``render("{who} lives in {city} .", {"who": "Ana", "city": "New York"})``
    gives ``["Ana", "lives", "in", "New", "York", "."]`` and ``{"who": (0, 1), "city": (3, 5)}``.
    A slot used twice keeps the span of its first use.
    """
    tokens, spans = [], {}
    for piece in template.split():
        match = _SLOT.fullmatch(piece)
        if match is None:
            tokens.append(piece)
            continue
        slot = match.group(1)
        value = words(values[slot])
        spans.setdefault(slot, (len(tokens), len(tokens) + len(value)))
        tokens.extend(value)
    return tokens, spans


def template_vocab(templates: list[str], *word_lists: list[str], specials=None) -> Vocab:
    """Every token the templates and word lists can produce, sorted: the same for both splits."""
    symbols = set()
    for text in [*templates, *(w for word_list in word_lists for w in word_list)]:
        symbols.update(words(_SLOT.sub(" ", text)))
    return Vocab(sorted(symbols)) if specials is None else Vocab(sorted(symbols), specials)


def article(phrase: str) -> str:
    """``"engineer"`` -> ``"an"``, ``"red car"`` -> ``"a"`` (by the first letter, good enough here)."""
    return "an" if phrase[0].lower() in "aeiou" else "a"


def person_name(rng: np.random.Generator, full_name_probability: float = 0.5) -> str:
    first = FIRST_NAMES[rng.integers(len(FIRST_NAMES))]
    if rng.random() < full_name_probability:
        return f"{first} {LAST_NAMES[rng.integers(len(LAST_NAMES))]}"
    return first


def date_phrase(rng: np.random.Generator) -> str:
    kind = rng.integers(4)
    month = MONTHS[rng.integers(12)]
    if kind == 0:
        return f"{month} {rng.integers(1, 29)}"
    if kind == 1:
        return f"{month} {rng.integers(1990, 2030)}"
    if kind == 2:
        return WEEKDAYS[rng.integers(7)]
    return month


def pick(rng: np.random.Generator, options: list[str]) -> str:
    return options[rng.integers(len(options))]


NUMBER_WORDS = [str(n) for n in range(1, 29)] + [str(y) for y in range(1990, 2030)]
