"""recipes/common/lmrescore_nbest_admmq.sh, the drop-in for Kaldi's steps/pytorchnn n-best rescoring, with
Kaldi's own programs and scripts (built by recipes/common/install_kaldi.sh) on real lattices made from the
ptb-tts lists: the same best paths as admmq rescore and as Kaldi's lmrescore_nbest_pytorchnn.sh, and the
same per-hypothesis LSTM costs as Kaldi's compute_sentence_scores.py, with and without its carry-over."""

import argparse
import importlib.util
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from rescorer.nbest.kaldi_dir import read_nbest
from rescorer.nbest.rescore import RescoreConfig, rescore
from rescorer.nbest.recordings import CarryOver
from rescorer.nbest.wer import read_text, score_utterances, Subsets
from rescorer.ngram.mixture import OovPolicy
from rescorer.ngram.scorers import load_scorer
from tests.conftest import NBEST_DIR, ROOT, ptb_lines
from tests.kaldi_tools import (best_paths, kaldi_env, make_lang, per_token_sums, read_scalars, require_kaldi,
                               run, write_decode_dir)
from tests.ngram_fixtures import backoff_arpa

DROPIN = ROOT / "recipes" / "common" / "lmrescore_nbest_admmq.sh"
RUN_PL = ROOT / "recipes" / "common" / "run.pl"
UTTS_PER_VOICE, TOP, N = 8, 12, 10
WEIGHT = 0.8


def load_kaldi_module(cache, name):
    """A module of Kaldi's steps/pytorchnn, from the built cache (Kaldi's code, not ours)."""
    path = cache / "kaldi" / "egs" / "wsj" / "s5" / "steps" / "pytorchnn" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"kaldi_pytorchnn_{name}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def train_pytorchnn_model(model_py, vocab_words, lines, dim=32, steps=80, bptt=20, batch=8, lr=5.0):
    """Kaldi's RNNModel (tied LSTM), trained briefly as steps/pytorchnn/train.py does: the text as one
    stream with '<s>' after every line (its data.py), truncated BPTT, SGD with clipping."""
    index = {w: i for i, w in enumerate(vocab_words)}
    stream = [index.get(w, index["<unk>"]) for ln in lines for w in ln.split() + ["<s>"]]
    torch.manual_seed(5)
    model = model_py.RNNModel("LSTM", len(vocab_words), dim, dim, 1, dropout=0.0, tie_weights=True)
    n = len(stream) // batch
    data = torch.tensor(stream[: n * batch]).view(batch, n).t().contiguous()
    model.train()
    hidden = model.init_hidden(batch)
    crit = torch.nn.CrossEntropyLoss()
    for step in range(steps):
        i = (step * bptt) % (n - 1 - bptt)
        hidden = tuple(h.detach() for h in hidden)
        model.zero_grad()
        out, hidden = model(data[i:i + bptt], hidden)
        crit(out.view(-1, len(vocab_words)), data[i + 1:i + 1 + bptt].reshape(-1)).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.25)
        with torch.no_grad():
            for p in model.parameters():
                p -= lr * p.grad
    return model.eval()


@pytest.fixture(scope="module")
def kaldi_setup(tmp_path_factory):
    """A Kaldi recipe directory: lang (words.txt, G.fst, G.carpa), data (text, utt2spk, segments), a decode
    directory of 2 jobs of real lattices (8 utterances of each ptb-tts test voice, 12 hypotheses each), and
    a steps/pytorchnn model with its vocabulary."""
    cache = require_kaldi()
    d = tmp_path_factory.mktemp("kaldi")
    nb = read_nbest(NBEST_DIR / "test")
    refs = read_text(NBEST_DIR / "test" / "text.gz")
    jobs, picked = [], []
    for voice in ("rms", "slt"):
        utts = [u for u in nb.utts if u.startswith(voice)][:UTTS_PER_VOICE]
        picked += utts
        hyps = []
        for u in utts:
            k = nb.utts.index(u)
            for i in range(nb.offsets[k], min(nb.offsets[k] + TOP, nb.offsets[k + 1])):
                hyps.append((nb.keys[i], nb.words[i], float(nb.costs["acwt"][i])))
        jobs.append(hyps)
    sentences = [w for job in jobs for _, w, _ in job] + [refs[u] for u in picked] + [("<unk>",)]
    table = make_lang(d / "lang", NBEST_DIR / "test" / "words.txt.gz", backoff_arpa(sentences, 2), cache)
    write_decode_dir(d / "decode", jobs, table, d / "lang", cache)
    data = d / "data"
    data.mkdir()
    (data / "text").write_text("".join(f"{u} {' '.join(refs[u])}\n" for u in picked))
    (data / "utt2spk").write_text("".join(f"{u} {u[:3]}\n" for u in picked))
    (data / "segments").write_text("".join(f"{u} {u[:3]} {i:.2f} {i + 0.9:.2f}\n" for i, u in enumerate(picked)))
    vocab = [w for w, _ in sorted(table.items(), key=lambda kv: kv[1])]
    lines = [ln for ln in ptb_lines("train", 300)] + [" ".join(refs[u]) for u in picked]
    model = train_pytorchnn_model(load_kaldi_module(cache, "model"), vocab, lines)
    torch.save(model.state_dict(), d / "model.pt")
    recipe = d / "recipe"  # where Kaldi's scripts run: steps/ and utils/ of the subset
    recipe.mkdir()
    for sub in ("steps", "utils"):
        (recipe / sub).symlink_to(cache / "kaldi" / "egs" / "wsj" / "s5" / sub)
    return argparse.Namespace(cache=cache, d=d, lang=d / "lang", data=data, decode=d / "decode", recipe=recipe,
                              model=d / "model.pt", refs={u: refs[u] for u in picked}, utts=picked)


def dropin(s, out, *opts, lang=None):
    run(["bash", str(DROPIN), "--cmd", str(RUN_PL), "--N", str(N), "--weight", str(WEIGHT), "--skip-scoring",
         "true", "--admmq", str(ROOT / "bin" / "admmq"), *opts, str(lang or s.lang), str(s.model),
         str(s.lang / "words.txt"), str(s.data), str(s.decode), str(out)], cwd=s.recipe, env=kaldi_env(s.cache))
    return out


@pytest.fixture(scope="module")
def dropin_carpa(kaldi_setup):
    return dropin(kaldi_setup, kaldi_setup.d / "dropin_carpa")


@pytest.fixture(scope="module")
def kaldi_run(kaldi_setup):
    """Kaldi's own lmrescore_nbest_pytorchnn.sh (and compute_sentence_scores.py) on the same lattices."""
    s = kaldi_setup
    out = s.d / "kaldi_out"
    run(["bash", "steps/pytorchnn/lmrescore_nbest_pytorchnn.sh", "--cmd", str(RUN_PL), "--N", str(N),
         "--model-type", "LSTM", "--embedding-dim", "32", "--hidden-dim", "32", "--nlayers", "1",
         "--weight", str(WEIGHT), "--skip-scoring", "true", str(s.lang), str(s.model), str(s.lang / "words.txt"),
         str(s.data), str(s.decode), str(out)], cwd=s.recipe, env=kaldi_env(s.cache))
    return out


def admmq_choice(s, out, carry="kaldi"):
    """admmq rescore (library) of each of the drop-in's archives, same model, weights and scales."""
    best, lm_new = {}, {}
    for j in (1, 2):
        nb = read_nbest(out / f"archives.{j}", s.lang / "words.txt")
        lm = load_scorer([out / "nnlm.admmq.pt"], oov=OovPolicy("unk"))
        cfg = RescoreConfig(acoustic_scale=1.0, lm_scale=10.0, wip=0.0, old_lm_weight=1 - WEIGHT,
                            carry_over=CarryOver(carry))
        res = rescore(nb, lm, cfg, quiet=True)
        best.update(res.best_text())
        lm_new.update(zip(nb.keys, res.comp.lm_new))
    return best, lm_new


def test_dropin_lattices_give_admmq_rescores_best_paths_and_wer(kaldi_setup, dropin_carpa):
    s = kaldi_setup
    lats = [dropin_carpa / f"lat.{j}.gz" for j in (1, 2)]
    kaldi_best = best_paths(lats, s.lang / "words.txt", s.cache, acoustic_scale=0.1)  # = acwt + 10*graph
    admmq_best, _ = admmq_choice(s, dropin_carpa)
    assert kaldi_best == admmq_best and len(kaldi_best) == 2 * UTTS_PER_VOICE
    subsets = Subsets.build(list(s.refs), ("rms=rms", "slt=slt"), None)
    wer_k = score_utterances(s.refs, kaldi_best, subsets, "all", None, "lattices")
    wer_a = score_utterances(s.refs, admmq_best, subsets, "all", None, "admmq")
    assert wer_k.to_dict() == wer_a.to_dict() and wer_k.total.words > 0
    # lmwt.interp = nolm + w*nn + (1-w)*lmonly (Kaldi's combination), nolm ~ 0: the carpa removed what it added
    a1 = dropin_carpa / "archives.1"
    nolm, lmonly = read_scalars(a1 / "lmwt.nolm"), read_scalars(a1 / "lmwt.lmonly")
    nn, interp = read_scalars(a1 / "lmwt.nn.sum"), read_scalars(a1 / f"lmwt.interp.{WEIGHT}")
    assert max(abs(interp[k] - (nolm[k] + WEIGHT * nn[k] + (1 - WEIGHT) * lmonly[k])) for k in nn) < 1e-3
    assert max(abs(v) for v in nolm.values()) < 1e-3 and min(lmonly.values()) > 1.0
    summary = json.loads((a1 / "admmq" / "summary.json").read_text())
    assert summary["carry_over"]["mode"] == "kaldi" and summary["weights"]["old_lm_weight"] == pytest.approx(0.2)


def test_same_costs_as_kaldis_compute_sentence_scores_with_and_without_carry_over(kaldi_setup, dropin_carpa,
                                                                                   kaldi_run):
    s = kaldi_setup
    kaldi_nn, ours = {}, {}
    for j in (1, 2):
        kaldi_nn.update(per_token_sums(kaldi_run / f"archives.{j}" / "lmwt.nn"))  # 4 decimals per token
        ours.update(read_scalars(dropin_carpa / f"archives.{j}" / "lmwt.nn.sum"))
    assert set(kaldi_nn) == set(ours) and len(ours) == 2 * UTTS_PER_VOICE * N
    diff = np.array([abs(kaldi_nn[k] - ours[k]) for k in ours])
    assert diff.max() < 1e-3, diff.max()
    # without the carry-over: Kaldi's own compute_scores, one utterance per call (each from the zero state)
    sys.path.insert(0, str(s.cache / "kaldi" / "egs" / "wsj" / "s5" / "steps" / "pytorchnn"))
    try:
        css = load_kaldi_module(s.cache, "compute_sentence_scores")
        model_py = load_kaldi_module(s.cache, "model")
    finally:
        sys.path.pop(0)
    vocab = css.read_vocab(str(s.lang / "words.txt"))
    model = model_py.RNNModel("LSTM", len(vocab), 32, 32, 1, dropout=0.0, tie_weights=True)
    model.load_state_dict(torch.load(s.model))
    args = argparse.Namespace(sent_boundary="<s>", oov="<unk>")
    crit = torch.nn.CrossEntropyLoss(reduction="none")
    zero = {}
    for j in (1, 2):
        sents = css.load_sents(str(kaldi_run / f"archives.{j}" / "words_text"))
        for utt, hyps in sents.items():
            scored = css.compute_scores(args, {utt: hyps}, model, crit, len(vocab), vocab, "LSTM")
            for n, (_, costs) in enumerate(scored[utt], 1):
                zero[f"{utt}-{n}"] = float(np.sum(costs, dtype=np.float64))
    _, none = admmq_choice(s, dropin_carpa, carry="none")
    diff0 = np.array([abs(zero[k] - none[k]) for k in none])
    assert diff0.max() < 1e-3, diff0.max()
    carried = np.array([abs(zero[k] - kaldi_nn[k]) for k in zero])
    assert carried.max() > 1e-2  # the carry-over changed Kaldi's costs: the first check compared something


def test_kaldi_script_and_dropin_write_lattices_with_the_same_best_paths(kaldi_setup, dropin_carpa, kaldi_run):
    s = kaldi_setup
    for scale in (0.1, 0.05):
        ours = best_paths([dropin_carpa / f"lat.{j}.gz" for j in (1, 2)], s.lang / "words.txt", s.cache, scale)
        theirs = best_paths([kaldi_run / f"lat.{j}.gz" for j in (1, 2)], s.lang / "words.txt", s.cache, scale)
        assert ours == theirs and len(ours) == 2 * UTTS_PER_VOICE
    k = read_scalars(kaldi_run / "archives.1" / "lmwt.interp.")  # Kaldi's: its $nnweight is an awk variable
    a = read_scalars(dropin_carpa / "archives.1" / f"lmwt.interp.{WEIGHT}")
    assert set(k) == set(a) and max(abs(k[x] - a[x]) for x in a) < 1e-3


def test_dropin_removes_a_g_fst_old_lm_too_and_takes_admmq_options(kaldi_setup, dropin_carpa):
    s = kaldi_setup
    lang_fst = s.d / "lang_fst"
    shutil.copytree(s.lang, lang_fst)
    (lang_fst / "G.carpa").unlink()
    out = dropin(s, s.d / "dropin_fst", lang=lang_fst)
    for j in (1, 2):
        carpa = read_scalars(dropin_carpa / f"archives.{j}" / "lmwt.nolm")
        fst = read_scalars(out / f"archives.{j}" / "lmwt.nolm")
        assert set(carpa) == set(fst) and max(abs(carpa[k] - fst[k]) for k in fst) < 1e-3
    same = best_paths([out / f"lat.{j}.gz" for j in (1, 2)], s.lang / "words.txt", s.cache, 0.1)
    assert same == admmq_choice(s, out)[0]
    # per recording (the data dir's segments), stage 6 onwards on the same archives
    dropin(s, out, "--stage", "6", "--carry-over", "recording", lang=lang_fst)
    summary = json.loads((out / "archives.2" / "admmq" / "summary.json").read_text())
    assert summary["carry_over"]["segments"] == str(s.data / "segments")
    assert summary["carry_over"]["history_sentences"] == UTTS_PER_VOICE - 1
