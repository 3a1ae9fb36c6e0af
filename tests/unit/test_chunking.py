import itertools
import re

import pytest

from es_semantic.encoding.tokens import load_tokenizer, token_spans
from es_semantic.indexing.chunking import chunk_text, plan_passages, sentence_spans


def word_spans(text):
    return [(m.start(), m.end()) for m in re.finditer(r"\S+", text)]


def test_sentences_latin_and_cjk():
    text = "First one. Second one! Third?\nFourth line 3.5 stays"
    assert [text[s:e] for s, e in sentence_spans(text)] == [
        "First one.",
        "Second one!",
        "Third?",
        "Fourth line 3.5 stays",
    ]
    zh = "今天天气很好。我们去公园吧！你觉得呢？好的"
    assert [zh[s:e] for s, e in sentence_spans(zh)] == [
        "今天天气很好。",
        "我们去公园吧！",
        "你觉得呢？",
        "好的",
    ]


def test_short_text_is_one_passage():
    text = "  just a few words here  "
    (only,) = chunk_text(text, word_spans(text), max_tokens=10)
    assert only.text == "just a few words here" and only.tokens == 5


def test_passages_fit_cover_everything_and_end_at_sentences():
    sentences = [f"Sentence {i} has exactly six words." for i in range(40)]
    text = " ".join(sentences)
    spans = word_spans(text)
    passages = chunk_text(text, spans, max_tokens=20, overlap=6)
    assert all(p.tokens <= 20 for p in passages)
    assert all(p.text.endswith("words.") for p in passages)  # cut at sentence ends
    assert passages[0].start == 0 and passages[-1].end == len(text)
    for a, b in itertools.pairwise(passages):
        assert b.start < a.end  # one whole sentence (6 tokens) of overlap
        assert b.start > a.start  # always moves on
    covered = set()
    for p in passages:
        covered.update(i for i, (s, _) in enumerate(spans) if p.start <= s < p.end)
    assert covered == set(range(len(spans)))


def test_no_overlap_means_disjoint_passages():
    text = " ".join(f"Short sentence number {i}." for i in range(30))
    passages = chunk_text(text, word_spans(text), max_tokens=12, overlap=0)
    assert all(b.start >= a.end for a, b in itertools.pairwise(passages))


def test_a_sentence_longer_than_a_passage_is_cut_at_tokens():
    text = " ".join(["word"] * 50) + ". Tail sentence."
    passages = chunk_text(text, word_spans(text), max_tokens=16, overlap=4)
    assert all(p.tokens <= 16 for p in passages)
    assert sum(p.tokens for p in passages) >= 52
    assert passages[-1].text.endswith("Tail sentence.")


def test_plan_rejects_zero_budget():
    with pytest.raises(ValueError):
        plan_passages([(0, 1)], [(0, 1)], 0, 0)


@pytest.mark.parametrize(
    "text",
    [
        "Elasticsearch stores documents. " * 120,
        "向量检索把文本变成向量。长文档需要切分成段落，每个段落单独编码！" * 40,
    ],
)
def test_real_tokenizer_passages_fit_the_window(minilm_dir, text):
    tokenizer = load_tokenizer(minilm_dir)
    (spans,) = token_spans(tokenizer, [text])
    passages = chunk_text(text, spans, max_tokens=64, overlap=16)
    assert len(passages) > 3
    for p in passages:
        ids = tokenizer(p.text, add_special_tokens=False)["input_ids"]
        assert len(ids) <= 64, p.text
    assert passages[-1].end == len(text.rstrip())


def test_slow_tokenizer_spans_approximate_the_fast_ones(minilm_dir):
    from transformers import BertTokenizer

    slow = BertTokenizer.from_pretrained(str(minilm_dir))
    fast = load_tokenizer(minilm_dir)
    text = "Chunking keeps every token. 长文档切分成段落。 Tokenizers differ, counts agree."
    (fast_spans,) = token_spans(fast, [text])
    (slow_spans,) = token_spans(slow, [text])
    assert len(slow_spans) == len(fast_spans)
    assert token_spans(slow, ["   "]) == [[]]


def test_a_half_full_passage_ends_at_a_paragraph_break():
    para = " ".join(f"Point {i} of this paragraph." for i in range(3))  # 15 tokens
    text = "\n\n".join([para] * 6)
    passages = chunk_text(text, word_spans(text), max_tokens=40, overlap=10)
    assert all(p.text == f"{para}\n\n{para}" for p in passages), [p.text for p in passages]
    assert len(passages) == 3  # no overlap carried across a paragraph cut


def test_a_short_last_paragraph_is_not_diluted_by_the_ones_before():
    para = " ".join(f"Point {i} of this paragraph." for i in range(3))  # 15 tokens
    text = "\n\n".join([para] * 4 + ["The answer is here."])
    passages = chunk_text(text, word_spans(text), max_tokens=40, overlap=10)
    assert [p.text for p in passages][-1] == "The answer is here."
    assert len(passages) == 3
