"""Real n-best lists from text: flite speech + pink noise, pocketsphinx recognition (``admmq nbest synth``)."""
