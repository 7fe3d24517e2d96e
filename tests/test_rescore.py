import gzip
import json
import math

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from rescorer.pack.lm_file import load_lm
from rescorer.cli.group import cli
from rescorer.errors import AdmmqError, MismatchError
from rescorer.nbest.kaldi_archive import SCALAR, Entry, read_archive
from rescorer.nbest.lists import build_nbest
from rescorer.nbest.kaldi_dir import read_nbest
from rescorer.nbest.rescore import RescoreConfig, parse_grid, rescore
from rescorer.nbest.lm_costs import score_sentences, segment_argmin
from rescorer.lm.scoring import NeuralScorer, WordScores
from rescorer.nbest.wer import align_counts, read_text, score_files, score_utterances
from rescorer.scoring.glm import read_glm
from rescorer.scoring.kaldi_filter import HypothesisFilter
from rescorer.scoring.nist_scorer import NistScorer
from tests.conftest import HUB5_GLM, NBEST_DIR, ptb_lines


from rescorer.ngram.scorers import load_scorer  # noqa: E402
from tests.ngram_fixtures import backoff_arpa, write  # noqa: E402


#: EM weights found by two commands may score through different CPU paths (the compiled kernels with one
#: thread, PyTorch with several): the same weights up to float rounding, not bit for bit
WEIGHT_TOL = 1e-6

def scorer_of(path, batch_tokens=8192):
    lm = load_lm(path)
    return NeuralScorer(lm.model, lm.units, batch_tokens=batch_tokens)


class CountingLM:
    """Delegates to a real scorer and records what it was asked to score."""

    def __init__(self, inner):
        self.inner, self.calls = inner, []

    def score(self, sentences):
        self.calls.append([tuple(s) for s in sentences])
        return self.inner.score(sentences)


class TableLM:
    """An LM given as a table: sentence -> ln P(words </s>) (all of it on </s>)."""

    def __init__(self, table):
        self.table = table

    def score(self, sentences):
        lp, offsets = [], [0]
        for s in sentences:
            lp += [0.0] * len(s) + [self.table[tuple(s)]]
            offsets.append(len(lp))
        return WordScores(np.array(lp), np.array(offsets), np.zeros(len(lp), dtype=bool))


SENTS = [tuple(line.split()) for line in ptb_lines("valid", 12)]


def test_scores_do_not_depend_on_chunks_batches_or_duplicates(tiny_lm):
    sents = SENTS + [SENTS[3], SENTS[0], (), SENTS[3]]
    one = scorer_of(tiny_lm)
    ref = np.array([one.score([s]).totals()[0] for s in sents])  # one at a time
    for chunk, batch in ((10**6, 10**6), (16, 16), (200, 64)):
        got = score_sentences(scorer_of(tiny_lm, batch), sents, chunk_tokens=chunk, quiet=True)
        assert np.allclose(got.logprob, ref, atol=1e-4), (chunk, batch)
    counting = CountingLM(scorer_of(tiny_lm))
    got = score_sentences(counting, sents, chunk_tokens=10**6, quiet=True)
    assert len(counting.calls) == 1 and len(counting.calls[0]) == len(set(sents)) == 13  # each distinct once
    assert got.distinct == 13 and got.logprob[12] == got.logprob[3] == got.logprob[15]
    assert got.tokens == sum(len(s) + 1 for s in sents)


def ptb_tts_slice(tmp_path, split="test", lines=300, gz=False):
    """The first lines/100 utterances of the shipped real lists, with their references."""
    d = tmp_path / f"{split}_slice"
    d.mkdir()
    keep_utts = set()
    for name in ("words_text", "acwt", "lmwt.withlm", "lmwt.nolm", "lmwt.lmonly"):
        with gzip.open(NBEST_DIR / split / f"{name}.gz", "rt", encoding="utf-8") as fh:
            part = [next(fh) for _ in range(lines)]
        keep_utts |= {ln.split()[0].rsplit("-", 1)[0] for ln in part}
        (d / name).write_text("".join(part))
    with gzip.open(NBEST_DIR / split / "text.gz", "rt", encoding="utf-8") as fh:
        ref = [ln for ln in fh if ln.split()[0] in keep_utts]
    (tmp_path / f"{split}_text").write_text("".join(ref))
    return d, tmp_path / f"{split}_text"


def test_all_hypotheses_of_many_utterances_go_to_the_lm_together_length_sorted(tiny_lm, tmp_path):
    d, text = ptb_tts_slice(tmp_path, lines=300)
    nb = read_nbest(d)
    counting = CountingLM(scorer_of(tiny_lm))
    rescore(nb, counting, RescoreConfig(lm_scale=10.0, chunk_tokens=10**6), quiet=True)
    assert len(counting.calls) == 1 and len(counting.calls[0]) == len(set(nb.words)) > 250
    counting.calls.clear()
    rescore(nb, counting, RescoreConfig(lm_scale=10.0, chunk_tokens=600), quiet=True)
    lens = [len(s) for call in counting.calls for s in call]
    assert len(counting.calls) > 5 and lens == sorted(lens)
    assert all(sum(len(s) + 1 for s in call) <= 600 for call in counting.calls)


def toy_nbest():
    keys = ["u1-1", "u1-2", "u1-3", "u2-1", "u2-2", "u3-1", "u3-2"]
    words = [("a", "b"), ("a", "c"), ("a",), ("x", "y", "z"), ("x", "z"), ("p",), ("p",)]
    costs = {"acwt": np.array([10.0, 9.0, 12.0, 30.0, 31.0, 5.0, 5.0]),
             "lmwt.nolm": np.array([0.5, 0.5, 0.0, 1.0, 1.0, 0.0, 0.0]),
             "lmwt.lmonly": np.array([3.0, 1.0, 2.0, 6.0, 4.0, 1.0, 1.0])}
    where = [Entry(k, 0.0, "toy", line=i + 1) for i, k in enumerate(keys)]
    nb = build_nbest(keys, words, costs, where, "toy")
    table = {("a", "b"): -2.0, ("a", "c"): -4.5, ("a",): -2.5, ("x", "y", "z"): -3.0, ("x", "z"): -5.0,
             ("p",): -1.0}
    refs = {"u1": ("a", "b"), "u2": ("x", "y", "z"), "u3": ("p",)}
    return nb, TableLM(table), refs


def test_total_cost_formula_and_ties_to_lower_rank():
    nb, lm, _ = toy_nbest()
    res = rescore(nb, lm, RescoreConfig(acoustic_scale=0.5, lm_scale=2.0, wip=0.25, old_lm_weight=0.2), quiet=True)
    # u1-2: 0.5*9 + 2*(0.5 + (0.8*4.5 + 0.2*1.0) + 0.25*2)
    assert res.total[1] == pytest.approx(0.5 * 9 + 2 * (0.5 + 0.8 * 4.5 + 0.2 * 1.0 + 0.25 * 2))
    assert res.comp.lm_new[1] == pytest.approx(4.5)
    manual = [min(range(a, b), key=lambda i: (res.total[i], i)) for a, b in zip(nb.offsets[:-1], nb.offsets[1:])]
    assert list(res.best) == manual and res.best[2] == 5  # u3: identical costs, rank 1 wins
    assert list(segment_argmin(np.array([3.0, 1.0, 1.0, 2.0]), np.array([0, 3, 4]))) == [1, 3]


def brute_force_sweep(nb, lm, refs, lm_grid, wip_grid):
    """Errors of every grid point by plain loops."""
    logp = lm.score(nb.words).totals()
    out = []
    for a in lm_grid:
        for b in wip_grid:
            errs = 0
            for u, utt in enumerate(nb.utts):
                idx = range(nb.offsets[u], nb.offsets[u + 1])
                tot = {i: nb.costs["acwt"][i] + a * (nb.costs["lmwt.nolm"][i] - logp[i] + b * len(nb.words[i]))
                       for i in idx}
                best = min(idx, key=lambda i: (tot[i], i))
                errs += sum(align_counts(refs[utt], nb.words[best]))
            out.append(((a, b), errs))
    return out


def test_lm_scale_sweep_picks_the_minimum():
    nb, lm, refs = toy_nbest()
    lm_grid, wip_grid = parse_grid("0:3:0.25"), parse_grid("0,0.5,-0.5")
    res = rescore(nb, lm, RescoreConfig(lm_scale_grid=lm_grid, wip_grid=wip_grid), refs=refs, quiet=True)
    brute = brute_force_sweep(nb, lm, refs, lm_grid, wip_grid)
    assert [int(e) for e in res.sweep.errors] == [e for _, e in brute]
    best_errors = min(e for _, e in brute)
    first_best = next(s for s, e in brute if e == best_errors)
    assert (res.lm_scale, res.wip) == first_best and res.chosen_by == "test"
    assert max(e for _, e in brute) > best_errors  # the grid really matters here
    assert res.wer["rescored"].total.errors == best_errors
    # tuned on a dev set: the weights come from the dev sweep, then apply to the test list
    res2 = rescore(nb, lm, RescoreConfig(lm_scale_grid=lm_grid, wip_grid=wip_grid), refs=None, dev=(nb, refs),
                   quiet=True)
    assert res2.chosen_by == "dev" and (res2.lm_scale, res2.wip) == first_best and not res2.wer
    # a given LM scale is kept; only the penalty is swept
    res3 = rescore(nb, lm, RescoreConfig(lm_scale=0.0, wip_grid=wip_grid), refs=refs, quiet=True)
    assert res3.lm_scale == 0.0 and len(res3.sweep.errors) == 3


def test_rescore_errors():
    nb, lm, refs = toy_nbest()
    # nothing to tune on: Kaldi's usual LMWT 10, said in a note
    res = rescore(nb, lm, RescoreConfig(), quiet=True)
    assert res.chosen_by == "default" and (res.lm_scale, res.wip) == (10.0, 0.0)
    assert any("nothing to tune" in n for n in res.notes)
    assert res.best.tolist() == segment_argmin(res.comp.total(1.0, 10.0, 0.0), nb.offsets).tolist()
    with pytest.raises(MismatchError, match="'u3' has no reference"):
        rescore(nb, lm, RescoreConfig(), refs={"u1": ("a",), "u2": ()}, quiet=True)
    nb2 = nb.with_costs({})
    del nb2.costs["lmwt.lmonly"]
    with pytest.raises(AdmmqError, match="--old-lm-weight needs the old LM cost"):
        rescore(nb2, lm, RescoreConfig(lm_scale=1.0, old_lm_weight=0.5), quiet=True)
    with pytest.raises(AdmmqError, match="expected START:STOP:STEP"):
        parse_grid("1:0:0.1")
    with pytest.raises(AdmmqError, match="expected START:STOP:STEP .* got '0,x'"):
        parse_grid("0,x")


def write_tiny_kaldi_set(d):
    """3 utterances of real PTB validation text, 3 hypotheses each, Kaldi text-archive layout."""
    d.mkdir()
    refs = {f"utt{k}": SENTS[k] for k in (1, 2, 4)}
    hyps, acwt = [], []
    for k, (utt, ref) in enumerate(refs.items()):
        variants = [ref[:-1] + ("the",), ref, ref[1:]]  # rank 1 is wrong
        for n, v in enumerate(variants, 1):
            hyps.append((f"{utt}-{n}", v))
            acwt.append(100.0 + 3 * n + k)
    (d / "words_text").write_text("".join(" ".join((key,) + w) + "\n" for key, w in hyps))
    (d / "acwt").write_text("".join(f"{key} {a} \n" for (key, _), a in zip(hyps, acwt)))
    (d / "lmwt.nolm").write_text("".join(f"{key} 0.5 \n" for key, _ in hyps))
    (d / "lmwt.withlm").write_text("".join(f"{key} {40 + i} \n" for i, (key, _) in enumerate(hyps)))
    text = d.parent / "text"
    text.write_text("".join(" ".join((u,) + w) + "\n" for u, w in refs.items()))
    return d, text, hyps


def direct_logprob(lm, words):
    """ln P(words </s>) by one forward pass of the model (not the scorers), each word outside the vocabulary
    (not the <unk> class token) at P(<unk>|h) / 10^4 (the default OOV policy: share among 10^4 types)."""
    units = lm.units
    ids = [units.index(w) for w in words]
    with torch.no_grad():
        nll, _ = lm.model.token_nll(torch.tensor([[units.bos_id] + ids]), torch.tensor([ids + [units.eos_id]]))
    oov = sum(1 for w, i in zip(words, ids) if i == units.unk_id and w not in ("<unk>", "<UNK>"))
    return -float(nll.double().sum()) - oov * math.log(1e4)


def test_end_to_end_kaldi_set_through_cli_to_wer_table(tiny_lm, tmp_path):
    d, text, hyps = write_tiny_kaldi_set(tmp_path / "nbest")
    out = tmp_path / "out"
    r = CliRunner().invoke(cli, ["rescore", str(d), "--lm", str(tiny_lm), "--ref", str(text), "-o", str(out),
                                 "--lm-scale-grid", "0:2:0.5", "--quiet"])
    assert r.exit_code == 0, r.output
    assert "swept on the test references (optimistic) over 15 settings" in r.output
    assert "WER rescored:" in r.output and "WER first pass:" in r.output and "WER oracle:" in r.output
    assert "total  %WER" in r.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["chosen_by"] == "test" and summary["hypotheses"] == 9 and summary["utterances"] == 3
    # the new LM costs, keyed like the input: lmwt.nolm + (-ln P_LM)
    new = read_archive(out / "lmwt.new", SCALAR)
    lm = load_lm(tiny_lm)
    logp = [direct_logprob(lm, w) for _, w in hyps]  # the LSTM run by hand + the OOV share
    assert any(lm.units.index(w) == lm.units.unk_id and w != "<unk>" for _, ws in hyps for w in ws)  # OOVs in
    assert [e.key for e in new] == [k for k, _ in hyps]
    assert np.allclose([e.value for e in new], 0.5 - np.array(logp), atol=1e-4)
    # best hypotheses = argmin of the total at the chosen weights, and the WER table = admmq wer on them
    nb = read_nbest(out / "nbest.txt")
    w = summary["weights"]
    total = nb.costs["acwt"] + w["lm_scale"] * (nb.costs["lmwt.nolm"] + nb.costs["lm.new"] + w["wip"] * nb.lengths())
    assert np.allclose(total, nb.costs["total"])
    best = segment_argmin(total, nb.offsets)
    assert read_text(out / "text") == {u: nb.words[i] for u, i in zip(nb.utts, best)}
    assert summary["wer"]["rescored"]["total"] == score_files(text, out / "text").to_dict()["total"]
    assert summary["wer"]["first_pass"]["total"]["errors"] == 3  # each rank 1 has one substitution
    assert summary["wer"]["oracle"]["total"]["errors"] == 0
    sweep = [ln.split("\t") for ln in (out / "sweep.tsv").read_text().splitlines()[1:]]
    assert len(sweep) == 15 and min(int(row[2]) for row in sweep) == summary["wer"]["rescored"]["total"]["errors"]
    # given weights and JSON output; the single-file form reads the same
    r = CliRunner().invoke(cli, ["rescore", str(out / "nbest.txt"), "--lm", str(tiny_lm), "-o", str(tmp_path / "o2"),
                                 "--lm-scale", "1.5", "--wip", "0.5", "--json", "--quiet"])
    assert r.exit_code == 0, r.output
    d2 = json.loads(r.output)
    assert d2["chosen_by"] == "given" and d2["weights"]["lm_scale"] == 1.5 and "wer" not in d2


def test_cli_rescore_errors_are_one_line(tiny_lm, tmp_path):
    d, text, _ = write_tiny_kaldi_set(tmp_path / "nbest")
    r = CliRunner().invoke(cli, ["rescore", str(d), "--lm", str(tiny_lm), "-o", str(tmp_path / "o"), "--dev", str(d)])
    assert r.exit_code == 1 and "--dev and --dev-ref go together" in r.output
    (d / "acwt").write_text("utt1-1 1.0\n")
    r = CliRunner().invoke(cli, ["rescore", str(d), "--lm", str(tiny_lm), "-o", str(tmp_path / "o"),
                                 "--lm-scale", "1", "--quiet"])
    assert r.exit_code == 1 and r.output.startswith("admmq: error:") and "has no entry in" in r.output
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def test_real_ptb_tts_slice_rescored_with_dev_tuning(tiny_lm, tmp_path):
    d, text = ptb_tts_slice(tmp_path, "test", lines=300)
    dev, dev_text = ptb_tts_slice(tmp_path, "dev", lines=300)
    out = tmp_path / "out"
    r = CliRunner().invoke(cli, ["rescore", str(d), "--lm", str(tiny_lm), "--ref", str(text), "--dev", str(dev),
                                 "--dev-ref", str(dev_text), "-o", str(out), "--lm-scale-grid", "0:12:2",
                                 "--subset", "rms_=rms", "--json", "--quiet"])
    assert r.exit_code == 0, r.output
    s = json.loads(r.output)
    assert s["chosen_by"] == "dev" and s["utterances"] == 3 and s["hypotheses"] == 300
    assert s["scoring"]["sentences"] == 600 and s["oov_words"] > 0
    assert set(s["wer"]["rescored"]) == {"rms", "total"}
    assert s["wer"]["rescored"]["total"] == score_files(text, out / "text").to_dict()["total"]
    first = s["wer"]["first_pass"]["total"]
    assert s["wer"]["oracle"]["total"]["errors"] <= min(first["errors"], s["wer"]["rescored"]["total"]["errors"])


NIST_GLM = ";; test GLM\n* format = 'NIST1'\n* case_sensitive = 'F'\nUM => %HESITATION / [ ] __ [ ]\n"


def test_nist_scoring_counts_tuning_and_wer_as_hubscr(tmp_path):
    """With a NIST scorer, every grid point's errors and words are sclite's (optional words correct when
    deleted, the null alternative without words, IGNORE segments left out), in tuning and in the WER."""
    (tmp_path / "glm").write_text(NIST_GLM)
    scorer = NistScorer(read_glm(tmp_path / "glm"), HypothesisFilter("kaldi-swbd"))
    keys = ["u1-1", "u1-2", "u2-1", "u2-2", "u4-1"]
    words = [("A", "b"), ("a", "um", "b", "[noise]"), (), ("p",), ("x",)]
    costs = {"acwt": np.array([1.0, 0.0, 1.0, 0.0, 0.0]), "lmwt.nolm": np.zeros(5)}
    nb = build_nbest(keys, words, costs, [Entry(k, 0.0, "toy", line=i + 1) for i, k in enumerate(keys)], "toy")
    lm = TableLM({w: -float(len(w)) for w in words})
    refs = {"u1": ("a", "(%hesitation)", "b"), "u2": ("{", "p", "/", "@", "}"), "u3": ("(uh)", "q"),
            "u4": ("IGNORE_TIME_SEGMENT_IN_SCORING",)}
    res = rescore(nb, lm, RescoreConfig(lm_scale_grid=(0.0, 2.0), wip_grid=(0.0,)), refs=refs, quiet=True,
                  scorer=scorer)
    for k, a in enumerate((0.0, 2.0)):
        best = segment_argmin(res.comp.total(1.0, a, 0.0), nb.offsets)
        rep = score_utterances(refs, {u: nb.words[i] for u, i in zip(nb.utts, best)}, scorer=scorer)
        assert (res.sweep.errors[k], res.sweep.words[k]) == (rep.total.errors, rep.total.words)
    # LM scale 0 picks u2's "p" (one word), 2 its empty hypothesis (no word: the null alternative);
    # u1 is correct either way (um -> dropped by Kaldi's filter / %HESITATION; (%hesitation) deleted: correct);
    # u3 has no n-best: (uh) correct, q deleted; u4 is ignored
    assert list(res.sweep.words) == [3 + 1 + 2, 3 + 0 + 2] and list(res.sweep.errors) == [1, 1]
    assert res.lm_scale == 0.0 and res.wer["rescored"].total.words == 6 and res.wer["rescored"].ignored == 1
    assert res.wer["rescored"].total.to_dict()["corr"] == 5
    plain = rescore(nb, lm, RescoreConfig(lm_scale_grid=(0.0, 2.0), wip_grid=(0.0,)),
                    refs={u: r for u, r in refs.items() if u != "u4"} | {"u4": ("x",)}, quiet=True)
    assert plain.sweep.errors[0] > res.sweep.errors[0]  # "(%hesitation)", "{", "/" ... count as words there


STM_REFS = {"sw_4001-A_000100-000300": "i'm (uh) gonna say {yes / yeah} okay",
            "sw_4001-A_000400-000612": "(%hesitation) the aircraft can't fly",
            "en_4002-B_000050-000200": "mm-hmm you know IGNORE",
            "en_4002-B_000300-000400": "IGNORE_TIME_SEGMENT_IN_SCORING"}


def test_cli_rescore_with_stm_and_glm_reports_what_admmq_wer_reports(tmp_path):
    """rescore --stm --glm --hyp-filter: tuning and WER as hubscr.pl counts them, equal to admmq wer's."""
    with open(tmp_path / "ref.stm", "w") as fh:
        for utt, text in STM_REFS.items():
            reco, times = utt.rsplit("_", 1)
            file, chan = reco.rsplit("-", 1)
            b, e = (int(t) / 100 for t in times.split("-"))
            fh.write(f"{file} {chan} {file}_{chan} {b:.2f} {e:.2f} <O> {text}\n")
    hyps = {"sw_4001-A_000100-000300": ["I am going to say yeah OK", "i'm uh [noise] gonna say yes okay"],
            "sw_4001-A_000400-000612": ["the air craft cannot fly", "the aircraft can't fly <unk>"],
            "en_4002-B_000050-000200": ["MM-HMM you know", "mhm you no"],
            "en_4002-B_000300-000400": ["anything"]}
    with open(tmp_path / "nbest.txt", "w") as fh:
        fh.write("# admmq-nbest costs: acwt lmwt.nolm\n")
        for utt, hs in hyps.items():
            fh.writelines(f"{utt}-{n} {10.0 * n} 0.0 {h}\n" for n, h in enumerate(hs, 1))
    arpa = write(tmp_path / "lm.arpa", backoff_arpa([h.lower().split() for hs in hyps.values() for h in hs], order=2))
    glm = tmp_path / "glm.gz"
    glm.write_bytes(HUB5_GLM.read_bytes())
    scoring = ["--stm", str(tmp_path / "ref.stm"), "--glm", str(glm), "--hyp-filter", "kaldi-swbd"]
    out = tmp_path / "out"
    r = CliRunner().invoke(cli, ["rescore", str(tmp_path / "nbest.txt"), "--ngram", str(arpa), "-o", str(out),
                                 "--lm-scale-grid", "0:4:1", "--json", "--quiet"] + scoring)
    assert r.exit_code == 0, r.output
    s = json.loads(r.output)
    w = json.loads(CliRunner().invoke(cli, ["wer", str(out / "text"), "--json"] + scoring).output)
    assert s["wer"]["rescored"] == w and set(w) == {"swbd", "callhm", "total"}
    settings = json.loads((out / "summary.json").read_text())["settings"]
    assert w["total"]["utterances"] == 3 and "NIST hubscr rules" in settings["scoring"]
    # the oracle: I'M (%HESITATION) GOING TO SAY {YES / YEAH} O. K. | (%HESITATION) THE AIR CRAFT CAN'T FLY |
    # %BCACK YOU KNOW IGNORE: optional words deleted count as correct; the hypotheses' I'M -> I AM (sub + ins)
    # and CAN'T -> {CAN NOT / CANNOT} (sub) cannot match the references' I'M and CAN'T
    assert s["wer"]["oracle"]["total"]["words"] == 8 + 6 + 4 and s["wer"]["oracle"]["swbd"]["errors"] == 3
    r = CliRunner().invoke(cli, ["rescore", str(tmp_path / "nbest.txt"), "--ngram", str(arpa), "-o", str(out),
                                 "--ref", str(tmp_path / "ref.stm")] + scoring)
    assert r.exit_code == 1 and "--ref TEXT or --stm STM, not both" in r.output


def test_end_to_end_lstm_and_arpa_interpolated(tiny_lm, ptb_slice, tmp_path):
    """Tiny Kaldi n-best set -> admmq interpolate (LSTM + a real ARPA 3-gram) -> admmq rescore -> WER."""
    sents = [line.split() for line in (ptb_slice / "train.txt").read_text().splitlines()]
    arpa = write(tmp_path / "lm3.arpa", backoff_arpa(sents, order=3))
    weights = tmp_path / "w.json"
    r = CliRunner().invoke(cli, ["interpolate", "--lm", str(tiny_lm), "--ngram", str(arpa), "--valid",
                                 str(ptb_slice / "valid.txt"), "-o", str(weights), "--json", "--quiet"])
    assert r.exit_code == 0, r.output
    lam = json.loads(r.output)["weights"]
    assert len(lam) == 2 and abs(sum(lam) - 1) < 1e-9 and 0 < lam[0] < 1
    d, text, hyps = write_tiny_kaldi_set(tmp_path / "nbest")
    out = tmp_path / "out"
    r = CliRunner().invoke(cli, ["rescore", str(d), "--weights", str(weights), "--ref", str(text), "-o", str(out),
                                 "--lm-scale-grid", "0:2:0.5", "--json", "--quiet"])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.output)
    assert summary["wer"]["rescored"]["total"]["words"] == sum(len(SENTS[k]) for k in (1, 2, 4))
    mix = load_scorer(weights=str(weights)).score([w for _, w in hyps]).totals()
    lstm = load_scorer([tiny_lm]).score([w for _, w in hyps]).totals()
    new = read_archive(out / "lmwt.new", SCALAR)
    assert np.allclose([e.value for e in new], 0.5 - mix, atol=1e-6)
    assert not np.allclose(mix, lstm, atol=1e-3)  # the n-gram really took part


def test_unknown_words_cost_the_same_in_eval_interpolate_and_rescore_by_default(tiny_lm, tmp_path):
    """One default (--oov share, 10^4 types): an unknown word costs -ln P(<unk>|h) + ln 10^4 everywhere."""
    unk_lm = load_lm(tiny_lm)
    known = tuple(unk_lm.units.vocab.symbols[2:5])  # three of its words
    assert unk_lm.units.vocab.is_oov("zzyzx") and not any(unk_lm.units.vocab.is_oov(w) for w in known)
    sents = [known + ("zzyzx",), known + ("<unk>",), known]
    text = tmp_path / "t.txt"
    text.write_text("".join(" ".join(s) + "\n" for s in sents))
    per = tmp_path / "per.txt"
    r = CliRunner().invoke(cli, ["eval", "--lm", str(tiny_lm), "--text", str(text), "--per-sentence", str(per),
                                 "--json"])
    assert r.exit_code == 0, r.output
    ev = json.loads(r.output)
    assert ev["oov"] == 1 and ev["oov_policy"]["mode"] == "share"
    eval_cost = [float(line.split()[1]) for line in per.read_text().splitlines()]
    # the unknown word costs its share of the <unk> class; the text token <unk> the whole class
    assert eval_cost[0] - eval_cost[1] == pytest.approx(np.log(10000), abs=1e-4)
    d = tmp_path / "nb"
    d.mkdir()
    keys = [f"u{k}-1" for k in range(len(sents))]
    (d / "words_text").write_text("".join(" ".join((k,) + s) + "\n" for k, s in zip(keys, sents)))
    (d / "acwt").write_text("".join(f"{k} 10.0\n" for k in keys))
    out = tmp_path / "out"
    r = CliRunner().invoke(cli, ["rescore", str(d), "--lm", str(tiny_lm), "--lm-scale", "1", "--wip", "0",
                                 "-o", str(out), "--quiet"])
    assert r.exit_code == 0, r.output
    nb = read_nbest(out / "nbest.txt")
    assert np.allclose(nb.costs["lm.new"], eval_cost, atol=1e-5)
    r = CliRunner().invoke(cli, ["interpolate", "--lm", str(tiny_lm), "--valid", str(text), "--json", "--quiet"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["ppl"] == pytest.approx(ev["ppl"], rel=1e-6)


def interpolate_weights(lms, ngrams, text, fmt="plain"):
    """The weights `admmq interpolate` finds on ``text``."""
    args = ["interpolate", "--valid", str(text), "--text-format", fmt, "--json", "--quiet"]
    args += [x for p in lms for x in ("--lm", str(p))] + [x for p in ngrams for x in ("--ngram", str(p))]
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)["weights"]


@pytest.fixture
def ptb_arpa(ptb_slice, tmp_path):
    sents = [line.split() for line in (ptb_slice / "train.txt").read_text().splitlines()]
    return write(tmp_path / "lm3.arpa", backoff_arpa(sents, order=3))


def warnings_in(r):
    return [ln for ln in r.stderr.splitlines() if ln.startswith("admmq: warning:")]


def test_card_command_lstm_and_ngram_without_weights(tiny_lm, ptb_arpa, ptb_slice, tmp_path):
    """`admmq rescore NBEST --lm LM --ngram ARPA -o OUT`: equal weights with one warning; EM on --valid
    or on --dev-ref gives exactly `admmq interpolate`'s weights on that text."""
    d, text, hyps = write_tiny_kaldi_set(tmp_path / "nbest")
    card = ["rescore", str(d), "--lm", str(tiny_lm), "--ngram", str(ptb_arpa)]
    r = CliRunner().invoke(cli, card + ["-o", str(tmp_path / "eq"), "--quiet"])  # the card's exact form
    assert r.exit_code == 0, r.output
    warn, scale_note = warnings_in(r)
    assert "equal interpolation weights" in warn and "--valid" in warn and "--weights" in warn
    assert "LM scale 10" in scale_note and "--dev" in scale_note
    assert json.loads((tmp_path / "eq" / "summary.json").read_text())["chosen_by"] == "default"
    assert "(equal, not tuned)" in r.stdout
    s = json.loads((tmp_path / "eq" / "summary.json").read_text())
    assert s["interpolation"]["source"] == "equal" and s["interpolation"]["weights"] == [0.5, 0.5]
    new = read_archive(tmp_path / "eq" / "lmwt.new", SCALAR)
    mix = load_scorer([tiny_lm], [ptb_arpa], [0.5, 0.5]).score([w for _, w in hyps]).totals()
    assert np.allclose([e.value for e in new], 0.5 - mix, atol=1e-6)
    # --valid TEXT: EM as admmq interpolate
    want = interpolate_weights([tiny_lm], [ptb_arpa], ptb_slice / "valid.txt")
    r = CliRunner().invoke(cli, card + ["-o", str(tmp_path / "v"), "--lm-scale", "10", "--valid",
                                        str(ptb_slice / "valid.txt"), "--quiet"])
    assert r.exit_code == 0, r.output
    assert not warnings_in(r) and f"EM on {ptb_slice / 'valid.txt'}" in r.stdout
    s = json.loads((tmp_path / "v" / "summary.json").read_text())["interpolation"]
    assert s["source"] == "em" and s["text"] == str(ptb_slice / "valid.txt")
    assert s["weights"] == pytest.approx(want, abs=WEIGHT_TOL) and 0 < want[0] < 1
    # no --valid but a dev set: EM on its references (Kaldi text)
    want = interpolate_weights([tiny_lm], [ptb_arpa], text, "kaldi")
    r = CliRunner().invoke(cli, card + ["-o", str(tmp_path / "dv"), "--dev", str(d), "--dev-ref", str(text),
                                        "--lm-scale-grid", "0:2:1", "--json", "--quiet"])
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout)["interpolation"]
    assert s["source"] == "em" and s["text"] == str(text) and s["weights"] == pytest.approx(want, abs=WEIGHT_TOL)
    assert json.loads((tmp_path / "dv" / "summary.json").read_text())["interpolation"] == s


def test_card_command_on_a_ptb_tts_slice_tunes_on_the_dev_references(tiny_lm, ptb_arpa, tmp_path):
    d, text = ptb_tts_slice(tmp_path, "test", lines=200)
    dev, dev_text = ptb_tts_slice(tmp_path, "dev", lines=200)
    out = tmp_path / "out"
    r = CliRunner().invoke(cli, ["rescore", str(d), "--lm", str(tiny_lm), "--ngram", str(ptb_arpa), "-o", str(out),
                                 "--dev", str(dev), "--dev-ref", str(dev_text), "--ref", str(text),
                                 "--lm-scale-grid", "0:12:4", "--quiet"])
    assert r.exit_code == 0, r.output
    assert not warnings_in(r)
    s = json.loads((out / "summary.json").read_text())
    want = interpolate_weights([tiny_lm], [ptb_arpa], dev_text, "kaldi")
    assert s["interpolation"]["source"] == "em" and s["interpolation"]["text"] == str(dev_text)
    assert s["interpolation"]["weights"] == pytest.approx(want, abs=WEIGHT_TOL)
    assert s["chosen_by"] == "dev" and s["hypotheses"] == 200


def test_eval_lstm_and_ngram_without_weights(tiny_lm, ptb_arpa, ptb_slice):
    base = ["eval", "--lm", str(tiny_lm), "--ngram", str(ptb_arpa), "--text", str(ptb_slice / "test.txt"), "--json"]
    r = CliRunner().invoke(cli, base)
    assert r.exit_code == 0, r.output
    assert len(warnings_in(r)) == 1 and json.loads(r.stdout)["interpolation"]["source"] == "equal"
    r = CliRunner().invoke(cli, base + ["--valid", str(ptb_slice / "valid.txt"), "--quiet"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    want = interpolate_weights([tiny_lm], [ptb_arpa], ptb_slice / "valid.txt")
    assert not warnings_in(r) and d["interpolation"]["source"] == "em"
    assert [c["weight"] for c in d["components"]] == pytest.approx(want, abs=WEIGHT_TOL)


def kaldi_copy(src, dest, n=40):
    """The first ``n`` lines of plain text ``src`` as a Kaldi text file (utterance ids first)."""
    lines = src.read_text().splitlines()[:n]
    dest.write_text("".join(f"spk1_utt{k:04d} {line}\n" for k, line in enumerate(lines)))
    return dest


def notices_in(r):
    return [ln for ln in r.stderr.splitlines() if ln.startswith("admmq: notice:")]


def test_kaldi_text_given_as_plain_text_is_noticed(tiny_lm, ptb_arpa, ptb_slice, tmp_path):
    """--valid/--text holding a Kaldi text file without --text-format: one notice line naming the option,
    then read as plain text; an explicit --text-format (either) or a plain file: no notice."""
    ktext = kaldi_copy(ptb_slice / "valid.txt", tmp_path / "text")
    lms = ["--lm", str(tiny_lm), "--ngram", str(ptb_arpa)]
    runs = {
        "interpolate": ["interpolate", *lms, "--valid", str(ktext), "--json", "--quiet"],
        "eval": ["eval", "--lm", str(tiny_lm), "--text", str(ktext), "--json", "--quiet"],
    }
    for name, args in runs.items():
        r = CliRunner().invoke(cli, args)
        assert r.exit_code == 0, (name, r.output)
        (note,) = notices_in(r)
        assert str(ktext) in note and "Kaldi text" in note and "--text-format kaldi" in note, name
        assert "'spk1_utt" in note, name
        for fmt in ("kaldi", "plain"):
            r = CliRunner().invoke(cli, args + ["--text-format", fmt])
            assert r.exit_code == 0 and not notices_in(r), (name, fmt, r.output)
    # read as plain text: the ids are words (unknown ones), as --text-format plain reads them
    r1 = CliRunner().invoke(cli, runs["eval"])
    r2 = CliRunner().invoke(cli, runs["eval"] + ["--text-format", "plain"])
    r3 = CliRunner().invoke(cli, runs["eval"] + ["--text-format", "kaldi"])
    assert json.loads(r1.stdout)["ppl"] == json.loads(r2.stdout)["ppl"] != json.loads(r3.stdout)["ppl"]
    assert json.loads(r1.stdout)["words"] == json.loads(r3.stdout)["words"] + 40
    # eval's --valid and --text (one --text-format for both) are each checked
    ktest = kaldi_copy(ptb_slice / "test.txt", tmp_path / "test_text")
    r = CliRunner().invoke(cli, ["eval", *lms, "--valid", str(ktext), "--text", str(ktest), "--quiet"])
    assert r.exit_code == 0, r.output
    assert [str(ktext) in n and str(ktest) not in n for n in notices_in(r)] == [True, False]
    # a plain text is not noticed; rescore's --valid is checked too
    r = CliRunner().invoke(cli, ["eval", "--lm", str(tiny_lm), "--text", str(ptb_slice / "test.txt"), "--quiet"])
    assert r.exit_code == 0 and not notices_in(r)
    d, text, _ = write_tiny_kaldi_set(tmp_path / "nbest")
    r = CliRunner().invoke(cli, ["rescore", str(d), *lms, "--valid", str(ktext), "--lm-scale", "10", "-o",
                                 str(tmp_path / "o"), "--quiet"])
    assert r.exit_code == 0, r.output
    assert len(notices_in(r)) == 1 and not warnings_in(r)


def test_every_output_option_creates_missing_parent_directories(tiny_lm, ptb_arpa, ptb_slice, tmp_path):
    d, text, _ = write_tiny_kaldi_set(tmp_path / "nbest")
    deep = tmp_path / "new" / "deeper"
    runs = [
        (["rescore", str(d), "--lm", str(tiny_lm), "--lm-scale", "10", "-o", str(deep / "rescore" / "out"),
          "--quiet"], deep / "rescore" / "out" / "summary.json"),
        (["interpolate", "--lm", str(tiny_lm), "--ngram", str(ptb_arpa), "--valid", str(ptb_slice / "valid.txt"),
          "-o", str(deep / "interp" / "w.json"), "--quiet"], deep / "interp" / "w.json"),
        (["export", "--lm", str(tiny_lm), "-o", str(deep / "export" / "lm.admmq"), "--quiet"], deep / "export" / "lm.admmq"),
        (["eval", "--lm", str(tiny_lm), "--text", str(ptb_slice / "test.txt"), "--per-sentence",
          str(deep / "eval" / "per.txt")], deep / "eval" / "per.txt"),
        (["nbest", "merge", str(d), "-o", str(deep / "merge" / "all.txt"), "--to", "file"], deep / "merge" / "all.txt"),
        (["nbest", "split", str(d), "-o", str(deep / "split"), "--nj", "2"], deep / "split" / "2" / "words_text"),
    ]
    for args, made in runs:
        r = CliRunner().invoke(cli, args)
        assert r.exit_code == 0, (args[0], r.output)
        assert made.is_file() and made.stat().st_size > 0, args[0]
    assert not list(deep.rglob(".*.tmp"))
    # a parent that is a file is still a one-line error, and nothing is created
    blocker = tmp_path / "file"
    blocker.write_text("x")
    r = CliRunner().invoke(cli, ["interpolate", "--lm", str(tiny_lm), "--valid", str(ptb_slice / "valid.txt"),
                                 "-o", str(blocker / "sub" / "w.json"), "--quiet"])
    assert r.exit_code == 1 and "is not a directory" in r.output and len(r.output.strip().splitlines()) == 1
