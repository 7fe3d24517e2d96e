"""Kaldi n-best rescoring: Kaldi archives, n-best lists (directory and single-file forms)
and their shards, rescoring with an LM (costs, LM scale and penalty tuning) as a job,
and WER scoring.  It takes LMs as scorers and never imports training code.
"""
