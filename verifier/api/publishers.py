"""Publishers' signing identities and marks: /v1/publishers (operators enroll; publishers read their own).

Enrollment is an operator's act (admin key): whoever enrolls a certificate for a publisher
vouches that the publisher holds its key, since ingest attributes what it signed to them; a
mark (watermark, credit line, logo) changes what every verification counts as evidence
(`matching.marks`).
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, Literal

from fastapi import APIRouter, Depends, File, Form, Query, Response, UploadFile
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from verifier.api.common import PROBLEM_RESPONSES, read_upload
from verifier.api.deps import get_api_key, get_service
from verifier.errors import Forbidden, NotFound
from verifier.matching.marks import MAX_MARK_BYTES, SUGGESTIONS_JOB
from verifier.service import Service
from verifier.storage import jobs
from verifier.storage.accounts import Scope, list_publishers, require_scope
from verifier.storage.marks import marks_of, remove_mark
from verifier.storage.models import (
    ApiKey,
    Job,
    Publisher,
    PublisherMark,
    PublisherSigner,
)
from verifier.storage.signers import (
    MAX_PEM_BYTES,
    enroll,
    parse_certificate,
    remove,
    signers_of,
)

router = APIRouter(prefix="/v1/publishers", tags=["publishers"])

# Photos a suggestions request may look at: ~31 s and +630 MiB on 2 cores at 500, beside the verifications this
# process serves (the search is quadratic: 71 s and 1.3 GB at 1,000, which the CLI's `find-marks --sample` allows).
MAX_SUGGEST_SAMPLE = 500


class PublisherOut(BaseModel):
    id: uuid.UUID
    name: str
    created_at: dt.datetime


class SignerIn(BaseModel):
    certificate_pem: str = Field(max_length=MAX_PEM_BYTES, description="One X.509 certificate, PEM.")
    label: str | None = Field(None, max_length=200)


class SignerOut(BaseModel):
    id: uuid.UUID
    subject: str
    issuer: str
    spki_sha256: str = Field(description="SHA-256 of the certificate's SubjectPublicKeyInfo: what ingest matches.")
    is_ca: bool = Field(description="A CA: originals signed by certificates it issued are the publisher's.")
    not_before: dt.datetime
    not_after: dt.datetime
    label: str | None
    created_at: dt.datetime

    @classmethod
    def of(cls, s: PublisherSigner) -> SignerOut:
        return cls(id=s.id, subject=s.subject, issuer=s.issuer, spki_sha256=s.spki_sha256, is_ca=s.is_ca,
                   not_before=s.not_before, not_after=s.not_after, label=s.label, created_at=s.created_at)


class MarkOut(BaseModel):
    id: uuid.UUID
    label: str | None
    sha256: str = Field(description="SHA-256 of the file as enrolled.")
    width: int
    height: int
    created_at: dt.datetime

    @classmethod
    def of(cls, m: PublisherMark) -> MarkOut:
        return cls(id=m.id, label=m.label, sha256=m.sha256, width=m.width, height=m.height, created_at=m.created_at)


class SuggestionOut(BaseModel):
    """An overlay many of the publisher's registered photos share: a mark to enrol once a person has looked."""

    box: tuple[float, float, float, float] = Field(description="x0, y0, x1, y1 where the photos show it, in `frame`.")
    frame: str = Field(description='How `box` is measured: "share" (fractions of the width and height), or '
                       '"height from x,y" / "width from x,y" (photo heights or widths from that point, given as '
                       'fractions of the frame: 0.5,0.5 the centre, 1,1 the lower right corner).')
    photos: int = Field(description="How many of the photos looked at show it.")
    looked_at: int = Field(description="How many of the publisher's newest originals were looked at.")
    keypoints: int
    examples: list[uuid.UUID] = Field(description="Up to five registered originals that show it.")
    png_base64: str = Field(description="The overlay as the photos show it (their per-pixel median over the box): "
                            "PNG, base64. The publisher's own file of the mark serves better when enrolled.")


class SuggestionsJobOut(BaseModel):
    """A request to look for the overlays a publisher's photos share: queued, then run by the service in the
    background (~16 s for 300 photos on 2 cores, ~31 s for 500); poll its URL until `state` is done or failed."""

    id: uuid.UUID
    state: Literal["queued", "running", "done", "failed"]
    sample: int = Field(description="The publisher's newest originals it looks at.")
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    looked_at: int | None = Field(None, description="Once done: how many originals were looked at.")
    suggestions: list[SuggestionOut] | None = Field(None, description="Once done: the overlays found (may be none).")
    problem: dict[str, Any] | None = Field(None, description="Once failed: why, as problem+json.")

    @classmethod
    def of(cls, job: Job) -> SuggestionsJobOut:
        result, sample = job.result or {}, job.params.get("sample")
        return cls(id=job.id, state=job.state, sample=sample if isinstance(sample, int) else 0,  # type: ignore[arg-type]
                   created_at=job.created_at, started_at=job.started_at, finished_at=job.finished_at,
                   looked_at=result.get("looked_at"), problem=job.error,
                   suggestions=[SuggestionOut.model_validate(x) for x in result.get("suggestions", [])]
                   if job.state == jobs.DONE else None)


def _own_or_admin(key: ApiKey, publisher_id: uuid.UUID, what: str) -> None:
    if key.scope != Scope.ADMIN.value and key.publisher_id != publisher_id:
        raise Forbidden(f"only an admin key or the publisher's own key can list its {what}")


def _publisher(session: Session, publisher_id: uuid.UUID) -> Publisher:
    publisher = session.get(Publisher, publisher_id)
    if publisher is None:
        raise NotFound(f"no publisher {publisher_id}")
    return publisher


@router.get("", response_model=list[PublisherOut], responses=PROBLEM_RESPONSES, summary="List publishers (admin)")
def get_publishers(key: ApiKey = Depends(get_api_key), service: Service = Depends(get_service)) -> list[PublisherOut]:
    require_scope(key, Scope.ADMIN)
    with service.db.session() as session:
        return [PublisherOut(id=p.id, name=p.name, created_at=p.created_at) for p in list_publishers(session)]


@router.get("/{publisher_id}/signers", response_model=list[SignerOut], responses=PROBLEM_RESPONSES,
            summary="A publisher's enrolled signing certificates")
def get_signers(publisher_id: uuid.UUID, key: ApiKey = Depends(get_api_key),
                service: Service = Depends(get_service)) -> list[SignerOut]:
    """Admin keys see any publisher's; a publisher key sees its own."""
    _own_or_admin(key, publisher_id, "signers")
    with service.db.session() as session:
        _publisher(session, publisher_id)
        return [SignerOut.of(s) for s in signers_of(session, publisher_id)]


@router.post("/{publisher_id}/signers", response_model=SignerOut, status_code=201, responses=PROBLEM_RESPONSES,
             summary="Enroll a signing certificate for a publisher (admin)")
def post_signer(publisher_id: uuid.UUID, body: SignerIn, key: ApiKey = Depends(get_api_key),
                service: Service = Depends(get_service)) -> SignerOut:
    require_scope(key, Scope.ADMIN)
    cert = parse_certificate(body.certificate_pem.encode())
    with service.db.session() as session:
        _publisher(session, publisher_id)
        return SignerOut.of(enroll(session, publisher_id, cert, label=body.label))


@router.delete("/{publisher_id}/signers/{signer_id}", status_code=204, responses=PROBLEM_RESPONSES,
               summary="Withdraw an enrolled certificate (admin); registered originals stay")
def delete_signer(publisher_id: uuid.UUID, signer_id: uuid.UUID, key: ApiKey = Depends(get_api_key),
                  service: Service = Depends(get_service)) -> Response:
    require_scope(key, Scope.ADMIN)
    with service.db.session() as session:
        remove(session, publisher_id, signer_id)
    return Response(status_code=204)


@router.get("/{publisher_id}/marks", response_model=list[MarkOut], responses=PROBLEM_RESPONSES,
            summary="A publisher's enrolled marks")
def get_marks(publisher_id: uuid.UUID, key: ApiKey = Depends(get_api_key),
              service: Service = Depends(get_service)) -> list[MarkOut]:
    """Admin keys see any publisher's; a publisher key sees its own."""
    _own_or_admin(key, publisher_id, "marks")
    with service.db.session() as session:
        _publisher(session, publisher_id)
        return [MarkOut.of(m) for m in marks_of(session, publisher_id)]


def _suggestions_url(publisher_id: uuid.UUID, job_id: uuid.UUID) -> str:
    return f"/v1/publishers/{publisher_id}/marks/suggestions/{job_id}"


@router.post("/{publisher_id}/marks/suggestions", response_model=SuggestionsJobOut, status_code=202,
             responses={202: {"description": "Queued (or the request already waiting or running for the publisher)",
                              "headers": {"Location": {"description": "The job's URL, to poll with GET",
                                                       "schema": {"type": "string"}}}}, **PROBLEM_RESPONSES},
             summary="Look for the overlays many of a publisher's registered photos share: marks to look at and enrol")
def post_mark_suggestions(publisher_id: uuid.UUID, response: Response,
                          sample: int = Query(300, ge=3, le=MAX_SUGGEST_SAMPLE,
                                              description="The publisher's newest originals to look at."),
                          key: ApiKey = Depends(get_api_key), service: Service = Depends(get_service)
                          ) -> SuggestionsJobOut:
    """Admin keys for any publisher, a publisher key for its own (it sees only its own photos). Heavy work
    (every photo's view), so it is queued and answered at once with the job: 202 and its URL in `Location`,
    to poll. While one is waiting or running for the publisher, asking again returns that one. An overlay
    shown by about a third of the photos is found; a shared frame or template recurs too, so the answer is a
    suggestion for a person, never an enrolment."""
    _own_or_admin(key, publisher_id, "overlays")
    with service.db.session() as session:
        _publisher(session, publisher_id)
        job, _ = jobs.submit(session, SUGGESTIONS_JOB, publisher_id, {"sample": sample}, requested_by=key.id,
                             max_pending=service.settings.jobs_pending)
        out = SuggestionsJobOut.of(job)
    service.jobs.submitted()
    response.headers["Location"] = _suggestions_url(publisher_id, out.id)
    return out


@router.get("/{publisher_id}/marks/suggestions/{job_id}", response_model=SuggestionsJobOut,
            responses={200: {"headers": {"Retry-After": {"description": "While queued or running: seconds before "
                                                         "asking again", "schema": {"type": "integer"}}}},
                       **PROBLEM_RESPONSES}, summary="A request for a publisher's suggested marks: its state and answer")
def get_mark_suggestions(publisher_id: uuid.UUID, job_id: uuid.UUID, response: Response,
                         key: ApiKey = Depends(get_api_key), service: Service = Depends(get_service)
                         ) -> SuggestionsJobOut:
    """Admin keys for any publisher, a publisher key for its own. While it is queued or running, `Retry-After`
    says when to ask again; the answer is kept until ten newer requests of the publisher replace it."""
    _own_or_admin(key, publisher_id, "overlays")
    with service.db.session() as session:
        job = jobs.get(session, job_id)
        if job is None or job.publisher_id != publisher_id or job.kind != SUGGESTIONS_JOB:
            raise NotFound(f"no suggestions request {job_id} for publisher {publisher_id}")
        out = SuggestionsJobOut.of(job)
    if out.state in (jobs.QUEUED, jobs.RUNNING):
        response.headers["Retry-After"] = "2"
    return out


@router.post("/{publisher_id}/marks", response_model=MarkOut, status_code=201, responses=PROBLEM_RESPONSES,
             summary="Enroll a publisher's mark (admin): its keypoints on a query never count as evidence")
async def post_mark(publisher_id: uuid.UUID,
                    file: UploadFile = File(..., description="The mark as the publisher overlays it: PNG or WebP "
                                            "with transparency (JPEG: wholly opaque), at most 2 MiB and 4 MP."),
                    label: str | None = Form(None, max_length=200),
                    key: ApiKey = Depends(get_api_key), service: Service = Depends(get_service)) -> MarkOut:
    """The same file again returns the enrolled mark (201 as well); at most 16 per publisher."""
    require_scope(key, Scope.ADMIN)
    data = await read_upload(file, MAX_MARK_BYTES)
    marks = service.matcher.marks
    if marks is None:
        raise Forbidden("this deployment does not use publishers' marks")
    return MarkOut.of(await run_in_threadpool(marks.enroll, publisher_id, data, label))  # SIFT on ~30 renderings


@router.delete("/{publisher_id}/marks/{mark_id}", status_code=204, responses=PROBLEM_RESPONSES,
               summary="Remove a publisher's mark (admin)")
def delete_mark(publisher_id: uuid.UUID, mark_id: uuid.UUID, key: ApiKey = Depends(get_api_key),
                service: Service = Depends(get_service)) -> Response:
    require_scope(key, Scope.ADMIN)
    with service.db.session() as session:
        remove_mark(session, publisher_id, mark_id)
    if service.matcher.marks is not None:
        service.matcher.marks.invalidate()
    return Response(status_code=204)
