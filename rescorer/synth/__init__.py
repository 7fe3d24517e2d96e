"""Real n-best lists from text: flite speech + pink noise, pocketsphinx recognition (``admmq nbest synth``).

It writes Kaldi n-best directories through :mod:`rescorer.nbest` and needs no LM of ours;
only the command line imports it.
"""
