"""One table each: front-ends' names and order (the registry), tasks' headline metrics (the
`Task` classes); the workdir reader, the report and the demo read them from there."""

import ml_collections
import pytest

from resize_jax import frontends, tasks
from resize_jax.tools import demo, report
from resize_jax.train import default_config, workdir


def _section(**fields):
    return ml_collections.ConfigDict(fields)


def test_every_frontend_has_a_label_and_a_place_in_tables():
    names = frontends.frontend_names()
    for name in names:
        assert frontends.frontend_class(name).label, name
    ranks = [frontends.frontend_rank(n) for n in [*names, "unregistered", frontends.NO_FRONTEND]]
    assert ranks == sorted(ranks) and len(set(ranks)) == len(ranks)
    assert frontends.frontend_rank("fixed") == 0
    described = {
        frontends.describe_frontend(_section(name="fixed", method="bicubic", antialias=True)),
        frontends.describe_frontend(_section(name="learned")),
        frontends.describe_frontend(_section(name="none")),
        frontends.describe_frontend(_section(name="unregistered")),
    }
    assert described == {
        "fixed bicubic (antialiased)",
        "learned resizer",
        "full resolution (no front-end)",
        "unregistered",
    }


def test_demo_runs_are_labelled_by_the_frontend_table():
    labels = [workdir.describe(default_config.get_config(arg)) for arg in demo.RUNS.values()]
    assert labels == [
        "fixed bilinear",
        "fixed bilinear (antialiased)",
        "fixed bicubic",
        "learned resizer",
        "saliency sampler",
        "full resolution (no front-end)",
    ]


@pytest.mark.parametrize("name", tasks.task_names())
def test_every_task_names_its_headline_metric(name):
    headline = tasks.task_class(name).headline_metric
    assert headline.key.startswith("eval/") and headline.better in ("higher", "lower")
    assert report.headline_metric(name) == headline


def test_report_reads_the_headline_from_the_task():
    assert report.headline_metric("classification").label == "top-1 accuracy"
    assert report.headline_metric("segmentation").key == "eval/miou"
    # Regression and its gaze preset lead with the mean Euclidean error, lower is better.
    for name in ("regression", "gaze"):
        assert report.headline_metric(name)[::2] == ("eval/mean_error", "lower")
    # A task this installation does not know: its eval loss.
    assert report.headline_metric("unknown").label == "loss (lower is better)"
