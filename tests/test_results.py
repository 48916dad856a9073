from app.results import Evaluation, compare, skipped


def skipped_check(name, advisory=False):
    return skipped(
        name,
        comparator=">=",
        unit="fraction",
        threshold=0.7,
        reason="not measured",
        advisory=advisory,
    )


def passing_check(name, advisory=False):
    return compare(
        name,
        0.9,
        0.7,
        ">=",
        unit="fraction",
        describe="x 90%",
        bound="70%",
        advisory=advisory,
    )


def test_evaluation_checking_nothing_is_inconclusive():
    evaluation = Evaluation(
        kind="model",
        checks=[skipped_check("size_reduction"), passing_check("param_ratio", True)],
    )
    assert evaluation.status == "inconclusive"


def test_evaluation_with_one_measured_check_passes():
    evaluation = Evaluation(
        kind="model",
        checks=[skipped_check("size_reduction"), passing_check("accuracy_loss")],
    )
    assert evaluation.status == "passed"
