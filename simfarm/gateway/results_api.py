"""``GET /api/v1/jobs/{id}/sparameters``: the S-parameters of a job's Touchstone results
(summarised by the worker at the end of the job), as JSON or one file's CSV."""

from __future__ import annotations

from typing import Literal

from flask import Blueprint, Response, jsonify, request
from pydantic import BaseModel, ConfigDict, Field

from simfarm.common.touchstone import TouchstoneSummary, to_csv
from simfarm.gateway.auth import require_visible
from simfarm.gateway.errors import ApiError, field_error
from simfarm.gateway.openapi import Body, document
from simfarm.gateway.parsing import check_job_id
from simfarm.gateway.services import services

bp = Blueprint("results", __name__, url_prefix="/api/v1")


class SParametersQuery(BaseModel):
    """Query parameters of ``GET /api/v1/jobs/{job_id}/sparameters``."""

    model_config = ConfigDict(extra="forbid")

    file: str | None = Field(default=None, max_length=1000,
                             description="only this file (its `name`); required for CSV")
    format: Literal["json", "csv"] = Field(default="json", description="`json` or `csv`")


class SParametersOut(BaseModel):
    """The job's Touchstone files, each as |Sij| in dB against frequency."""

    job_id: str
    files: list[TouchstoneSummary]


def touchstone_of(job_id: str) -> list[TouchstoneSummary]:
    """The summaries stored with the job (none before it ended or without .sNp files)."""
    return [TouchstoneSummary.model_validate(s) for s in services().jobs.touchstone(job_id)]


@bp.get("/jobs/<job_id>/sparameters")
@document(tags=["jobs"], path_params={"job_id": "the job's id"}, query=SParametersQuery,
          responses={200: Body(SParametersOut, "JSON; with `format=csv`, text/csv")},
          errors=(404, 422))
def job_sparameters(job_id: str) -> Response:
    """S-parameters of the Touchstone (``.sNp``) files in the job's results: |Sij| in
    dB at up to 1,001 frequencies per file, read with scikit-rf on the node that ran the
    job at its end. ``format=csv&file=NAME`` downloads one file's plotted data."""
    require_visible(check_job_id(job_id))
    query = SParametersQuery.model_validate(request.args.to_dict())
    files = touchstone_of(job_id)
    if query.file is not None:
        files = [f for f in files if f.name == query.file]
        if not files:
            raise ApiError(404, "not_found", f"job {job_id} has no Touchstone result "
                           f"{query.file!r}", [{"field": "file", "reason": "no such result"}])
    if query.format == "csv":
        if query.file is None:
            raise field_error("file", "name the file to download as CSV")
        stem = query.file.rsplit("/", 1)[-1].replace('"', "")
        return Response(to_csv(files[0]), mimetype="text/csv", headers={
            "Content-Disposition": f'attachment; filename="{stem}.csv"'})
    return jsonify(SParametersOut(job_id=job_id, files=files).model_dump(mode="json"))
