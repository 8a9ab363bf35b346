"""Pure text helpers: passages, token counting, words and query terms."""

from engramdb.encode.text import count_tokens, query_terms, split_passages, words


def test_short_text_is_one_passage_with_offsets() -> None:
    text = "  I adopted a kitten.  "
    [p] = split_passages(text, max_tokens=50)
    assert p.text == "I adopted a kitten."
    assert text[p.start : p.end] == p.text


def test_long_text_splits_on_sentences_within_budget() -> None:
    sentences = [f"Sentence number {i} talks about topic {i} at some length here." for i in range(30)]
    text = " ".join(sentences)
    passages = split_passages(text, max_tokens=40)
    assert len(passages) > 5
    for p in passages:
        assert count_tokens(p.text) <= 40
        assert text[p.start : p.end] == p.text
    # every sentence lands in exactly one passage, in order
    assert " ".join(p.text for p in passages) == text


def test_overlong_sentence_is_cut_at_words() -> None:
    text = "word " * 300
    passages = split_passages(text.strip(), max_tokens=50)
    assert all(count_tokens(p.text) <= 50 for p in passages)
    assert sum(len(p.text.split()) for p in passages) == 300


def test_query_terms_drop_stopwords_and_repeats() -> None:
    assert query_terms("When did Caroline go to the LGBTQ support group? The group!") == [
        "caroline",
        "go",
        "lgbtq",
        "support",
        "group",
    ]


def test_words_fold_case_and_accents_and_split_on_underscores() -> None:
    assert words("Café in São_Paulo, ÉTÉ 2023!") == ["cafe", "in", "sao", "paulo", "ete", "2023"]
    assert words("") == []


def test_count_tokens_counts_words_and_punctuation() -> None:
    assert count_tokens("Hello, world!") == 4
    assert count_tokens("") == 0
    assert count_tokens("internationalisation") == 3  # long words count in pieces
