"""Fit / evaluate / explain read concept vectors from the store, and the CLI drives them."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

import tools.result_cache
import tools.workflows
from cli import app
from tools.concepts import Concept, ConceptScope, ConceptValue
from tools.design import PLANTED_ANNOTATOR, load_design, scope_masks, store_planted
from tools.errors import InputError, StoreError, WhyprefError
from tools.importers.values import import_values
from tools.planted import make_planted
from tools.workflows import (
    evaluate_mechanism,
    explain_global,
    explain_pair,
    fit_mechanism,
    load_model,
    load_pair_vector,
)

runner = CliRunner()


@pytest.fixture
def planted(store):
    data = make_planted(3, 12, 4, 120, label_noise=0.05, random_state=3)
    store_planted(store, data)
    return store, data


def test_design_round_trips_the_planted_vectors(planted):
    store, data = planted
    design = load_design(store, "planted")
    order = {p: i for i, p in enumerate(design.pair_ids)}
    names = design.concept_names
    # Rows come back in pair-id order: compare through the planted concept names.
    columns = [names.index(n) for n in data.concept_names]
    stored = store.db.query("select id from pairs order by rowid")
    rows = [order[r["id"]] for r in stored]
    np.testing.assert_array_equal(design.X[np.ix_(rows, columns)], data.X)
    np.testing.assert_array_equal(design.y[rows], data.y)
    assert design.shared_mask[columns].tolist() == data.shared_mask.tolist()
    for domain, mask in data.domain_masks.items():
        assert design.domain_masks[domain][columns].tolist() == mask.tolist()


def test_scope_masks_structural_zeros():
    concepts = [
        Concept(name="a"),
        Concept(name="b", scope=ConceptScope.DOMAIN, domains=("x",)),
        Concept(name="c", scope=ConceptScope.DOMAIN, domains=("y", "x")),
    ]
    shared, masks = scope_masks(concepts, ["x", "y", "z"])
    assert shared.tolist() == [True, False, False]
    assert {d: m.tolist() for d, m in masks.items()} == {
        "x": [True, True, True],
        "y": [True, False, True],
        "z": [True, False, False],
    }


def test_fit_stores_a_model_that_reloads_identically(planted):
    store, _ = planted
    report = fit_mechanism(store, "planted")
    assert report.pairs == 360 and set(report.params) == {"lambda_shared", "lambda_domain"}
    # fit reports the in-domain protocol of evaluate, with the same defaults: the same numbers.
    (evaluated,) = [r for r in evaluate_mechanism(store, "planted", protocol="in-domain", models=["hmdr"]).rows[:1]]
    assert report.evaluation is not None and report.evaluation.row("hmdr") == evaluated
    assert 60 < evaluated.non_tie_accuracy <= 100
    record, model = load_model(store, "planted")
    design = load_design(store, "planted")
    scores = model.decision_function(design.X, domains=design.domains)
    assert np.isfinite(scores).all() and model.score(design.X, design.y, domains=design.domains) > 0.6


def test_a_fit_of_inputs_the_store_holds_is_answered_from_the_store(planted, monkeypatch):
    store, _ = planted
    fit = fit_mechanism(store, "planted")
    assert not fit.from_store
    fit_mechanism(store, "planted", grouped=False, evaluate=False)  # other inputs: another model, now the latest
    assert len(store.models(mechanism="planted")) == 2 and load_model(store, "planted")[0].id != fit.model_id

    def refit(*args, **kwargs):
        raise AssertionError("fitted again")

    with monkeypatch.context() as patched:
        patched.setattr("tools.workflows.grid_search_cv", refit)
        patched.setattr("tools.workflows._evaluate", refit)
        assert fit_mechanism(store, "planted") == fit.model_copy(update={"from_store": True})  # read back
        assert load_model(store, "planted")[0].id == fit.model_id  # and the latest model again
        with pytest.raises(AssertionError, match="fitted again"):  # evaluating what was fitted without it
            fit_mechanism(store, "planted", grouped=False)
    evaluated = fit_mechanism(store, "planted", grouped=False)
    assert evaluated.evaluation is not None and len(store.models(mechanism="planted")) == 2
    # A model an older whypref stored without its CV row is fitted again, not half-read.
    older = store.model(fit.model_id)
    store.save_model(older.model_copy(update={"metrics": older.metrics.model_copy(update={"cv": None})}))
    refitted = fit_mechanism(store, "planted")
    assert not refitted.from_store and refitted.cv == fit.cv and store.model(fit.model_id).metrics.cv == fit.cv
    # Any change of the inputs is a new model: one concept value here.
    pair_id, concept_id = load_design(store, "planted").pair_ids[0], store.concepts()[0].id
    store.put_values([ConceptValue(pair_id=pair_id, concept_id=concept_id, annotator=PLANTED_ANNOTATOR, value=7.0)])
    assert fit_mechanism(store, "planted", evaluate=False).model_id != fit.model_id


def test_bootstrap_intervals_are_kept_by_their_inputs_and_code(planted, monkeypatch):
    store, _ = planted
    fit_mechanism(store, "planted", evaluate=False)
    first = explain_global(store, "planted", n_bootstrap=20)
    computed = []
    real = tools.workflows.bootstrap_global_lift
    monkeypatch.setattr(tools.workflows, "bootstrap_global_lift", lambda *a, **k: computed.append(1) or real(*a, **k))
    assert explain_global(store, "planted", n_bootstrap=20) == first and not computed  # read from the store
    explain_global(store, "planted", n_bootstrap=21)  # another number of refits
    assert len(computed) == 1
    pair_id, concept_id = load_design(store, "planted").pair_ids[0], store.concepts()[0].id
    store.put_values([ConceptValue(pair_id=pair_id, concept_id=concept_id, annotator=PLANTED_ANNOTATOR, value=9.0)])
    explain_global(store, "planted", n_bootstrap=20)  # the model explained on other values
    assert len(computed) == 2
    monkeypatch.setattr(tools.result_cache, "code_version", lambda: "another whypref")
    explain_global(store, "planted", n_bootstrap=20)
    assert len(computed) == 3


def test_explanations_global_and_local(planted, tmp_path):
    store, data = planted
    fit_mechanism(store, "planted")
    explanation = explain_global(store, "planted", top_k=3, out_dir=tmp_path, n_bootstrap=20)
    assert len(explanation.domains) == 3 and all(len(d.concepts) == 3 for d in explanation.domains)
    assert all(c.low is not None and c.selected is not None for d in explanation.domains for c in d.concepts)
    assert (tmp_path / explanation.png.split("/")[-1]).stat().st_size > 1000
    assert json.loads((tmp_path / explanation.json_path.split("/")[-1]).read_text())["model_id"] == explanation.model_id
    record, model = load_model(store, "planted")
    pair_id = load_design(store, "planted").pair_ids[0]
    local = explain_pair(store, "planted", pair_id)
    concept_ids = record.payload.concept_ids
    names = [{c.id: c.name for c in store.concepts()}[c] for c in concept_ids]
    x = load_pair_vector(store, pair_id, concept_ids, None)

    def p_a(vector):
        return model.predict_proba(vector[None, :], domains=np.array([local.domain]))[0, 1]

    # Independent check of the formula for the top concept: 100 * (P(A | x) - P(A | x without it)).
    top = local.concepts[0]
    without = x.copy()
    without[names.index(top.concept)] = 0.0
    assert top.lift == pytest.approx(100 * (p_a(x) - p_a(without)))
    assert local.p_a == pytest.approx(p_a(x)) and local.p_a + local.p_b == pytest.approx(1.0)
    assert len(local.concepts) == np.count_nonzero(x * model.coef_for(np.array([local.domain]), 1)[0])


def test_evaluate_protocols(planted):
    store, _ = planted
    in_domain = evaluate_mechanism(store, "planted", protocol="in-domain", models=["hmdr"], repeats=2)
    row = in_domain.row("hmdr")
    assert in_domain.repeats == 2 and row.low <= row.non_tie_accuracy <= row.high
    assert [r.model for r in in_domain.rows] == ["hmdr", "longer", "length-lr"]
    ood = evaluate_mechanism(store, "planted", protocol="ood", models=["hmdr", "shared"])
    assert [r.model for r in ood.rows][:2] == ["hmdr", "shared"]
    assert set(ood.row("hmdr").per_domain) == {"domain0", "domain1", "domain2"}
    with pytest.raises(Exception, match="unseen domain"):
        evaluate_mechanism(store, "planted", protocol="ood", models=["specific"])


def test_errors_name_the_problem(planted):
    store, _ = planted
    with pytest.raises(StoreError, match="no labels of mechanism 'gpt-9'.*planted"):
        fit_mechanism(store, "gpt-9")
    with pytest.raises(StoreError, match="no fitted model"):
        explain_global(store, "planted")
    pair_id = load_design(store, "planted").pair_ids[0]
    concept = store.concepts()[0].id
    store.put_values([ConceptValue(pair_id=pair_id, concept_id=concept, annotator="someone-else", value=1)])
    with pytest.raises(StoreError, match="choose one with --annotator"):
        fit_mechanism(store, "planted")
    assert fit_mechanism(store, "planted", annotator="planted").pairs == 360


def test_import_values_file(store, tmp_path):
    data = make_planted(2, 4, 2, 10, random_state=0)
    store_planted(store, data)
    ids = [r["id"] for r in store.db.query("select id from pairs order by id")]
    path = tmp_path / "v.csv"
    path.write_text("pair_id,Brevity,Warmth\n" + "".join(f"{p},{i % 3 - 1},\n" for i, p in enumerate(ids)))
    assert import_values(store, path, "me") == len(ids)
    assert "brevity" in {c.id for c in store.concepts()}
    before = store.content_digest()
    path.write_text("pair_id,Brevity\nnot-a-pair,1\n")
    with pytest.raises(InputError) as caught:
        import_values(store, path, "me")
    assert (caught.value.line, caught.value.field) == (2, "pair_id")
    path.write_text(f"pair_id,Brevity\n{ids[0]},lots\n")
    with pytest.raises(InputError, match="expected a number, found 'lots'"):
        import_values(store, path, "me")
    assert store.content_digest() == before


def test_cli_fit_evaluate_explain(tmp_path):
    db = str(tmp_path / "p.db")
    for args in (
        ["planted", "--db", db, "--domains", "3", "--concepts", "12", "--shared", "4", "--pairs-per-domain", "80"],
        ["fit", "--db", db, "-m", "planted"],
        [
            "evaluate",
            "--db",
            db,
            "-m",
            "planted",
            "--protocol",
            "ood",
            "--model",
            "hmdr",
            "--model",
            "flat",
        ],
        ["explain", "--db", db, "-m", "planted", "--top", "3", "--out", str(tmp_path / "r")],
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
    output = runner.invoke(app, ["evaluate", "--db", db, "-m", "planted", "--protocol", "ood", "--per-domain"]).output
    assert "held-out accuracy, ood" in output and "domain2" in output and "explains more than length" in output
    assert len(list((tmp_path / "r").glob("*.png"))) == 1
    bad = runner.invoke(app, ["evaluate", "--db", db, "-m", "planted", "--model", "forest"])
    assert bad.exit_code != 0 and "'forest' is not one of 'hmdr'" in bad.output and "--model" in bad.output
    again = runner.invoke(app, ["fit", "--db", db, "-m", "planted"])  # the same inputs: the stored model
    assert again.exit_code == 0 and "read from the store (fitted before on the same inputs)" in again.output


def add_shapes(store, data) -> None:
    """Real shapes the planted set lacks: a domain whose labels are all ties, a domain of one pair."""
    from tools.pairs import Label, LabeledPair, Pair

    items = [
        LabeledPair(
            pair=Pair(query=f"tied {i}", response_a=f"x{i}", response_b=f"y{i}", domain="all-ties", source="shape"),
            labels=[Label(mechanism="planted", verdict="tie")],
        )
        for i in range(4)
    ] + [
        LabeledPair(
            pair=Pair(query="alone", response_a="short", response_b="a longer one", domain="lonely", source="shape"),
            labels=[Label(mechanism="planted", verdict="B")],
        )
    ]
    store.add_labeled_pairs(items)
    first = store.concepts()[0].id
    store.put_values([ConceptValue(pair_id=i.pair.id, concept_id=first, annotator="planted", value=1.0) for i in items])


def test_a_domain_of_ties_and_a_domain_of_one_pair_are_noted_not_fatal(planted):
    store, data = planted
    add_shapes(store, data)
    report = fit_mechanism(store, "planted")
    assert "all-ties" not in report.domains and "lonely" in report.domains
    assert any("all-ties (4)" in note and "tie" in note for note in report.notes)
    assert any("lonely (1)" in note and "shared weights only" in note for note in report.notes)
    _, model = load_model(store, "planted")
    assert not model.coef_domain_[list(model.domains_).index("lonely")].any()  # no part of its own
    evaluation = evaluate_mechanism(store, "planted", protocol="in-domain", models=["hmdr"])
    assert evaluation.row("hmdr").n_pairs == 361 and evaluation.row("hmdr").n_ties == 4
    ood = evaluate_mechanism(store, "planted", protocol="ood", models=["hmdr"])
    assert "all-ties" not in ood.row("hmdr").per_domain
    explanation = explain_global(store, "planted", n_bootstrap=10)
    lonely = next(d for d in explanation.domains if d.domain == "lonely")
    assert lonely.n_pairs == 1 and "shared weights only" in lonely.notes[0]


def test_flat_and_shared_are_reported_once_when_every_concept_is_shared(store):
    data = make_planted(3, 12, 4, 120, random_state=4)
    store_planted(store, data)
    store.upsert_concepts(
        [c.model_copy(update={"scope": ConceptScope.SHARED, "domains": ()}) for c in store.concepts()]
    )
    evaluation = evaluate_mechanism(store, "planted", protocol="in-domain", models=["hmdr", "shared", "flat"])
    assert [r.model for r in evaluation.rows] == ["hmdr", "shared", "longer", "length-lr"]
    assert any("flat and shared coincide" in note for note in evaluation.notes)


def test_json_output_of_evaluate_and_explain(planted, tmp_path):
    store, _ = planted
    db = str(store.path)
    fit_mechanism(store, "planted", evaluate=False)
    result = runner.invoke(app, ["evaluate", "--db", db, "-m", "planted", "--json"])
    assert result.exit_code == 0, result.output
    evaluation = json.loads(result.output)
    assert {r["model"] for r in evaluation["rows"]} == {"hmdr", "longer", "length-lr"}
    for row in evaluation["rows"]:
        assert {"non_tie_accuracy", "low", "high", "n_pairs"} <= set(row) and 0 <= row["low"] <= row["high"] <= 100
    assert {(d["model"], d["baseline"]) for d in evaluation["differences"]} == {
        ("hmdr", "longer"),
        ("hmdr", "length-lr"),
    }
    assert all({"difference", "low", "high"} <= set(d) for d in evaluation["differences"])
    result = runner.invoke(
        app, ["explain", "--db", db, "-m", "planted", "--json", "--bootstrap", "20", "--out", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    explanation = json.loads(result.output)
    for domain in explanation["domains"]:
        for concept in domain["concepts"]:
            assert {"concept", "lift", "shared", "specific", "low", "high"} <= set(concept)
            assert -50 < concept["lift"] < 50 and concept["low"] <= concept["high"]
    pair_id = load_design(store, "planted").pair_ids[0]
    result = runner.invoke(app, ["explain", "--db", db, "-m", "planted", "--pair", pair_id, "--json"])
    assert result.exit_code == 0, result.output
    local = json.loads(result.output)
    assert all({"concept", "value", "lift"} <= set(c) for c in local["concepts"])
    assert local["p_a"] + local["p_b"] == pytest.approx(1.0)


def test_a_pair_and_its_swapped_copy_get_the_same_explanation(planted):
    """The swap test: A and B exchanged (values negated, label flipped) explain each response the same."""
    from tools.pairs import Label, LabeledPair

    store, _ = planted
    fit_mechanism(store, "planted", evaluate=False)
    pair_id = load_design(store, "planted").pair_ids[5]
    pair = store.pair(pair_id)
    swapped = pair.model_copy(update={"response_a": pair.response_b, "response_b": pair.response_a})
    label = store.label(pair_id, "planted")
    store.add_labeled_pairs(
        [LabeledPair(pair=swapped, labels=[Label(mechanism="planted", verdict=label.verdict.flipped())])]
    )
    store.put_values(
        ConceptValue(pair_id=swapped.id, concept_id=c, annotator="planted", value=-v)
        for c, v in store.pair_values(pair_id).items()
    )
    original, mirror = explain_pair(store, "planted", pair_id), explain_pair(store, "planted", swapped.id)
    assert original.p_a == mirror.p_b and original.p_b == mirror.p_a
    lifts = {c.concept: (c.value, c.lift) for c in original.concepts}
    assert {c.concept: (-c.value, -c.lift) for c in mirror.concepts} == lifts  # exactly


def test_one_group_holding_most_pairs_is_named_not_a_one_class_crash(planted):
    """A text repeated across most pairs (a canned refusal) links them into one query group: grouped
    splits cannot work, and the error says why and what to do (it was "y has 1 class" at 100k pairs)."""
    store, _ = planted
    store.db.execute("update pairs set response_b = 'I cannot help with that.' where rowid % 10 < 7")
    with pytest.raises(WhyprefError, match=r"splits grouped by query are impossible here: \d+ of the 360 pairs"):
        fit_mechanism(store, "planted")
    report = fit_mechanism(store, "planted", grouped=False)  # --random-splits
    assert report.evaluation is not None and "random" in report.evaluation.splits
