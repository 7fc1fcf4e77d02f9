"""VITS inference in torch, built from and loaded with a Piper voice's ONNX file.

Read in the order the data flows: `onnx_voice` (the file's tensors and graph)
→ `config` (the network's dimensions, read from them) → `layers` (the shared
tensor layout) → `text_encoder`, `duration` (with `spline`), `flow`,
`decoder` (the four VITS stages) → `synthesizer` (the stages in sequence,
batched) → `weights` (every tensor into its parameter) → `windows` (which
latent frames each streamed decoder step covers).
"""
