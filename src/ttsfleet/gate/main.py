"""`ttsfleet gate`: speak the gate's texts on the canary and the stable revision, judge, report.

The operator runs it as a Job per canary revision; the verdict goes to
stdout as JSON and, with --pool, onto the TTSPool as the
`ttsfleet.dev/gate-verdict` annotation, which the operator acts on.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from ttsfleet.gate.measure import measure, median_ttfa, speak
from ttsfleet.gate.recogniser import whisper_model
from ttsfleet.gate.verdict import judge
from ttsfleet.manifests import GROUP, POOLS, VERSION
from ttsfleet.rollouts import DEFAULT_TEXTS, VERDICT_ANNOTATION, Gate, Verdict
from ttsfleet.tls import ClientTLS, TLSFiles, add_client_flags


def parse_args(argv: list[str]) -> argparse.Namespace:
    defaults = Gate()
    parser = argparse.ArgumentParser(prog="ttsfleet gate", description=__doc__)
    parser.add_argument("--canary", required=True, help="host:port of the canary revision's pods")
    parser.add_argument("--stable", required=True, help="host:port of the stable revision's pods")
    parser.add_argument("--revision", required=True, help="the canary revision judged")
    parser.add_argument("--text", action="append", default=None, help="a text to speak (repeat)")
    parser.add_argument("--language", default=defaults.language, help="Whisper's language")
    parser.add_argument("--max-word-error-rate", type=float, default=defaults.max_word_error_rate)
    parser.add_argument("--max-ttfa-ratio", type=float, default=defaults.max_ttfa_ratio)
    parser.add_argument("--max-error-rate", type=float, default=defaults.max_error_rate)
    parser.add_argument("--min-loudness-lufs", type=float, default=defaults.min_loudness_lufs)
    parser.add_argument("--max-loudness-lufs", type=float, default=defaults.max_loudness_lufs)
    parser.add_argument("--max-clipped-fraction", type=float, default=defaults.max_clipped_fraction)
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per text")
    parser.add_argument("--pool", default="", help="namespace/name: annotate this TTSPool")
    security = parser.add_argument_group("security (pods with mutual TLS, as the router's flags)")
    add_client_flags(security)
    args = parser.parse_args(argv)
    try:
        args.pod_tls = TLSFiles.from_flags(args.pod_tls_cert, args.pod_tls_key, args.pod_tls_ca)
    except ValueError as error:
        parser.error(str(error))
    return args


def gate_of(args: argparse.Namespace) -> Gate:
    return Gate(
        max_word_error_rate=args.max_word_error_rate,
        max_ttfa_ratio=args.max_ttfa_ratio,
        max_error_rate=args.max_error_rate,
        min_loudness_lufs=args.min_loudness_lufs,
        max_loudness_lufs=args.max_loudness_lufs,
        max_clipped_fraction=args.max_clipped_fraction,
        texts=tuple(args.text or DEFAULT_TEXTS),
        language=args.language,
    )


def pod_tls(args: argparse.Namespace) -> ClientTLS | None:
    """The client certificate pods with mutual TLS require (the pool's TLS Secret), if given."""
    return ClientTLS(args.pod_tls, args.pod_tls_server_name) if args.pod_tls else None


def run_gate(args: argparse.Namespace) -> Verdict:
    gate = gate_of(args)
    tls = pod_tls(args)
    canary = [speak(args.canary, text, args.timeout, tls) for text in gate.texts]
    stable = [speak(args.stable, text, args.timeout, tls) for text in gate.texts]
    with tempfile.TemporaryDirectory(prefix="whisper-") as directory:
        model = whisper_model(Path(directory))
        measured = measure(canary, model, gate.language)
    return judge(args.revision, measured, median_ttfa(stable), gate)


def annotate(pool: str, verdict: Verdict) -> None:
    """Hands the verdict to the operator (in-cluster credentials: the Job's ServiceAccount)."""
    from kubernetes import client, config

    namespace, _, name = pool.partition("/")
    config.load_incluster_config()  # type: ignore[no-untyped-call]
    client.CustomObjectsApi().patch_namespaced_custom_object(
        GROUP,
        VERSION,
        namespace,
        POOLS,
        name,
        {"metadata": {"annotations": {VERDICT_ANNOTATION: verdict.to_json()}}},
    )


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    verdict = run_gate(args)
    print(verdict.to_json(), flush=True)
    if args.pool:
        annotate(args.pool, verdict)
    return 0 if verdict.passed else 3
