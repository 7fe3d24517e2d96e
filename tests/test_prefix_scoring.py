import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from rescorer.lm.batch_control import BatchControl, ScoringStats, is_out_of_memory
from rescorer.pack.checkpoint import save_checkpoint
from rescorer.cli.group import cli
from rescorer.errors import AdmmqError
from rescorer.ngram.mixture import MixtureScorer
from rescorer.lm.model import LSTMLM, ModelConfig
from rescorer.nbest.kaldi_dir import read_nbest
from rescorer.ngram.ngram_lm import NgramScorer
from rescorer.lm.prefix_tree import build_prefix_tree, prefix_groups
from rescorer.nbest.rescore import RescoreConfig, rescore
from rescorer.nbest.lm_costs import score_sentences
from rescorer.lm.scoring import NeuralScorer
from rescorer.lm.subword import SubwordUnits
from rescorer.lm.vocab import Vocab
from rescorer.nbest.wer import read_text
from tests.conftest import ptb_lines
from tests.ngram_fixtures import backoff_arpa, write
from tests.test_rescore import ptb_tts_slice

TRAIN = [line.split() for line in ptb_lines("train", 400)]
VOCAB = Vocab.build(TRAIN)


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


def model_for(units, dim=24, seed=0, **cfg):
    torch.manual_seed(seed)
    m = LSTMLM(ModelConfig(vocab_size=len(units), embed_dim=dim, hidden_dim=dim, **cfg)).eval()
    with torch.no_grad():  # larger weights than the init: peaked distributions, so differences would show
        for p in m.parameters():
            p.mul_(4.0)
    return m


def brute_prefixes(seqs):
    out = {()}
    for s in seqs:
        out |= {tuple(s[:k]) for k in range(1, len(s) + 1)}
    return out


def test_prefix_tree_is_the_trie_of_the_sequences():
    rng = np.random.default_rng(0)
    for _ in range(150):
        seqs = [rng.integers(2, 5, size=rng.integers(0, 7)) for _ in range(rng.integers(0, 14))]
        t = build_prefix_tree(seqs, bos=9)
        assert t.num_nodes == len(brute_prefixes([s.tolist() for s in seqs]))
        prefix = {0: ()}
        for n in range(1, t.num_nodes):
            assert 0 <= t.parent[n] < n
            prefix[n] = prefix[int(t.parent[n])] + (int(t.token[n]),)
        assert len(set(prefix.values())) == t.num_nodes  # every node a distinct prefix
        assert t.token[0] == 9 and t.parent[0] == -1
        for d in range(t.depth + 1):
            a, b = t.depth_offsets[d], t.depth_offsets[d + 1]
            assert all(len(prefix[n]) == d for n in range(a, b))
            assert (np.diff(t.parent[a:b]) >= 0).all()  # children of a slice are contiguous
        for i, s in enumerate(seqs):
            p = t.path[t.offsets[i]: t.offsets[i + 1]]
            assert [prefix[int(n)] for n in p] == [tuple(s[:k].tolist()) for k in range(len(s) + 1)]
            assert t.terminal[p[-1]]
        assert t.terminal.sum() == len({tuple(s.tolist()) for s in seqs})
        assert t.tokens == sum(len(s) + 1 for s in seqs)


def test_prefix_groups_are_lexicographic_and_bounded():
    rng = np.random.default_rng(1)
    seqs = [rng.integers(2, 6, size=rng.integers(0, 9)) for _ in range(200)]
    for max_sequences, max_tokens in ((1000, 40), (7, 1000), (7, 40)):
        groups = list(prefix_groups(seqs, max_sequences, max_tokens))
        order = np.concatenate(groups)
        assert sorted(order.tolist()) == list(range(200))
        keys = [seqs[i].tolist() for i in order]
        assert keys == sorted(keys)
        assert all(sum(len(seqs[i]) + 1 for i in g) <= max_tokens and len(g) <= max_sequences for g in groups)
        sizes = [(len(g), sum(len(seqs[i]) + 1 for i in g)) for g in groups]
        assert all(n == max_sequences or t + len(seqs[groups[j + 1][0]]) + 1 > max_tokens  # cut only when full
                   for j, (n, t) in enumerate(sizes[:-1]))


@pytest.fixture(scope="module")
def real_slice(tmp_path_factory):
    """The first 4 utterances (400 hypotheses) of the real ptb-tts test lists and their references."""
    d, text = ptb_tts_slice(tmp_path_factory.mktemp("tts"), lines=400)
    return read_nbest(d), read_text(text)


def test_prefix_sharing_gives_the_plain_scores_steps_and_wer_on_real_lists(real_slice):
    nb, refs = real_slice
    m = model_for(VOCAB, dim=32)
    plain = NeuralScorer(m, VOCAB, prefix_sharing=False)
    shared = NeuralScorer(m, VOCAB)  # the default
    a = plain.score(nb.words)
    b = shared.score(nb.words)
    assert np.array_equal(a.offsets, b.offsets) and np.array_equal(a.oov, b.oov)
    assert np.abs(a.totals() - b.totals()).max() <= 1e-4
    assert np.abs(a.logprob - b.logprob).max() <= 1e-5
    nodes = len(brute_prefixes([VOCAB.encode_sentence(w).tolist() for w in set(nb.words)]))
    assert shared.stats.lstm_steps == shared.stats.softmax_rows == nodes
    assert plain.stats.tokens == shared.stats.tokens == sum(len(w) + 1 for w in set(nb.words))
    assert shared.stats.tokens > 2.5 * nodes  # the real lists share prefixes: ~3x fewer steps
    assert plain.stats.lstm_steps >= plain.stats.tokens
    cfg = RescoreConfig(lm_scale_grid=(0.5, 1.0, 2.0, 5.0), wip_grid=(0.0, 1.0))
    ra = rescore(nb, NeuralScorer(m, VOCAB, prefix_sharing=False), cfg, refs, quiet=True)
    rb = rescore(nb, NeuralScorer(m, VOCAB), cfg, refs, quiet=True)
    assert np.array_equal(ra.best, rb.best) and np.array_equal(ra.sweep.errors, rb.sweep.errors)
    assert ra.wer["rescored"].to_dict() == rb.wer["rescored"].to_dict()
    assert rb.lm_scores.work[0]["lstm_steps"] == nodes


def synthetic_lists(rng, utts=6, n=60, words=VOCAB.symbols[2:400]):
    """n-best-like lists: variants of a base sentence, with empty hypotheses and duplicates."""
    out = []
    for _ in range(utts):
        base = list(rng.choice(words, size=rng.integers(5, 25)))
        for _ in range(n):
            h = list(base)
            for _ in range(rng.integers(0, 3)):  # insert or delete a word anywhere
                p = int(rng.integers(len(h) + 1))
                if rng.random() < 0.5 or not h:
                    h.insert(p, str(rng.choice(words)))
                else:
                    del h[min(p, len(h) - 1)]
            out.append(tuple(h))
        out += [(), tuple(base), ("never-seen-word",) + tuple(base[:3])]
    return out


@pytest.mark.parametrize("batch_tokens", [16, 8192])
def test_synthetic_lists_with_empty_duplicates_and_frontier_bounds(batch_tokens):
    rng = np.random.default_rng(2)
    sents = synthetic_lists(rng, utts=4, n=40)
    m = model_for(VOCAB)
    ref = NeuralScorer(m, VOCAB, prefix_sharing=False).score(sents, dedup=False)
    for dedup in (True, False):
        s = NeuralScorer(m, VOCAB, batch_tokens=batch_tokens)
        got = s.score(sents, dedup=dedup)
        assert np.abs(got.totals() - ref.totals()).max() <= 1e-4
        assert np.array_equal(got.oov, ref.oov) and got.oov.sum() > 0
        assert s.stats.max_rows <= batch_tokens
    empty = [i for i, w in enumerate(sents) if not w]
    assert empty and all(ref.sentence(i).size == 1 for i in empty)


@pytest.mark.parametrize("cfg", [{"act_bits": 2}, {"input_linear": True, "output_linear": True}, {"layers": 2}],
                         ids=["multibit-activations", "bin-lin-layers", "two-layers"])
def test_prefix_sharing_equals_plain_for_every_model_variant(cfg):
    rng = np.random.default_rng(5)
    sents = synthetic_lists(rng, utts=3, n=20)
    m = model_for(VOCAB, **cfg)
    ref = NeuralScorer(m, VOCAB, prefix_sharing=False).score(sents, dedup=False)
    got = NeuralScorer(m, VOCAB).score(sents)
    assert np.abs(got.totals() - ref.totals()).max() <= 1e-4, cfg


def test_subword_units_tree_is_over_pieces_and_words_sum_them():
    sents = [tuple(line.split()) for line in ptb_lines("valid", 30)]
    units = SubwordUnits.train(TRAIN[:200], vocab_size=300)
    m = model_for(units)
    hyps = sents + [s[:-1] for s in sents] + [s[:3] + ("zebra",) + s[3:] for s in sents]
    plain = NeuralScorer(m, units, prefix_sharing=False)
    shared = NeuralScorer(m, units, batch_tokens=32)
    a, b = plain.score(hyps), shared.score(hyps)
    assert np.array_equal(a.offsets, b.offsets)
    assert np.abs(a.logprob - b.logprob).max() <= 1e-5  # per word: sums over its pieces
    pieces = [units.encode_sentence(h) for h in set(hyps)]
    groups = list(prefix_groups(pieces, 32, 1 << 18))  # trees of at most batch_tokens sentences
    assert len(groups) > 1
    nodes = sum(len(brute_prefixes([pieces[i].tolist() for i in g])) for g in groups)
    assert shared.stats.lstm_steps == nodes < shared.stats.tokens
    whole = NeuralScorer(m, units, batch_tokens=4096)  # one group: every shared piece prefix stepped once
    whole.score(hyps)
    assert whole.stats.lstm_steps == len(brute_prefixes([p.tolist() for p in pieces])) < nodes


def test_long_1000_best_list_stays_within_the_row_bounds():
    rng = np.random.default_rng(3)
    base = list(rng.choice(VOCAB.symbols[2:-1], size=80))
    hyps = []
    for k in range(1000):
        h = list(base)
        h[int(rng.integers(len(h)))] = str(rng.choice(VOCAB.symbols[2:-1]))
        hyps.append(tuple(h))
    m = model_for(VOCAB, dim=8)
    s = NeuralScorer(m, VOCAB, batch_tokens=128, native=False)  # PyTorch's output layer, rows counted below
    seen = []
    out = s.step_lm.output
    s.step_lm.output = lambda h: (seen.append(h.shape[0]), out(h))[1]
    got = s.score(hyps).totals()
    assert max(seen) <= 128 and s.stats.max_rows == 128  # logits rows and frontier slices bounded, and reached
    assert s.stats.lstm_steps < 0.6 * s.stats.tokens
    ref = NeuralScorer(m, VOCAB, prefix_sharing=False).score(hyps[:50]).totals()
    assert np.abs(got[:50] - ref).max() <= 1e-4


def fake_oom_above(limit, calls):
    def hook(rows):
        calls.append(rows)
        if rows > limit:
            raise torch.cuda.OutOfMemoryError(f"CUDA out of memory. Tried to allocate {rows} rows (injected)")
    return hook


@pytest.mark.parametrize("prefix_sharing", [True, False])
def test_out_of_memory_halves_the_batch_and_keeps_the_scores(prefix_sharing):
    rng = np.random.default_rng(4)
    sents = synthetic_lists(rng, utts=3, n=40)
    m = model_for(VOCAB)
    ref = NeuralScorer(m, VOCAB, prefix_sharing=False).score(sents).totals()
    calls = []
    s = NeuralScorer(m, VOCAB, prefix_sharing=prefix_sharing, before_batch=fake_oom_above(7, calls))
    got = s.score(sents).totals()
    assert np.abs(got - ref).max() <= 1e-4
    assert s.stats.oom_splits > 0 and max(calls) > 7
    ran = [r for r in calls if r <= 7]
    assert ran and s._budget <= 7
    calls.clear()
    s.score(sents[:30])  # the reduced budget is kept: no new failures
    assert calls and max(calls) <= 7


def test_output_rows_of_several_depths_share_a_product_and_survive_out_of_memory():
    rng = np.random.default_rng(5)
    sents = synthetic_lists(rng, utts=3, n=40)
    m = model_for(VOCAB)
    ref = NeuralScorer(m, VOCAB, prefix_sharing=False).score(sents).totals()
    s = NeuralScorer(m, VOCAB, softmax_rows=64)
    sizes, inner = [], s.step_lm.logprobs_at

    def logprobs_at(h, rows, targets):  # out of memory while more than 16 logits rows are computed at once
        sizes.append(h.shape[0])
        if s.step_lm.softmax_rows > 16:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (injected)")
        return inner(h, rows, targets)
    s.step_lm.logprobs_at = logprobs_at
    got = s.score(sents).totals()
    assert np.abs(got - ref).max() <= 1e-4
    assert s.step_lm.softmax_rows == 16 and s.stats.oom_splits == 2  # 64 -> 32 -> 16
    assert s._budget is None or s._budget > 16  # the node budget is not what ran out
    # frontiers of a few nodes wait for the next depths: every product but the tree's last one is full
    assert sum(1 for n in sizes[2:] if n < 16) <= 1, sizes
    assert s.stats.softmax_rows == s.stats.lstm_steps


def test_out_of_memory_on_one_row_and_other_errors():
    m = model_for(VOCAB)
    s = NeuralScorer(m, VOCAB, before_batch=fake_oom_above(0, []))
    with pytest.raises(AdmmqError, match="out of memory scoring a single tree node; lower --batch-tokens"):
        s.score([("the", "cat")])

    def broken(rows):
        raise ValueError("not a memory problem")
    with pytest.raises(ValueError, match="not a memory problem"):
        NeuralScorer(m, VOCAB, before_batch=broken).score([("the",)])
    assert is_out_of_memory(RuntimeError("CUDA error: out of memory"))
    assert not is_out_of_memory(RuntimeError("shape mismatch"))
    ctl = BatchControl(100, stats=ScoringStats())
    assert ctl.shrink(100, torch.cuda.OutOfMemoryError("x"), "row") == 50 and ctl.stats.oom_splits == 1


def test_rescore_sends_prefix_ordered_chunks_to_a_prefix_sharing_lm(real_slice):
    nb, _ = real_slice
    m = model_for(VOCAB)
    calls = []

    class Recording(NeuralScorer):
        def score(self, sentences, dedup=True):
            calls.append(list(sentences))
            return super().score(sentences, dedup)
    got = score_sentences(Recording(m, VOCAB), nb.words, chunk_tokens=800, quiet=True)
    flat = [s for c in calls for s in c]
    assert flat == sorted(set(nb.words)) and len(calls) > 3
    ref = score_sentences(NeuralScorer(m, VOCAB, prefix_sharing=False), nb.words, chunk_tokens=800, quiet=True)
    assert np.abs(got.logprob - ref.logprob).max() <= 1e-4


def test_mixture_runs_components_concurrently_with_the_same_result(tmp_path):
    arpa = write(tmp_path / "lm.arpa", backoff_arpa(TRAIN[:100], order=3))
    m = model_for(VOCAB)
    sents = [tuple(line.split()) for line in ptb_lines("valid", 40)]
    mixes = [MixtureScorer([NeuralScorer(m, VOCAB), NgramScorer(arpa, backend="builtin")], [0.6, 0.4],
                           concurrent=c) for c in (False, True)]
    assert not mixes[0].concurrent and mixes[1].concurrent
    assert MixtureScorer([NeuralScorer(m, VOCAB)], [1.0]).concurrent is False  # an LSTM on the CPU: sequential
    assert mixes[1].sentence_order == "prefix"
    a, b = (x.score(sents) for x in mixes)
    assert np.array_equal(a.logprob, b.logprob)


def test_bf16_is_opt_in_and_close_tf32_needs_cuda():
    sents = [tuple(line.split()) for line in ptb_lines("valid", 20)]
    m = model_for(VOCAB)
    exact = NeuralScorer(m, VOCAB).score(sents).totals()
    bf16 = NeuralScorer(m, VOCAB, precision="bf16").score(sents).totals()
    diff = np.abs(bf16 - exact)
    # measured (2-core EPYC): at most 0.007 nats per sentence (3.3e-4 per token) on scores up to 273 nats;
    # bar 0.1 nats per sentence, a 14x margin (bf16 has 8 significant bits: 2^-9 relative per product)
    assert 0 < diff.max() <= 0.1, diff.max()
    with pytest.raises(AdmmqError, match="tf32 applies to CUDA"):
        NeuralScorer(m, VOCAB, precision="tf32")
    with pytest.raises(AdmmqError, match="precision must be one of"):
        NeuralScorer(m, VOCAB, precision="fp8")


def test_cli_rescore_same_outputs_with_and_without_prefix_sharing(real_slice, tmp_path):
    nb, refs = real_slice
    m = model_for(VOCAB)
    ckpt = tmp_path / "lm.pt"
    save_checkpoint(ckpt, {"model_config": m.cfg.to_dict(), "units": VOCAB.to_state(), "model": m.state_dict(),
                           "method_config": {"method": "fp"}})
    src = nb.source
    ref = tmp_path / "ref.txt"
    ref.write_text("".join(" ".join((u,) + refs[u]) + "\n" for u in nb.utts))
    outs = {}
    for flag in ("--prefix-sharing", "--no-prefix-sharing"):
        out = tmp_path / flag
        r = CliRunner().invoke(cli, ["rescore", src, "--lm", str(ckpt), "--ref", str(ref), "-o", str(out),
                                     "--lm-scale", "1", "--wip", "0", flag, "--json", "--quiet", "--threads", "1"])
        assert r.exit_code == 0, r.output
        outs[flag] = (json.loads(r.output), (out / "text").read_text())
    (sa, ta), (sb, tb) = outs["--prefix-sharing"], outs["--no-prefix-sharing"]
    assert ta == tb and sa["wer"] == sb["wer"]
    wa, wb = sa["scoring"]["lm_work"][0], sb["scoring"]["lm_work"][0]
    assert wa["tokens"] == wb["tokens"] and wa["lstm_steps"] * 2.5 < wb["lstm_steps"]
    assert wa["how"].startswith("prefix-shared") and wb["how"].startswith("plain")
    summary = json.loads((tmp_path / "--prefix-sharing" / "summary.json").read_text())
    assert summary["settings"]["neural"] == {"prefix_sharing": True, "int8": False, "precision": "fp32",
                                             "normalize": True}
    assert summary["settings"]["threads"] == 1
    timing = summary["timing"]  # where the command's time went
    assert {"read", "load_lm", "lm_scoring", "choose", "write", "in_command"} <= set(timing)
    assert all(v >= 0 for v in timing.values()) and timing["lm_scoring"] <= timing["in_command"]
    assert wa["output_seconds"] + wa["lstm_seconds"] <= wa["seconds"] <= timing["lm_scoring"]
    r = CliRunner().invoke(cli, ["rescore", src, "--lm", str(ckpt), "-o", str(tmp_path / "raw"), "--lm-scale", "1",
                                 "--wip", "0", "--no-normalize-probs", "--json", "--quiet", "--threads", "1"])
    assert r.exit_code == 0, r.output
    raw = json.loads(r.output.splitlines()[-1])
    assert "not trained with --self-norm" in r.output  # one warning line (CliRunner mixes stderr in)
    assert json.loads((tmp_path / "raw" / "summary.json").read_text())["settings"]["neural"]["normalize"] is False
    assert raw["scoring"]["lm_work"][0]["lstm_steps"] == wa["lstm_steps"]
    r = CliRunner().invoke(cli, ["rescore", src, "--lm", str(ckpt), "-o", str(tmp_path / "z"), "--lm-scale", "1",
                                 "--no-normalize-probs", "--no-prefix-sharing", "--quiet"])
    assert r.exit_code == 1 and "--no-normalize-probs runs on the prefix-shared path" in r.output
    r = CliRunner().invoke(cli, ["rescore", src, "--lm", str(ckpt), "-o", str(tmp_path / "x"), "--lm-scale", "1",
                                 "--precision", "tf32", "--quiet"])
    assert r.exit_code == 1 and r.output.startswith("admmq: error:") and "tf32" in r.output
    r = CliRunner().invoke(cli, ["rescore", src, "--lm", str(ckpt), "-o", str(tmp_path / "y"), "--lm-scale", "1",
                                 "--int8", "--no-prefix-sharing", "--quiet"])
    assert r.exit_code == 1 and "--int8 runs on the prefix-shared path" in r.output


cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.gpu
@cuda
@pytest.mark.parametrize("prefix_sharing", [True, False])
def test_gpu_scores_equal_cpu_and_bf16_tf32_are_close(prefix_sharing):
    sents = synthetic_lists(np.random.default_rng(5), utts=4, n=50)
    m = model_for(VOCAB, dim=64)
    ref = NeuralScorer(m, VOCAB, prefix_sharing=False).score(sents).totals()
    gm = model_for(VOCAB, dim=64).cuda()
    got = NeuralScorer(gm, VOCAB, device="cuda", prefix_sharing=prefix_sharing)
    assert got.prefers_concurrency
    assert np.abs(got.score(sents).totals() - ref).max() <= 1e-4
    for precision, tol in (("tf32", 0.05), ("bf16", 0.5)):
        s = NeuralScorer(gm, VOCAB, device="cuda", prefix_sharing=prefix_sharing, precision=precision)
        assert np.abs(s.score(sents).totals() - ref).max() <= tol


@pytest.mark.gpu
@cuda
def test_gpu_injected_out_of_memory_splits():
    sents = synthetic_lists(np.random.default_rng(6), utts=2, n=30)
    gm = model_for(VOCAB).cuda()
    ref = NeuralScorer(gm, VOCAB, device="cuda").score(sents).totals()
    s = NeuralScorer(gm, VOCAB, device="cuda", before_batch=fake_oom_above(5, []))
    assert np.abs(s.score(sents).totals() - ref).max() <= 1e-4 and s.stats.oom_splits > 0
