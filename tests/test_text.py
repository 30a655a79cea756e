import itertools
import re

import pytest

from inferlab import count_tokens
from inferlab.engine.text import generate_tokens


def _take(prompt, n=200, **kw):
    return list(itertools.islice(generate_tokens(prompt, **kw), n))


@pytest.mark.parametrize(
    ("text", "tokens"),
    [("", 0), ("Hello, world!", 4), ("Batch  sizes of 64", 4), ("p99-latency", 3)],
)
def test_count_tokens_textbook(text, tokens):
    """Words and numbers are one token each, every punctuation mark is one more."""
    assert count_tokens(text) == tokens


def test_same_prompt_seed_and_temperature_give_the_same_text():
    assert _take("Why batch?", seed=3, temperature=0.8) == _take(
        "Why batch?", seed=3, temperature=0.8
    )


def test_another_seed_gives_another_text_when_sampling():
    assert _take("Why batch?", seed=3, temperature=0.8) != _take(
        "Why batch?", seed=4, temperature=0.8
    )


def test_temperature_zero_ignores_the_seed():
    assert _take("Why batch?", seed=3, temperature=0) == _take("Why batch?", seed=99, temperature=0)


def test_each_generated_piece_is_exactly_one_token():
    pieces = [p for p in _take("Count me", n=500, temperature=1.0) if p is not None]
    assert all(count_tokens(piece) == 1 for piece in pieces)
    assert count_tokens("".join(pieces)) == len(pieces)


def test_text_reads_like_sentences_of_words():
    text = "".join(p or "" for p in _take("Tell me about GPUs", n=300))
    sentences = [s.strip() for s in text.split(".") if s.strip()]
    assert len(sentences) > 5
    assert all(re.fullmatch(r"[A-Z][a-zA-Z ,]+", s) for s in sentences)


def test_the_model_eventually_ends_its_answer():
    pieces = _take("Say something", n=400)
    end = pieces.index(None)
    assert 20 <= end <= 200 and pieces[end - 1] == "."
