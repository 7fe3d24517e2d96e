"""admmq: low-bit (ADMM-quantized) LSTM language models for ASR n-best rescoring."""

__version__ = "0.1.0"
