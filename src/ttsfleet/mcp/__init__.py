"""`ttsfleet mcp`: a governed, read-only MCP server for the people who run the fleet.

``access`` maps tokens and JWTs to identities and their tools; ``audit``
writes one record per call; ``approvals`` holds the write tool's second
identity; ``kube``, ``load`` and ``sources`` fetch (Kubernetes reads, pods'
load reports, job records and router logs); ``tools`` answers from what was
fetched; ``governance`` wraps every call (identity, grant, correlation id,
audit); ``server`` assembles the tools; ``main`` is the command.
"""
