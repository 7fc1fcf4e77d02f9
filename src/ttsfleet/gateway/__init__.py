"""The HTTP gateway (FastAPI) and the job RPCs: the fleet for callers who do not stream gRPC.

``schemas`` are the request and response bodies (and so the OpenAPI spec),
``errors`` turns failures into JSON bodies and status codes, ``jobs_api`` and
``speech_api`` are the routes, ``app`` assembles them, ``grpc_jobs`` serves
the same job operations as ``ttsfleet.v1.Jobs``, and ``main`` runs it all
(`ttsfleet gateway`).
"""
