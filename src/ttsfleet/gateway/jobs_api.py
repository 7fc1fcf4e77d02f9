"""`/v1/jobs`: submit a job (its id comes back at once), read its status, download its audio;
`/v1/dead-letters`: list, inspect and re-drive jobs that ran out of attempts.

Every route acts for the caller the gatekeeper admitted (`request.state.tenant`)
and sees only that caller's jobs.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import StreamingResponse

from ttsfleet.gateway.errors import responses
from ttsfleet.gateway.schemas import JobList, JobRequest, JobStatus
from ttsfleet.jobs.model import AudioFormat, Job, JobSpec
from ttsfleet.jobs.service import JobService
from ttsfleet.proto import tts_pb2

TEXT_FORMATS = {
    "auto": tts_pb2.TEXT_FORMAT_UNSPECIFIED,
    "plain": tts_pb2.TEXT_FORMAT_PLAIN,
    "ssml": tts_pb2.TEXT_FORMAT_SSML,
}

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])
dead_letters = APIRouter(prefix="/v1/dead-letters", tags=["dead letters"])


def _service(request: Request) -> JobService:
    service: JobService = request.app.state.jobs
    return service


def _tenant(request: Request) -> str:
    tenant: str = request.state.caller.tenant
    return tenant


def _status(job: Job) -> JobStatus:
    return JobStatus.model_validate(job.public())


@router.post(
    "",
    status_code=202,
    response_model=JobStatus,
    responses={
        200: {
            "model": JobStatus,
            "description": "The job an earlier submission with the same idempotency key created.",
        },
        **responses(400, 422, 429),
    },
    summary="Submit a long text; the job id comes back at once",
)
async def submit_job(
    body: JobRequest,
    request: Request,
    response: Response,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> JobStatus:
    key = body.idempotency_key or idempotency_key or ""
    spec = JobSpec(
        text=body.text,
        voice=body.voice,
        speaker=body.speaker,
        format=AudioFormat(body.format),
        text_format=TEXT_FORMATS[body.text_format],
        speed=body.speed,
        sample_rate=body.sample_rate or 0,
        callback_url=body.callback_url or "",
        idempotency_key=key,
        tenant=_tenant(request),
    )
    job, created = await _service(request).submit(spec)
    response.status_code = 202 if created else 200
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    return _status(job)


@router.get("/{job_id}", response_model=JobStatus, responses=responses(404))
async def get_job(job_id: str, request: Request) -> JobStatus:
    """The job's state, progress (pieces done of total), attempts and last error."""
    return _status(await _service(request).get(job_id, _tenant(request)))


@router.get(
    "/{job_id}/audio",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {audio_format.media_type: {} for audio_format in AudioFormat},
            "description": "The audio, in the format the job asked for.",
        },
        **responses(404, 409),
    },
)
async def get_job_audio(job_id: str, request: Request) -> StreamingResponse:
    """The succeeded job's audio; 409 while it is queued or running, or if it failed."""
    audio = await _service(request).audio(job_id, _tenant(request))
    return StreamingResponse(
        audio.chunks,
        media_type=audio.job.spec.format.media_type,
        headers={"Content-Length": str(audio.size)},
    )


@dead_letters.get("", response_model=JobList)
async def list_dead_letters(
    request: Request, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> JobList:
    """The caller's dead-lettered jobs, most recent first, each with its last error."""
    jobs = await _service(request).dead_letters(_tenant(request), limit)
    return JobList(jobs=[_status(job) for job in jobs])


@dead_letters.get("/{job_id}", response_model=JobStatus, responses=responses(404))
async def get_dead_letter(job_id: str, request: Request) -> JobStatus:
    """One dead-lettered job; 404 for any job that is not dead-lettered."""
    return _status(await _service(request).dead_letter(job_id, _tenant(request)))


@dead_letters.post(
    "/{job_id}/redrive", status_code=202, response_model=JobStatus, responses=responses(404, 409)
)
async def redrive_job(job_id: str, request: Request) -> JobStatus:
    """Queues a dead-lettered job again with fresh attempts (after fixing what failed it)."""
    return _status(await _service(request).redrive(job_id, _tenant(request)))
