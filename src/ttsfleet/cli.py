"""The `ttsfleet` command: one entry point, one subcommand per component.

Each component owns its own argument parsing in its `main` module, so this
file only dispatches; importing a component only when its subcommand runs
keeps `ttsfleet say` from loading the operator's or the engines' libraries.
"""

from __future__ import annotations

import importlib
import sys

from ttsfleet import tracing

SUBCOMMANDS = {
    "up": ("ttsfleet.local.fleet", "run the manifests as a local fleet on loopback"),
    "say": ("ttsfleet.say", "synthesize text through a running endpoint into a WAV file"),
    "inference": ("ttsfleet.inference.main", "run one inference pod"),
    "router": ("ttsfleet.router.main", "run the router (the fleet's front door)"),
    "operator": ("ttsfleet.operator.main", "run the Kubernetes operator"),
    "gateway": ("ttsfleet.gateway.main", "run the HTTP API and gRPC Jobs service (long-form jobs)"),
    "worker": ("ttsfleet.jobs.main", "run job workers: queued jobs through the fleet"),
    "fetch-voice": ("ttsfleet.voices.main", "fetch and verify a remote voice into a node's cache"),
    "gate": ("ttsfleet.gate.main", "judge a canary voice revision (needs the gate extra)"),
    "mcp": ("ttsfleet.mcp.main", "serve read-only fleet tools to operators over MCP (governed)"),
}


def _usage() -> str:
    lines = ["usage: ttsfleet <command> [options]", "", "commands:"]
    lines += [f"  {name:<10} {help_}" for name, (_, help_) in SUBCOMMANDS.items()]
    lines += ["", "Run `ttsfleet <command> --help` for a command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        print(_usage())
        return 0
    if args[0] not in SUBCOMMANDS:
        print(f"ttsfleet: unknown command {args[0]!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(SUBCOMMANDS[args[0]][0])
    tracing.configure(args[0])
    try:
        result: int = module.main(args[1:])
    finally:
        tracing.shutdown()
    return result


if __name__ == "__main__":
    sys.exit(main())
