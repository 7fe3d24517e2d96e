"""Training an LM: the training loop, its configuration, data-parallel training, run logs,
TensorBoard, and importing a foreign LSTM LM as a full-precision checkpoint.  It drives the
quantization methods of :mod:`rescorer.quant` and writes checkpoints through
:mod:`rescorer.pack`; nothing below it imports it.
"""
