"""Reporting results: perplexity evaluation, model sizes, the RESULTS tables and plots.
It reads run logs, checkpoints and packed files; the command line calls it.
"""
