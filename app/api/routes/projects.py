"""Project routes: policies, badges and metric trends."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from app import admin
from app.api.deps import Admin, Reader, RuntimeDep, reject_unknown_query
from app.errors import InputError, NotFoundError
from app.evaluation.readers import suggest
from app.gates import validate_filter, validate_meta
from app.reports.badge import render_badge
from app.schemas import (
    GateKind,
    ProjectPolicyIn,
    ProjectPolicyOut,
    Trend,
    TrendPoint,
)
from app.storage.models import GateRecord
from app.storage.repository import GateFilter

router = APIRouter(
    prefix="/api/v1",
    tags=["projects"],
    dependencies=[Depends(reject_unknown_query)],
)


@router.get("/policy/schema")
def get_policy_schema() -> dict[str, Any]:
    """Return the JSON schema of a policy document."""
    return admin.policy_schema()


@router.get("/projects/{project}/policy")
def get_project_policy(
    runtime: RuntimeDep, caller: Reader, project: str
) -> ProjectPolicyOut:
    """Return the project's stored policy and the thresholds in force."""
    _visible(caller, project)
    return admin.project_policy(runtime, project)


@router.put("/projects/{project}/policy")
def put_project_policy(
    runtime: RuntimeDep, caller: Admin, project: str, body: ProjectPolicyIn
) -> ProjectPolicyOut:
    """Store a new version of the project's policy; requests start from it."""
    validate_meta(project, None, None)
    caller.require_project(project)
    return admin.put_project_policy(runtime, project, body)


@router.get("/projects/{project}/badge.svg", response_class=Response)
def get_badge(
    runtime: RuntimeDep,
    caller: Reader,
    project: str,
    branch: str | None = None,
    kind: GateKind | None = None,
) -> Response:
    """Return the project's latest verdict as an SVG badge."""
    _visible(caller, project)
    latest = runtime.latest(GateFilter(project=project, branch=branch, kind=kind))
    label = "distilgate" + (f" {kind}" if kind else "")
    svg = render_badge(label, None if latest is None else latest.status)
    headers = {"Cache-Control": "no-cache, max-age=0"}
    return Response(svg, media_type="image/svg+xml", headers=headers)


@router.get("/projects/{project}/trend")
def get_trend(
    runtime: RuntimeDep,
    caller: Reader,
    project: str,
    metric: str,
    branch: str | None = None,
    kind: GateKind | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Trend:
    """Return a metric's values over the newest results, oldest first."""
    _visible(caller, project)
    branch = validate_filter(branch, "branch")
    records = runtime.series(
        GateFilter(project=project, branch=branch, kind=kind), limit=limit
    )
    _check_metric(metric, records)
    points = [
        TrendPoint(
            id=r.id,
            created_at=r.created_at,
            commit=r.commit,
            branch=r.branch,
            status=r.status,
            value=_number(r.metrics.get(metric)),
        )
        for r in records
    ]
    return Trend(project=project, metric=metric, points=points)


def _visible(caller: Any, project: str) -> None:
    validate_filter(project, "project", location="path")
    if caller.projects is not None and project not in caller.projects:
        raise NotFoundError(f"project {project!r} not found", field="project")


def _check_metric(metric: str, records: list[GateRecord]) -> None:
    """Reject a metric that none of the results carries, naming those they do.

    The metric names depend on the gate kind and its inputs, so the stored
    results are the list of known names. With no results, any name passes.
    """
    known = sorted({name for record in records for name in record.metrics})
    if not records or metric in known:
        return
    raise InputError(
        f"metric {metric!r} is not in any of the {len(records)} newest results"
        f"{suggest(metric, known)}; they have {', '.join(known) or 'no metrics'}",
        field="metric",
        value=metric,
        location="query",
    )


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)
