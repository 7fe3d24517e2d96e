"""The LSTM language model and how it scores text: model, vocabulary and subword units, corpus
reading and batching, the one-step LM, batched and prefix-shared scoring, the output layers
(fp32, exact low-bit, int8) and the quantized forms deployment reads.  It imports only the
top-level helpers (errors, fileio, perplexity, progress, settings); everything else builds on it.
"""
