"""LM files: training checkpoints and the bit-packed deployment format (its layout, writing,
reading and bit packing), and loading any of them into a ready :class:`LSTMLM`.
It builds on :mod:`rescorer.lm` only, never on training code.
"""
