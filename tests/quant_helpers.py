"""Helpers shared by the quantized-training tests (small configs on the PTB slice)."""

import math
from dataclasses import replace

import torch

from rescorer.lm.corpus import load_corpus
from rescorer.ngram.mixture import OovPolicy
from rescorer.lm.model import LSTMLM, ModelConfig
from rescorer.lm.scoring import corpus_nll
from rescorer.train.loop import TrainConfig
from rescorer.lm.vocab import Vocab

SMALL = ModelConfig(vocab_size=0, embed_dim=16, hidden_dim=16)


def cfg_for(d, **kw):
    base = dict(train=str(d / "train.txt"), valid=str(d / "valid.txt"), epochs=2, batch_size=10, lr=1.0,
                device="cpu", seed=3, schedule="plateau")
    base.update(kw)
    return TrainConfig(**base)


def untrained_ppl(ptb_slice, model_cfg):
    """Validation perplexity of a freshly initialised model (the bar every quantized run must beat)."""
    vocab = slice_vocab(ptb_slice)
    torch.manual_seed(3)
    model = LSTMLM(replace(model_cfg, vocab_size=len(vocab))).eval()
    corpus = load_corpus(vocab, ptb_slice / "valid.txt")
    nll, tokens = corpus_nll(model, corpus, vocab.bos_id, vocab.eos_id, 4096, torch.device("cpu"))
    return math.exp((nll - corpus.oov * OovPolicy().penalty) / tokens)  # unknown words priced as training does


def slice_vocab(ptb_slice) -> Vocab:
    return Vocab.build(line.split() for line in (ptb_slice / "train.txt").read_text().splitlines())
