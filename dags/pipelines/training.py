"""An ML training pipeline in the spirit of KFP's "XGBoost training with confusion matrix" sample.

What it shows:
  * ``load-data`` loads scikit-learn's bundled breast-cancer data set (569 rows,
    30 features, 2 classes: it ships inside the package, nothing is downloaded at
    run time) and writes it as a CSV ``Dataset``;
  * ``split-data`` makes a stratified train/test split (``test_size``, ``seed``);
  * ``train-model`` fits a ``GradientBoostingClassifier`` (``n_estimators``,
    ``seed``, and the ``model_options`` dict as further arguments) and saves it as a
    pickled ``Model`` artifact with metadata;
  * ``evaluate-model`` logs accuracy/precision/recall/F1/ROC AUC through
    ``Output[Metrics]`` (``log_metric``), a confusion matrix through
    ``Output[ClassificationMetrics]`` (``log_confusion_matrix``), writes an
    ``Output[Markdown]`` report, and returns the accuracy;
  * typed pipeline parameters: ``test_size: float``, ``n_estimators: int``,
    ``seed: int``, ``model_options: dict`` (defaults: scikit-learn's own), each described
    by the docstring's ``Args:`` (KFP puts them in the compiled YAML; the trigger form
    shows them).
Every component pins the same packages, so the ``local`` runtime builds a single
virtualenv for all four (first run: about 20 s of pip with a warm pip cache,
longer with a cold one; later runs reuse it).

Expected result with the defaults (``test_size=0.25``, ``n_estimators=50``, ``seed=0``):
  load-data   → Dataset, metadata rows=569, features=30
  split-data  → train 426 rows, test 143 rows (n_train=426, n_test=143)
  train-model → Model (metadata framework=scikit-learn, n_estimators=50,
                train_accuracy=1.0)
  evaluate-model → metrics accuracy 0.951, precision 0.977, recall 0.9444,
                f1 0.9605, roc_auc 0.9858, test_rows 143; confusion matrix
                (rows = true class [malignant, benign], columns = predicted)
                [[51, 2], [5, 85]]; a Markdown report with both tables; returns
                136/143 = 0.951048951048951, the pipeline output ``Output``.
With ``-p test_size=0.3 -p n_estimators=100 -p seed=7``: 398/171 rows, accuracy
0.9590643274853801, confusion matrix [[63, 1], [6, 101]].
The numbers are deterministic for a given seed and these pinned versions.
"""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import ClassificationMetrics, Dataset, Input, Markdown, Metrics, Model, Output

# One pinned requirement set for every component: one cached virtualenv.
PACKAGES = ["scikit-learn==1.9.1", "numpy==2.4.6", "scipy==1.17.1"]


@dsl.component(base_image="python:3.11", packages_to_install=PACKAGES)
def load_data(data: Output[Dataset]):
    import numpy as np
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer()
    table = np.column_stack([bunch.data, bunch.target])
    header = ",".join([name.replace(" ", "_") for name in bunch.feature_names] + ["target"])
    np.savetxt(data.path, table, delimiter=",", header=header, comments="", fmt="%.10g")
    data.metadata["rows"] = int(table.shape[0])
    data.metadata["features"] = int(bunch.data.shape[1])
    data.metadata["classes"] = list(bunch.target_names)


@dsl.component(base_image="python:3.11", packages_to_install=PACKAGES)
def split_data(
    data: Input[Dataset],
    test_size: float,
    seed: int,
    train: Output[Dataset],
    test: Output[Dataset],
) -> NamedTuple("Split", [("n_train", int), ("n_test", int)]):
    from collections import namedtuple

    import numpy as np
    from sklearn.model_selection import train_test_split

    with open(data.path) as f:
        header = f.readline().strip()
    table = np.loadtxt(data.path, delimiter=",", skiprows=1)
    train_rows, test_rows = train_test_split(
        table, test_size=test_size, random_state=seed, stratify=table[:, -1]
    )
    for artifact, rows in ((train, train_rows), (test, test_rows)):
        np.savetxt(artifact.path, rows, delimiter=",", header=header, comments="", fmt="%.10g")
        artifact.metadata["rows"] = int(rows.shape[0])
    return namedtuple("Split", ["n_train", "n_test"])(int(train_rows.shape[0]), int(test_rows.shape[0]))


@dsl.component(base_image="python:3.11", packages_to_install=PACKAGES)
def train_model(train: Input[Dataset], n_estimators: int, seed: int, options: dict, model: Output[Model]):
    import pickle

    import numpy as np
    import sklearn
    from sklearn.ensemble import GradientBoostingClassifier

    table = np.loadtxt(train.path, delimiter=",", skiprows=1)
    features, labels = table[:, :-1], table[:, -1].astype(int)
    classifier = GradientBoostingClassifier(n_estimators=n_estimators, random_state=seed, **options)
    classifier.fit(features, labels)
    with open(model.path, "wb") as f:
        pickle.dump(classifier, f)
    model.metadata["framework"] = "scikit-learn"
    model.metadata["framework_version"] = sklearn.__version__
    model.metadata["estimator"] = "GradientBoostingClassifier"
    model.metadata["n_estimators"] = n_estimators
    model.metadata["options"] = options
    model.metadata["train_accuracy"] = float(classifier.score(features, labels))


@dsl.component(base_image="python:3.11", packages_to_install=PACKAGES)
def evaluate_model(
    test: Input[Dataset],
    model: Input[Model],
    metrics: Output[Metrics],
    confusion: Output[ClassificationMetrics],
    report: Output[Markdown],
) -> float:
    import pickle

    import numpy as np
    from sklearn.metrics import (
        accuracy_score,
        confusion_matrix,
        f1_score,
        precision_score,
        recall_score,
        roc_auc_score,
    )

    table = np.loadtxt(test.path, delimiter=",", skiprows=1)
    features, labels = table[:, :-1], table[:, -1].astype(int)
    with open(model.path, "rb") as f:
        classifier = pickle.load(f)
    predicted = classifier.predict(features)
    scores = {
        "accuracy": accuracy_score(labels, predicted),
        "precision": precision_score(labels, predicted),
        "recall": recall_score(labels, predicted),
        "f1": f1_score(labels, predicted),
        "roc_auc": roc_auc_score(labels, classifier.predict_proba(features)[:, 1]),
    }
    for name, value in scores.items():
        metrics.log_metric(name, round(float(value), 4))
    metrics.log_metric("test_rows", int(len(labels)))

    categories = ["malignant", "benign"]  # load_breast_cancer: target 0 = malignant
    matrix = confusion_matrix(labels, predicted, labels=[0, 1]).tolist()
    confusion.log_confusion_matrix(categories, matrix)

    lines = [
        "# Breast-cancer classifier",
        "",
        f"GradientBoostingClassifier, {model.metadata.get('n_estimators')} estimators, "
        f"evaluated on {len(labels)} held-out rows.",
        "",
        "| metric | value |",
        "| --- | --- |",
        *[f"| {name} | {value:.4f} |" for name, value in scores.items()],
        "",
        "Confusion matrix (rows: true class, columns: predicted):",
        "",
        "| | " + " | ".join(categories) + " |",
        "| --- | " + " | ".join("---" for _ in categories) + " |",
        *[f"| **{c}** | " + " | ".join(str(n) for n in row) + " |" for c, row in zip(categories, matrix)],
        "",
    ]
    with open(report.path, "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))
    return float(scores["accuracy"])


@dsl.pipeline(
    name="training",
    description="Train and evaluate a classifier on a bundled data set, with metrics and a confusion matrix.",
)
def training(
    test_size: float = 0.25,
    n_estimators: int = 50,
    seed: int = 0,
    model_options: dict = {"learning_rate": 0.1, "max_depth": 3},
) -> float:
    """Train a gradient-boosting classifier on scikit-learn's breast-cancer data and evaluate it.

    Args:
        test_size: Share of the rows held out for evaluation (0 to 1).
        n_estimators: Number of boosting stages.
        seed: Seed of the split and of the classifier, for reproducible runs.
        model_options: Further GradientBoostingClassifier arguments, e.g. {"learning_rate": 0.1, "max_depth": 3}.
    """
    loaded = load_data()
    split = split_data(data=loaded.outputs["data"], test_size=test_size, seed=seed)
    trained = train_model(train=split.outputs["train"], n_estimators=n_estimators, seed=seed, options=model_options)
    evaluated = evaluate_model(test=split.outputs["test"], model=trained.outputs["model"])
    return evaluated.outputs["Output"]


PIPELINE = training
