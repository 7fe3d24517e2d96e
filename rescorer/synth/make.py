"""``admmq nbest synth``: real n-best lists from any PTB-style text, without Kaldi or LDC data.

Sentences of the text are chosen (:mod:`.spoken`), spoken by flite voices
with pink noise (:mod:`.audio`), recognised by pocketsphinx (:mod:`.decode`)
and written as a Kaldi n-best directory (``words``/``words.txt``,
``words_text``, ``acwt``, ``lmwt.withlm``, ``lmwt.nolm``, ``lmwt.lmonly``)
with the references ``text``, ``utt2subset`` (subset = voice) and
``synth.json`` (settings, selected line numbers, counts).  With the defaults
and ``ptb.valid.txt`` it regenerates ``data/ptb-tts/dev``; with
``--sentences 100 --seed 20251124 --letter t`` and ``ptb.test.txt``,
``data/ptb-tts/test``.

Every decoded utterance is kept in ``<out>.work/<uttid>.json`` (with the
settings it was made with), so a killed run resumes where it stopped; the
output directory appears whole (built beside it, then renamed) or not at all.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import multiprocessing
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from rescorer.errors import AdmmqError, PathLike
from rescorer.fileio import atomic_open, iter_lines
from rescorer.nbest.lists import build_nbest
from rescorer.nbest.kaldi_dir import write_nbest_dir
from rescorer.nbest.shards import write_text
from rescorer.progress import progress_bar, say
from rescorer.synth.audio import check_voices, noisy_utterance, write_wav
from rescorer.synth.decode import DecodeResult, decode, dictionary_words
from rescorer.synth.spoken import Sentence, eligible_sentences, select_sentences, utterance_id


MODEL_RATE = 16000  # pocketsphinx's default en-us acoustic model


@dataclass(frozen=True)
class SynthConfig:
    """How sentences are chosen, spoken, corrupted and recognised (defaults: ``data/ptb-tts/dev``)."""

    voices: Tuple[str, ...] = ("slt", "rms")
    sentences: int = 60
    seed: int = 20251123  # sentence selection: random.Random(seed).sample
    noise_seed: int = 20251123  # per-utterance noise seed base (see audio.noise_seed)
    letter: str = "d"  # uttid = <voice>_<letter><index>
    snr_db: float = 24.0
    nbest: int = 100
    max_raw: int = 5000
    min_tokens: int = 6
    max_tokens: int = 25
    jobs: int = 1
    limit: int = 0  # only the first `limit` selected sentences (0 = all), for quick checks

    def decode_settings(self) -> Dict:
        """What a stored utterance result depends on (a mismatch recomputes it)."""
        return {"snr_db": self.snr_db, "noise_seed": self.noise_seed, "nbest": self.nbest,
                "max_raw": self.max_raw}


@dataclass
class SynthSummary:
    out: Path
    utterances: int
    hypotheses: int
    reference_words: int
    decoded: int  # utterances decoded in this run (the rest came from the work directory)
    not_in_lattice: int
    same_after_mapping: int
    seconds: float
    lines: List[int] = field(default_factory=list)


def _work_item(uttid: str, voice: str, sentence: Sentence, cfg: SynthConfig, work: str,
               keep_audio: bool) -> Dict:
    """Synthesize, decode and store one utterance (runs in a worker process)."""
    t0 = time.perf_counter()
    samples, rate = noisy_utterance(sentence.spoken, voice, uttid, cfg.snr_db, cfg.noise_seed)
    if rate != MODEL_RATE:
        raise AdmmqError(f"flite voice {voice!r} speaks at {rate} Hz; the recogniser's en-us model needs "
                         f"{MODEL_RATE} Hz (use e.g. slt, rms, awb or kal16)")
    if keep_audio:
        write_wav(Path(work) / f"{uttid}.wav", samples, rate)
    t1 = time.perf_counter()
    res: DecodeResult = decode(samples, rate, cfg.nbest, cfg.max_raw)
    record = {"uttid": uttid, "voice": voice, "line": sentence.line, "tokens": list(sentence.tokens),
              "settings": cfg.decode_settings(), "seconds_audio": len(samples) / rate,
              "seconds_synth": t1 - t0, "seconds_decode": time.perf_counter() - t1,
              "raw_entries": res.raw_entries, "not_in_lattice": res.not_in_lattice,
              "same_after_mapping": res.same_after_mapping, "notes": res.notes,
              "hypotheses": [[list(h.words), h.acwt, h.lm] for h in res.hypotheses]}
    with atomic_open(Path(work) / f"{uttid}.json") as fh:
        json.dump(record, fh)
    return record


def _stored(path: Path, sentence: Sentence, cfg: SynthConfig) -> Optional[Dict]:
    """A finished utterance from an earlier run, if it was made from the same sentence and settings."""
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if record.get("tokens") != list(sentence.tokens) or record.get("settings") != cfg.decode_settings():
        return None
    return record


def read_sentences(text: PathLike, cfg: SynthConfig) -> List[Sentence]:
    """The eligible lines of ``text`` sampled as ``cfg`` says, in line order."""
    lines = [line for _, line in iter_lines(text)]
    eligible = eligible_sentences(lines, dictionary_words(), cfg.min_tokens, cfg.max_tokens)
    if not eligible:
        raise AdmmqError(f"no eligible sentence ({cfg.min_tokens}-{cfg.max_tokens} tokens, no <unk> or N, "
                         "every word in the recogniser's dictionary)", text)
    chosen = select_sentences(eligible, cfg.sentences, cfg.seed)
    return chosen[:cfg.limit] if cfg.limit else chosen


def _symbols(words: Sequence[Tuple[str, ...]]) -> Dict[str, int]:
    """``<eps> 0``, then every word, ids 1.. in sorted (byte) order."""
    vocab = sorted({w for ws in words for w in ws}, key=lambda w: w.encode())
    return {"<eps>": 0, **{w: i for i, w in enumerate(vocab, start=1)}}


def _write_output(records: List[Dict], cfg: SynthConfig, out: Path, meta: Dict) -> Tuple[int, int]:
    """Build the n-best directory beside ``out`` and rename it into place; (hypotheses, reference words)."""
    records = sorted(records, key=lambda r: r["uttid"])
    keys, words, acwt, lm = [], [], [], []
    for r in records:
        hyps = r["hypotheses"] or [[[], 0.0, 0.0]]  # nothing recognised: one empty hypothesis
        for n, (ws, ac, lc) in enumerate(hyps, start=1):
            keys.append(f"{r['uttid']}-{n}")
            words.append(tuple(ws))
            acwt.append(round(ac, 4))
            lm.append(round(lc, 4))
    lm_arr = np.asarray(lm)
    costs = {"acwt": np.asarray(acwt), "lmwt.withlm": lm_arr, "lmwt.nolm": np.zeros_like(lm_arr),
             "lmwt.lmonly": lm_arr}
    refs = {r["uttid"]: tuple(r["tokens"]) for r in records}
    symbols = _symbols(words + list(refs.values()))
    nb = build_nbest(keys, words, costs, source=str(out), symbols=symbols)
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    write_nbest_dir(nb, tmp, symbols=symbols)
    write_text(refs, tmp / "text")
    write_text({r["uttid"]: (r["voice"],) for r in records}, tmp / "utt2subset")
    with atomic_open(tmp / "synth.json") as fh:
        json.dump(meta, fh, indent=1)
    old = out.with_name(f".{out.name}.old{os.getpid()}")
    if out.exists():
        os.replace(out, old)
    os.replace(tmp, out)
    shutil.rmtree(old, ignore_errors=True)
    return len(keys), sum(len(t) for t in refs.values())


def make_nbest(text: PathLike, out: PathLike, cfg: SynthConfig = SynthConfig(),
               work_dir: Optional[PathLike] = None, keep_audio: bool = False,
               quiet: bool = False) -> SynthSummary:
    """Choose sentences of ``text``, speak, recognise and write the n-best directory ``out``."""
    t0 = time.perf_counter()
    check_voices(cfg.voices)  # fail early, before any work, when a tool or voice is missing
    sentences = read_sentences(text, cfg)
    out = Path(out)
    work = Path(work_dir) if work_dir is not None else out.with_name(out.name + ".work")
    work.mkdir(parents=True, exist_ok=True)
    items = [(utterance_id(v, cfg.letter, i), v, s) for v in cfg.voices
             for i, s in enumerate(sentences, start=1)]
    records, todo = [], []
    for uttid, voice, sentence in items:
        rec = _stored(work / f"{uttid}.json", sentence, cfg)
        if rec is not None:
            records.append(rec)
        else:
            todo.append((uttid, voice, sentence))
    say(f"nbest synth: {len(sentences)} sentences of {text} x voices {','.join(cfg.voices)}, SNR {cfg.snr_db} dB, "
        f"{cfg.nbest}-best; {len(records)} already decoded in {work}, {len(todo)} to do with {cfg.jobs} job(s)",
        quiet)
    if todo:
        ctx = multiprocessing.get_context("spawn")
        with progress_bar("synth+decode", len(todo), quiet) as bar, \
                cf.ProcessPoolExecutor(max_workers=cfg.jobs, mp_context=ctx) as pool:
            futures = [pool.submit(_work_item, u, v, s, cfg, os.fspath(work), keep_audio) for u, v, s in todo]
            try:
                for fut in cf.as_completed(futures):
                    records.append(fut.result())
                    bar.advance()
            except BaseException:
                for fut in futures:
                    fut.cancel()
                raise
    meta = {"config": asdict(cfg), "text": os.fspath(text), "lines": [s.line for s in sentences],
            "utterances": len(records),
            "audio_seconds": sum(r["seconds_audio"] for r in records),
            "decode_seconds": sum(r["seconds_decode"] for r in records),
            "raw_entries_mean": float(np.mean([r["raw_entries"] for r in records])),
            "not_in_lattice": sum(r["not_in_lattice"] for r in records),
            "same_after_mapping": sum(r["same_after_mapping"] for r in records)}
    hyps, ref_words = _write_output(records, cfg, out, meta)
    return SynthSummary(out, len(records), hyps, ref_words, len(todo), meta["not_in_lattice"],
                        meta["same_after_mapping"], time.perf_counter() - t0, meta["lines"])
