"""Store connections used at once (the MCP server's worker threads): writers queue for SQLite's lock."""

from threading import Barrier, Thread

import pytest

from tools.concepts import Concept
from tools.store import ConceptStore


def test_simultaneous_writers_on_their_own_connections_all_succeed(tmp_path):
    path = tmp_path / "store.db"
    ConceptStore(path).close()
    start, errors = Barrier(30), []

    def write(number: int) -> None:
        try:
            with ConceptStore(path, create=False) as store:
                start.wait()
                store.upsert_concepts([Concept(name=f"Concept {number}")])
        except Exception as error:
            errors.append(error)

    threads = [Thread(target=write, args=(n,)) for n in range(30)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with ConceptStore(path, create=False) as store:
        assert len(store.concepts()) == 30


def test_a_failed_transaction_leaves_nothing_and_nested_ones_commit(tmp_path):
    with ConceptStore(tmp_path / "store.db") as store:
        with pytest.raises(RuntimeError), store.atomic():
            store.upsert_concepts([Concept(name="Lost")])
            raise RuntimeError("abort")
        assert store.concepts() == [] and not store.db.conn.in_transaction
        with store.atomic():
            store.upsert_concepts([Concept(name="Kept")])
        assert [c.name for c in store.concepts()] == ["Kept"]
