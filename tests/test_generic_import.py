import json

import pytest

from tools.importers import ColumnMapping, ImportOptions, import_file, read_file
from tools.pairs import Verdict


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_chosen_rejected_layout_balances_positions_and_labels_the_chosen(tmp_path):
    rows = [
        {"query": f"q{i}", "chosen": f"good {i}", "rejected": f"bad {i}", "domain": "d", "extra": i} for i in range(40)
    ]
    items = read_file(write_jsonl(tmp_path / "p.jsonl", rows), "jsonl").items
    for item in items:
        label = item.labels[0]
        chosen = item.pair.response_a if label.verdict is Verdict.A else item.pair.response_b
        assert chosen.startswith("good") and label.mechanism == "human"
    a_share = sum(i.labels[0].verdict is Verdict.A for i in items) / len(items)
    assert 0.2 < a_share < 0.8  # both positions are used
    assert items[3].pair.metadata == {"extra": 3} and items[3].pair.source == "p"


def test_a_b_winner_layout_with_mapping_extra_labels_and_constant_domain(tmp_path):
    rows = [
        {"prompt": "q1", "r1": "x", "r2": "y", "vote": "model_a", "judge": "2"},
        {"prompt": "q2", "r1": "x", "r2": "y", "vote": "TIE", "judge": ""},
    ]
    options = ImportOptions(
        mapping=ColumnMapping(
            query="prompt", response_a="r1", response_b="r2", winner="vote", extra_labels={"gpt": "judge"}
        ),
        domain="chat",
        mechanism="crowd",
    )
    items = read_file(write_jsonl(tmp_path / "x.jsonl", rows), "jsonl", options).items
    assert [(label.mechanism, label.verdict.value) for label in items[0].labels] == [("crowd", "A"), ("gpt", "B")]
    assert [(label.mechanism, label.verdict.value) for label in items[1].labels] == [("crowd", "tie")]
    assert {i.pair.domain for i in items} == {"chat"}


def test_csv_and_json_array_and_multi_turn_query(tmp_path):
    csv_path = tmp_path / "p.csv"
    csv_path.write_text(
        'query,response_a,response_b,winner,domain\n"multi\nline",a,b,b,d1\nq2,a2,b2,a,d2\n', encoding="utf-8"
    )
    items = read_file(csv_path, "csv").items
    assert [i.pair.query_text for i in items] == ["multi\nline", "q2"]
    assert [i.labels[0].verdict for i in items] == [Verdict.B, Verdict.A]
    turns = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": "and?"},
    ]
    json_path = tmp_path / "p.json"
    json_path.write_text(
        json.dumps([{"query": turns, "response_a": "a", "response_b": "b", "winner": "a", "domain": "d"}], indent=2)
    )
    (item,) = read_file(json_path, "json").items
    assert len(item.pair.query) == 3 and item.pair.query[1].role == "assistant"


def test_identical_rows_stay_separate_but_reimport_is_idempotent(tmp_path, store):
    row = {"query": "q", "response_a": "a", "response_b": "b", "winner": "a", "domain": "d"}
    path = write_jsonl(tmp_path / "dup.jsonl", [row, row | {"winner": "b"}])
    summary = import_file(store, path)
    assert summary.pairs == 2
    digest = store.content_digest()
    import_file(store, path)
    assert store.content_digest() == digest


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "json"])
def test_empty_file_is_an_error(tmp_path, fmt):
    path = tmp_path / f"empty.{fmt}"
    path.write_text("[]" if fmt == "json" else ("query,winner\n" if fmt == "csv" else ""))
    with pytest.raises(Exception, match="no records found"):
        read_file(path, fmt)


def test_a_large_file_is_written_in_chunks_but_lands_whole_or_not_at_all(tmp_path, store):
    """Records are validated and written a chunk at a time (memory does not grow with the file), inside
    one transaction: a bad record after several chunks leaves the store as it was, and a good file
    lands whole."""
    from tools.errors import InputError
    from tools.importers import IMPORT_CHUNK

    rows = [
        {"query": f"q{i}", "chosen": f"good {i}", "rejected": f"bad {i}", "domain": f"d{i % 3}"} for i in range(5000)
    ]
    assert len(rows) > 2 * IMPORT_CHUNK
    before = store.content_digest()
    bad = write_jsonl(tmp_path / "bad.jsonl", [*rows, {"query": "q", "chosen": "", "rejected": "r", "domain": "d"}])
    with pytest.raises(InputError, match=r"bad\.jsonl.*line 5001"):
        import_file(store, bad)
    assert store.content_digest() == before and store.count("pairs") == 0
    summary = import_file(store, write_jsonl(tmp_path / "good.jsonl", rows))
    assert summary.pairs == summary.new_pairs == 5000 and summary.labels == 5000
    assert summary.domains == ["d0", "d1", "d2"] and summary.mechanisms == ["human"]
    assert store.count("pairs") == 5000
