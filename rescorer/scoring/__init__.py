"""NIST scoring as ``hubscr.pl`` / ``csrfilt.sh`` / ``sclite`` count it: GLM files, the transcript
filter, stm references, Kaldi's Switchboard hypothesis filter, word networks (optionally deletable
words, alternations) and sclite's alignment of two networks.  No import of other layers than the
top level.

Text here is a *byte string held in a str*: UTF-8 bytes decoded as latin-1, one character per byte,
because sctk's tools work on bytes (rule matching, case folding of ASCII letters only, whitespace =
ASCII whitespace).  :func:`rescorer.scoring.bytestr.to_bytestr` and ``from_bytestr`` convert.
"""
