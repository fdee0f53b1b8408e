"""REST routes for project and results files: blobs and a job's results archive.

``GET``/``HEAD /api/v1/blobs/<sha256>`` answers whether a blob is stored (and serves
it, with ``Range`` support); for a blob not stored it answers 404 with the
``Upload-Offset`` a resumed upload must start at. ``PUT`` streams an upload body into
the store, resuming at ``Upload-Offset`` when given.
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request, send_file

from simfarm.common.errors import JobNotFound
from simfarm.common.files import ResultsInfo
from simfarm.common.states import JobState
from simfarm.gateway.auth import current_user, require_visible
from simfarm.gateway.blobstore import BlobError
from simfarm.gateway.errors import ApiError, field_error
from simfarm.gateway.files_bodies import BlobOut
from simfarm.gateway.openapi import Body, document
from simfarm.gateway.openapi.bodies import JobOut
from simfarm.gateway.parsing import check_job_id, parse_body
from simfarm.gateway.services import services

bp = Blueprint("files", __name__, url_prefix="/api/v1")
_SHA = {"sha256": "the blob's SHA-256 (lowercase hex)"}
_JOB = {"job_id": "the job's id"}
TAR = "application/x-tar"


def _check_sha(sha: str) -> str:
    if not services().blobs.valid(sha):
        raise ApiError(404, "not_found", f"blob {sha[:80]} not found (names are SHA-256 hex)")
    return sha


def _blob_response(sha: str, download_name: str) -> Response:
    svc = services()
    path = svc.blobs.path(sha)
    svc.blob_index.touch(sha)
    response = send_file(path, mimetype=TAR, as_attachment=True, download_name=download_name,
                         conditional=True, etag=sha, max_age=0)
    response.headers["X-Content-SHA256"] = sha
    return response


@bp.get("/blobs/<sha256>")
@document(
    tags=["files"], path_params=_SHA,
    responses={200: Body(None, "the blob (Range requests resume a download)", TAR)},
    headers={"Range": "optional byte range, e.g. bytes=1048576-"},
    errors=(404,),
)
def get_blob(sha256: str) -> Response:
    """Download a blob; ``HEAD`` checks whether it is stored.

    A 404 for a well-formed name carries ``Upload-Offset``: the bytes of an interrupted
    upload the gateway kept, where ``PUT`` resumes."""
    svc = services()
    sha = _check_sha(sha256)
    if not svc.blobs.exists(sha):
        response = jsonify({"error": "not_found", "detail": f"blob {sha} is not stored",
                            "fields": []})
        response.status_code = 404
        response.headers["Upload-Offset"] = str(svc.blobs.partial_size(sha, _uploader()))
        return response
    return _blob_response(sha, f"{sha}.tar")


@bp.put("/blobs/<sha256>")
@document(
    tags=["files"], path_params=_SHA,
    body=Body(None, "the raw bytes (streamed; any length up to max_upload_bytes)",
              "application/octet-stream"),
    headers={"Upload-Offset": "resume an interrupted upload at this byte (see GET/HEAD)"},
    responses={201: Body(BlobOut, "stored"), 200: Body(BlobOut, "already stored")},
    errors=(404, 409, 413, 422, 507),
)
def put_blob(sha256: str) -> tuple[Response, int]:
    """Upload a blob named by its SHA-256, streamed to disk and verified.

    Uploading a blob that is already stored returns 200 without reading the body
    (check with ``HEAD`` first to skip sending it). A body that does not hash to the
    name is refused (422) and discarded; one larger than the limit gets 413; one beyond
    the user's upload quota, or one that would leave the blob disk nearly full, 507."""
    svc = services()
    sha = _check_sha(sha256)
    if svc.blobs.exists(sha):
        svc.blob_index.touch(sha)
        return jsonify({"sha256": sha, "size": svc.blobs.size(sha), "created": False}), 200
    raw_offset = request.headers.get("Upload-Offset", "0")
    if not raw_offset.isdigit():
        raise field_error("Upload-Offset", "must be a byte offset (integer >= 0)", 400)
    user = _uploader()
    limit = min(svc.settings.max_upload_bytes, _quota_left(user))
    if request.content_length is not None and request.content_length > limit:
        if limit < svc.settings.max_upload_bytes:
            raise ApiError(507, "insufficient_storage", f"the upload ({request.content_length}"
                           f" bytes) exceeds your upload quota: {limit} bytes left (blobs "
                           "you uploaded count until they expire)")
        raise ApiError(413, "payload_too_large", f"upload exceeds the limit of {limit} bytes")
    request.max_content_length = svc.settings.max_upload_bytes
    try:
        size = svc.blobs.receive(sha, request.stream, int(raw_offset), limit,
                                 request.content_length, user)
    except BlobError as exc:
        error = ApiError(exc.status, exc.error, exc.detail)
        if exc.offset is not None:
            error.fields = [{"field": "Upload-Offset", "reason": str(exc.offset)}]
        raise error from None
    svc.blob_index.touch(sha)
    svc.blob_index.record_upload(user or "_", sha, size)
    return jsonify({"sha256": sha, "size": size, "created": True}), 201


def _uploader() -> str | None:
    principal = current_user()
    return "_worker" if principal.worker else principal.user


def _quota_left(user: str | None) -> int:
    """Bytes ``user`` may still upload: ``upload_quota_bytes`` minus the blobs they
    uploaded that are still stored and their interrupted uploads. Workers (results) have
    no quota of their own."""
    svc = services()
    quota = svc.settings.upload_quota_bytes
    if quota is None or current_user().worker:
        return svc.settings.max_upload_bytes
    key = user or "_"
    held = svc.blob_index.uploads_of(key)
    gone = [sha for sha in held if not svc.blobs.exists(sha)]
    svc.blob_index.forget_uploads(key, gone)
    used = sum(size for sha, size in held.items() if sha not in gone)
    return max(0, quota - used - svc.blobs.parts_size(user))


@bp.put("/jobs/<job_id>/results")
@document(tags=["files"], path_params=_JOB, body=ResultsInfo, responses={200: JobOut},
          errors=(404, 422))
def attach_results(job_id: str) -> Response:
    """Attach an uploaded results archive to a job (used by workers).

    A worker's token may attach results to a running job only."""
    from simfarm.gateway.jobs_api import job_body

    svc = services()
    info = parse_body(ResultsInfo)
    if current_user().worker:  # a worker sends the results of the jobs it runs
        if svc.jobs.state_of(check_job_id(job_id)) is not JobState.RUNNING:
            raise JobNotFound(job_id)
    else:
        require_visible(check_job_id(job_id))
    job = svc.jobs.get(job_id)
    if not svc.blobs.exists(info.sha256):
        raise field_error("sha256", "upload the results archive first (PUT /api/v1/blobs/...)")
    svc.jobs.update_fields(job.id, {"results": info.model_dump()})
    svc.blob_index.touch(info.sha256)
    return jsonify(job_body(svc.jobs.get(job.id)))


@bp.get("/jobs/<job_id>/results")
@document(tags=["files"], path_params=_JOB,
          responses={200: Body(None, "the job's results as a tar archive", TAR)}, errors=(404,))
def get_results(job_id: str) -> Response:
    """Download a staged job's results (``.aedtresults``, logs, declared outputs).

    Available once the worker uploaded them: after the job ended, also when it failed
    or was cancelled (then ``results.partial`` is true)."""
    svc = services()
    require_visible(check_job_id(job_id))
    job = svc.jobs.get(job_id)
    if job.results is None or not svc.blobs.exists(job.results.sha256):
        raise ApiError(404, "not_found", f"job {job.id} has no results (only staged jobs "
                       "upload results, once they end)")
    return _blob_response(job.results.sha256, f"{job.id}-results.tar")
