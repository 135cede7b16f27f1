"""Workflows in the admin: the list (its query count), the workflow page with its SVG
graph (one link per node, coloured by status) or its per-layer summary, the poll,
Cancel and Retry (refusals as messages), a job page's parents and children, and
"Run a job" with depends_on."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from jobs import admin_workflows, runner, workflows
from jobs.models import Job, JobDependency, JobStatus, Workflow
from tests.support.admin_helpers import client_for, status_of, texts

pytestmark = pytest.mark.django_db
S = JobStatus


def node(after=(), fail=False):
    config = {"steps": 1, "delay": 0, **({"fail_at": 1, "fail_attempts": 9} if fail else {})}
    return {"job_type": "demo.steps", "config": config, "after": list(after)}


def diamond(user, fail_b=False, name="diamond") -> tuple[Workflow, dict[str, int]]:
    spec = {
        "name": name,
        "jobs": {
            "a": node(),
            "b": node(["a"], fail=fail_b),
            "c": node(["a"]),
            "d": node(["b", "c"]),
        },
    }
    return workflows.workflow_create(spec=spec, user=user)


def run_all() -> None:
    while (job := Job.objects.runnable().order_by("pk").first()) is not None:
        runner.run_job(job.pk)


def boxes(html: str) -> dict[int, str]:
    """{job id: status} of the drawn boxes."""
    found = re.findall(r'<a href="[^"]+" class="jd-node jd-(\w+)" id="jd-node-(\d+)"', html)
    return {int(pk): status for status, pk in found}


# --- layout ---------------------------------------------------------------------------


def test_layers_are_the_longest_path_from_the_roots():
    # 1 → 2 → 3 → 5 and 1 → 5: 5 sits one past its deepest parent; 4 is a second root.
    edges = [(1, 2), (2, 3), (3, 5), (1, 5), (4, 5)]

    assert admin_workflows.layers([1, 2, 3, 4, 5], edges) == {1: 0, 2: 1, 3: 2, 4: 0, 5: 3}


def test_layer_counts_sum_each_layers_statuses():
    statuses = {1: "completed", 2: "running", 3: "pending", 4: "pending"}

    counts = admin_workflows.layer_counts(statuses, [(1, 2), (1, 3), (2, 4), (3, 4)])

    assert counts == [{"completed": 1}, {"pending": 1, "running": 1}, {"pending": 1}]


# --- the workflow page ------------------------------------------------------------------


def test_the_workflow_page_draws_one_linked_box_per_node_coloured_by_status(viewer):
    workflow, ids = diamond(viewer, fail_b=True)
    run_all()  # a completes, b fails, c completes, d is cancelled in b's name

    response = client_for(viewer).get(f"/admin/jobs/workflow/{workflow.pk}/change/")

    html = response.content.decode()
    assert response.status_code == 200
    assert html.count('<svg class="jd-graph"') == 1
    assert boxes(html) == {
        ids["a"]: S.COMPLETED,
        ids["b"]: S.FAILED,
        ids["c"]: S.COMPLETED,
        ids["d"]: S.CANCELLED,
    }
    for pk in ids.values():
        assert html.count(f'href="/admin/jobs/job/{pk}/change/"') == 1
    assert html.count('class="jd-edge"') == 4
    assert 'class="jd-badge jd-failed" id="jd-wf-status">failed<' in html
    assert "2 / 4" in html  # done / total
    # The colours are the admin's status colours, through admin.css.
    assert "/static/jobs/admin.css" in html and "/static/jobs/workflow_live.js" in html


def test_the_diamond_is_laid_out_in_three_columns_the_join_centred(viewer):
    workflow, ids = diamond(viewer)
    jobs, edges = workflows.graph(workflow)

    svg = str(admin_workflows.draw(jobs, edges, "admin").svg)

    corners = {
        int(pk): (int(x), int(y))
        for pk, x, y in re.findall(r'id="jd-node-(\d+)".*?<rect x="(\d+)" y="(\d+)"', svg)
    }
    xs = sorted({x for x, _ in corners.values()})
    assert len(xs) == 3
    assert corners[ids["a"]][0] == xs[0] and corners[ids["d"]][0] == xs[2]
    assert corners[ids["b"]][0] == corners[ids["c"]][0] == xs[1]
    assert corners[ids["b"]][1] < corners[ids["c"]][1]  # in id order within the layer
    assert corners[ids["a"]][1] == corners[ids["d"]][1]
    assert corners[ids["b"]][1] < corners[ids["a"]][1] < corners[ids["c"]][1]


def test_node_names_are_escaped_in_the_svg(viewer):
    workflow, _ = workflows.workflow_create(
        spec={"name": "<b>x</b>", "jobs": {"a": node()}}, user=viewer
    )

    html = client_for(viewer).get(f"/admin/jobs/workflow/{workflow.pk}/change/").content.decode()

    assert "<b>x</b>" not in html and "&lt;b&gt;x&lt;/b&gt;" in html


def test_a_big_workflow_shows_a_summary_per_layer_instead_of_the_drawing(viewer, monkeypatch):
    monkeypatch.setattr(admin_workflows, "DRAW_MAX", 3)
    workflow, _ = diamond(viewer)
    client = client_for(viewer)

    html = client.get(f"/admin/jobs/workflow/{workflow.pk}/change/").content.decode()
    poll = client.get(f"/admin/jobs/workflow/{workflow.pk}/status/").json()

    assert 'class="jd-graph"' not in html and 'id="jd-layers"' in html
    assert 'id="jd-layer-3"' in html and 'id="jd-layer-4"' not in html
    assert poll["layers"] == [{"pending": 1}, {"pending": 2}, {"pending": 1}]
    assert "nodes" not in poll


def test_a_ten_thousand_job_fan_out_page_stays_a_few_queries(viewer):
    jobs = {"root": node(), **{f"n{i}": node(["root"]) for i in range(10_000)}}
    workflow, _ = workflows.workflow_create(spec={"jobs": jobs}, user=viewer)
    client = client_for(viewer)

    with CaptureQueriesContext(connection) as queries:
        response = client.get(f"/admin/jobs/workflow/{workflow.pk}/change/")

    assert response.status_code == 200
    assert len(response.content) < 50_000
    assert len(queries) < 15, [q["sql"][:120] for q in queries]
    assert client.get(f"/admin/jobs/workflow/{workflow.pk}/status/").json()["layers"] == [
        {"pending": 1},
        {"pending": 10_000},
    ]


def test_the_poll_gives_each_nodes_status_and_the_counts(viewer):
    workflow, ids = diamond(viewer)
    client = client_for(viewer)
    before = client.get(f"/admin/jobs/workflow/{workflow.pk}/status/").json()

    Job.objects.filter(pk=ids["a"]).update(status=S.COMPLETED)  # run_job would drain all
    after = client.get(f"/admin/jobs/workflow/{workflow.pk}/status/").json()

    assert before["nodes"] == {str(pk): S.PENDING for pk in ids.values()}
    assert after["nodes"][str(ids["a"])] == S.COMPLETED
    assert (after["status"], after["done"], after["total"], after["finished"]) == (
        "running",
        1,
        4,
        False,
    )
    assert after["counts"] == {S.COMPLETED: 1, S.PENDING: 3}
    assert after["can_cancel"] and not after["can_retry"]
    Job.objects.filter(workflow=workflow).update(status=S.COMPLETED)
    done = client.get(f"/admin/jobs/workflow/{workflow.pk}/status/").json()
    assert (done["status"], done["finished"], done["can_cancel"]) == (S.COMPLETED, True, False)


def test_another_users_workflow_is_a_404_and_absent_from_the_list(viewer, boss):
    workflow, _ = diamond(boss)
    client = client_for(viewer)

    assert client.get(f"/admin/jobs/workflow/{workflow.pk}/status/").status_code == 404
    assert client.post(f"/admin/jobs/workflow/{workflow.pk}/cancel/").status_code == 404
    page = client.get(f"/admin/jobs/workflow/{workflow.pk}/change/", follow=True)
    assert "Perhaps it was deleted?" in " ".join(texts(page))
    assert f"/admin/jobs/workflow/{workflow.pk}/change/" not in (
        client.get("/admin/jobs/workflow/").content.decode()
    )


# --- the list ---------------------------------------------------------------------------


def test_the_workflow_list_shows_status_and_progress(viewer):
    diamond(viewer, fail_b=True, name="nightly")
    run_all()
    diamond(viewer, name="hourly")

    html = client_for(viewer).get("/admin/jobs/workflow/").content.decode()

    assert "nightly" in html and "hourly" in html
    assert '<span class="jd-badge jd-failed">failed</span>' in html
    assert '<span class="jd-badge jd-running">running</span>' in html
    assert "2 / 4" in html and "0 / 4" in html


def test_the_workflow_lists_query_count_does_not_depend_on_its_size(viewer):
    client = client_for(viewer)

    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert client.get("/admin/jobs/workflow/").status_code == 200
        return len(queries)

    diamond(viewer)
    one = count()
    for _ in range(9):
        diamond(viewer)

    assert count() == one


# --- Cancel and Retry -------------------------------------------------------------------


def test_cancel_cancels_the_workflows_jobs_and_says_so(viewer):
    workflow, ids = diamond(viewer)

    response = client_for(viewer).post(f"/admin/jobs/workflow/{workflow.pk}/cancel/", follow=True)

    # a is cancelled; b, c and d in its name.
    assert texts(response) == [f"Workflow #{workflow.pk}: cancelled 1 job; no jobs left to run."]
    assert {status_of(Job(pk=pk)) for pk in ids.values()} == {S.CANCELLED}


def test_retry_runs_the_failed_branch_again(viewer):
    workflow, ids = diamond(viewer, fail_b=True)
    run_all()

    response = client_for(viewer).post(f"/admin/jobs/workflow/{workflow.pk}/retry/", follow=True)

    assert texts(response) == [f"Workflow #{workflow.pk}: retried 1 job; 2 jobs left to run."]
    assert status_of(Job(pk=ids["b"])) == S.PENDING
    assert status_of(Job(pk=ids["d"])) == S.PENDING  # put back by b's retry


def test_a_refused_cancel_or_retry_is_a_message_not_an_error(viewer, watcher):
    finished, _ = diamond(viewer)
    run_all()
    theirs, ids = diamond(viewer)
    client = client_for(viewer)

    cancel = client.post(f"/admin/jobs/workflow/{finished.pk}/cancel/", follow=True)
    retry = client.post(f"/admin/jobs/workflow/{finished.pk}/retry/", follow=True)
    # The watcher sees every workflow but may act only on their own.
    refused = client_for(watcher).post(f"/admin/jobs/workflow/{theirs.pk}/cancel/", follow=True)

    assert cancel.status_code == retry.status_code == refused.status_code == 200
    assert texts(cancel) == [f"Refused: cannot cancel workflow #{finished.pk} job: it is finished."]
    assert texts(retry)[0].startswith(f"Refused: cannot retry workflow #{finished.pk}")
    assert texts(refused) == [
        f"Refused: workflow #{theirs.pk}: you may only act on your own workflows."
    ]
    assert status_of(Job(pk=ids["a"])) == S.PENDING
    assert client.get(f"/admin/jobs/workflow/{finished.pk}/cancel/").status_code == 405


def test_the_buttons_show_only_when_they_apply_and_the_user_may_act(viewer, watcher):
    workflow, _ = diamond(viewer)

    mine = client_for(viewer).get(f"/admin/jobs/workflow/{workflow.pk}/change/").content.decode()
    seen = client_for(watcher).get(f"/admin/jobs/workflow/{workflow.pk}/change/").content.decode()

    assert re.search(r'id="jd-wf-cancel-tool">', mine)
    assert re.search(r'id="jd-wf-retry-tool" hidden>', mine)
    assert re.search(r'id="jd-wf-cancel-tool" hidden>', seen)


# --- the job page ---------------------------------------------------------------------


def test_a_job_page_lists_its_workflow_parents_and_children(viewer):
    workflow, ids = diamond(viewer)
    client = client_for(viewer)

    b = client.get(f"/admin/jobs/job/{ids['b']}/change/").content.decode()
    d = client.get(f"/admin/jobs/job/{ids['d']}/change/").content.decode()

    assert f'href="/admin/jobs/workflow/{workflow.pk}/change/"' in b
    parents_b = re.search(r'<ul class="jd-links" id="jd-parents">(.*?)</ul>', b, re.S).group(1)
    children_b = re.search(r'<ul class="jd-links" id="jd-children">(.*?)</ul>', b, re.S).group(1)
    assert f'href="/admin/jobs/job/{ids["a"]}/change/">#{ids["a"]} a</a>' in parents_b
    assert "jd-pending" in parents_b
    assert f'href="/admin/jobs/job/{ids["d"]}/change/">#{ids["d"]} d</a>' in children_b
    parents_d = re.search(r'<ul class="jd-links" id="jd-parents">(.*?)</ul>', d, re.S).group(1)
    assert parents_d.count("<li>") == 2 and 'id="jd-children"' not in d
    assert f"waiting for parents #{ids['b']} (pending), #{ids['c']} (pending)" in d


def test_a_job_without_parents_or_children_has_no_dependency_section(viewer, make_job):
    job = make_job(S.PENDING, viewer)

    html = client_for(viewer).get(f"/admin/jobs/job/{job.pk}/change/").content.decode()

    assert 'id="jd-deps"' not in html


def test_a_parent_of_another_user_is_named_without_a_link(viewer, boss, make_job):
    parent = make_job(S.RUNNING, boss)
    child = make_job(S.PENDING, viewer)
    JobDependency.objects.create(parent=parent, child=child)

    html = client_for(viewer).get(f"/admin/jobs/job/{child.pk}/change/").content.decode()

    assert f"#{parent.pk} (a job of another user)" in html
    assert f'href="/admin/jobs/job/{parent.pk}/change/"' not in html


def test_a_fan_out_root_names_its_first_children_and_counts_the_rest(viewer, monkeypatch):
    monkeypatch.setattr(admin_workflows, "LINKS_SHOWN", 2)
    workflow, _ = workflows.workflow_create(
        spec={"jobs": {"r": node(), "x": node(["r"]), "y": node(["r"]), "z": node(["r"])}},
        user=viewer,
    )
    root = Job.objects.get(workflow=workflow, workflow_node="r")

    html = client_for(viewer).get(f"/admin/jobs/job/{root.pk}/change/").content.decode()

    children = re.search(r'id="jd-children">(.*?)</ul>', html, re.S).group(1)
    assert children.count("<li>") == 2
    assert "and 1 more" in html


# --- "Run a job" with depends_on ---------------------------------------------------------


def run_form(**extra):
    return {
        "job_type": "demo.steps",
        "steps": 2,
        "delay": 0,
        "priority": 0,
        "run_queue": "default",
        "_run": "1",
        **extra,
    }


def test_run_a_job_after_others(viewer, make_job):
    first = make_job(S.RUNNING, viewer)
    second = make_job(S.COMPLETED, viewer)
    client = client_for(viewer)

    form = client.get("/admin/jobs/job/run/?job_type=demo.steps").content.decode()
    response = client.post(
        "/admin/jobs/job/run/",
        run_form(run_depends_on=f"#{first.pk}, {second.pk}", run_on_parent_failure="run"),
    )

    assert 'name="run_depends_on"' in form and 'name="run_on_parent_failure"' in form
    assert response.status_code == 302
    job = Job.objects.latest("pk")
    assert (job.waiting_on, job.on_parent_failure) == (1, "run")
    assert set(job.parent_links.values_list("parent_id", flat=True)) == {first.pk, second.pk}
    page = client.get(response["Location"]).content.decode()
    assert f"waiting for parent #{first.pk} (running)" in page


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("12, x", "&#x27;x&#x27; is not a job id."),
        ("999999", "There is no job #999999 that you may see."),
    ],
)
def test_a_bad_depends_on_is_a_form_error_and_creates_nothing(viewer, value, error):
    before = Job.objects.count()

    response = client_for(viewer).post("/admin/jobs/job/run/", run_form(run_depends_on=value))

    assert response.status_code == 200
    html = response.content.decode()
    assert error in html
    assert re.search(r"form-row errors field-run_depends_on", html)
    assert Job.objects.count() == before


def test_depends_on_another_users_job_is_refused(viewer, boss, make_job):
    theirs = make_job(S.RUNNING, boss)

    response = client_for(viewer).post(
        "/admin/jobs/job/run/", run_form(run_depends_on=str(theirs.pk))
    )

    assert f"There is no job #{theirs.pk} that you may see." in response.content.decode()
    assert Job.objects.count() == 1


@pytest.mark.parametrize("term", ["nightly", "abc", "#1", "²", "99999999999999999999"])
def test_the_workflow_search_takes_a_name_or_an_id(viewer, term):
    workflow, _ = diamond(viewer, name="nightly")

    response = client_for(viewer).get("/admin/jobs/workflow/", {"q": term})

    assert response.status_code == 200
    found = f'href="/admin/jobs/workflow/{workflow.pk}/change/' in response.content.decode()
    assert found == (term == "nightly")


def test_every_workflow_url_answers(superuser):
    workflow, _ = diamond(superuser)
    client = client_for(superuser)

    for url in ("/admin/jobs/workflow/", f"/admin/jobs/workflow/{workflow.pk}/change/"):
        assert client.get(url).status_code == 200
    assert client.get(f"/admin/jobs/workflow/{workflow.pk}/status/").status_code == 200
    assert client.get(f"/admin/jobs/workflow/{workflow.pk}/history/").status_code == 200
    assert client.get("/admin/jobs/workflow/abc/status/").status_code == 404
    assert client.get("/admin/jobs/workflow/add/", follow=True).status_code in (200, 403)
    for button in ("cancel", "retry"):
        assert client.post(f"/admin/jobs/workflow/999999/{button}/").status_code == 404
        response = client.post(f"/admin/jobs/workflow/{workflow.pk}/{button}/", follow=True)
        assert response.status_code == 200


def test_the_job_pages_poll_carries_its_parents_and_childrens_statuses_when_asked(viewer):
    _, ids = diamond(viewer)
    client = client_for(viewer)
    Job.objects.filter(pk=ids["a"]).update(status=S.RUNNING)

    page = client.get(f"/admin/jobs/job/{ids['b']}/change/").content.decode()
    asked = client.get(f"/admin/jobs/job/{ids['b']}/status/?deps=1").json()
    plain = client.get(f"/admin/jobs/job/{ids['b']}/status/").json()

    assert f'data-dep="{ids["a"]}">running<' in page and f'data-dep="{ids["d"]}">pending<' in page
    assert asked["deps"] == {str(ids["a"]): S.RUNNING, str(ids["d"]): S.PENDING}
    assert "deps" not in plain
