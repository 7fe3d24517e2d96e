"""N-gram LMs and mixtures: ARPA reading, n-gram scoring (pure Python or KenLM), the
linear mixture with an LSTM LM, EM interpolation of its weights and weights files,
and building the scorer a command asks for.  It builds on :mod:`rescorer.lm` and
:mod:`rescorer.pack`, never on training code.
"""
