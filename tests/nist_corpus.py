"""Random Hub5-style test material and NIST's own tools as the oracle (used by test_nist_oracle.py).

:func:`make_corpus` draws conversations (``sw_*`` and ``en_*`` files, channels A and B) whose stm
segments and hypotheses hit every rule kind hubscr.pl applies: GLM mappings with and without
contexts (backchannels, hesitations, special contractions, spellings, compounds, rules that fire
inside words, rules only for the hypothesis such as contractions -> alternations), optionally
deletable words, alternations (nested, with ``@``), fragments, hyphenated words, noise tokens,
``<unk>``, mixed case, empty hypotheses and references, IGNORE_TIME_SEGMENT_IN_SCORING segments.
:func:`write_inputs` writes the stm, the Kaldi ``text`` of the hypotheses and the equivalent ctm (each
hypothesis word gets invented times inside its segment, so sclite's time-based split gives every
segment its own words).  :func:`sclite_counts` runs Kaldi's ctm greps, ``csrfilt.sh`` and ``sclite``
like hubscr.pl does; :func:`hubscr_counts` runs ``hubscr.pl`` itself.
"""

from __future__ import annotations

import os
import random
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Tuple

SCTK_BIN = "/usr/lib/sctk/bin"
KALDI_CTM_GREPS = ("grep -i -v -E '\\[NOISE|LAUGHTER|VOCALIZED-NOISE\\]' | grep -i -v -E '<UNK>' | "
                   "grep -i -v -E ' (UH|UM|EH|MM|HM|AH|HUH|HA|ER|OOF|HEE|ACH|EEE|EW)$' | grep -v -- '-$'")

PLAIN = ("the a and i you it that to of we yeah so well know like they was is have not do right "
         "think just there what going store hello about really good time people mean okay then "
         "more home school kids work year one two three first new someone").split()
BOTH_SIDES = ("mm-hmm uh-huh uh-uh huh-uh mhm um-hmm uh um eh mm hm ah huh er %ah %um %uh "
              "ain't 'cause c'mon 'em gonna gotta kinda wanna ma'am okay ok mr mr. mrs. cancelled "
              "catalogue donut adviser advisers alright allright percent percentage fundraiser "
              "multicultural aircraft anymore everyday backyard cellphone website websites "
              "whatever sometime cannot online nowhere").split()
PHRASES = ("william falkner|binyamin netanyahu|t. shirt|down syndrome|good by|ft se|cannot do|"
           "goodmorning america|the ftse").split("|")
HYP_ONLY = ("can't he's i'm don't it's that's there's you're we're won't y'all a.'s webster's "
            "father's london's i'd they're isn't didn't let's what's").split()
HYPHENATED = "well-known twenty-one x-ray so-called mother-in-law".split()
FRAGMENTS = "hel- th- wh- -ing ab-".split()
NOISE = "[noise] [laughter] [vocalized-noise] <unk> [laughter-yeah]".split()


def _cased(rng: random.Random, w: str) -> str:
    r = rng.random()
    return w.upper() if r < 0.15 else w.capitalize() if r < 0.25 else w


def _word(rng: random.Random) -> str:
    r = rng.random()
    if r < 0.45:
        return rng.choice(PLAIN)
    if r < 0.75:
        return rng.choice(BOTH_SIDES)
    if r < 0.82:
        return rng.choice(PHRASES)
    if r < 0.87:
        return rng.choice(HYPHENATED)
    if r < 0.92:
        return rng.choice(HYP_ONLY)
    return rng.choice(FRAGMENTS)


def _ref_tokens(rng: random.Random, depth: int = 0) -> List[str]:
    """A reference transcript: words, (optional) words, {alternations}."""
    out: List[str] = []
    for _ in range(rng.randint(0, 9) if depth == 0 else rng.randint(1, 3)):
        r = rng.random()
        if r < 0.12:
            out.append("(" + rng.choice(["uh", "um", "%hesitation", "hel-", "th-", "i'm", "ah", "mm-hmm",
                                         "[noise]", "you know"]) + ")")
        elif r < 0.2 and depth < 2:
            alts = [" ".join(_ref_tokens(rng, depth + 1)) for _ in range(rng.randint(2, 3))]
            if rng.random() < 0.3:
                alts[-1] = "@"
            out.append("{ " + " / ".join(alts) + " }")
        else:
            out.extend(_cased(rng, w) for w in _word(rng).split())
    return out


def _plain_ref(rng: random.Random, tokens: List[str]) -> List[str]:
    """A plausible spoken version of a reference: optional words kept, one alternative of each."""
    text = " ".join(tokens)
    while "{" in text:
        m = re.search(r"\{([^{}]*)\}", text)
        alt = rng.choice(m.group(1).split("/")).replace("@", "")
        text = text[:m.start()] + alt + text[m.end():]
    return [w.strip("()") for w in text.split() if w.strip("()")]


def _hyp_tokens(rng: random.Random, ref: List[str]) -> List[str]:
    if rng.random() < 0.06:
        return []
    out: List[str] = []
    for w in _plain_ref(rng, ref):
        r = rng.random()
        if r < 0.6:
            out.append(_cased(rng, w))
        elif r < 0.7:
            out.append(_cased(rng, _word(rng).split()[0]))
        elif r < 0.78:
            continue
        elif r < 0.88:
            out.extend([_cased(rng, w), _cased(rng, rng.choice(NOISE + ["uh", "um", "UH", "hm", "th-"]))])
        else:
            out.append(_cased(rng, rng.choice(HYP_ONLY + BOTH_SIDES)))
    if rng.random() < 0.2:
        out.insert(rng.randint(0, len(out)), _cased(rng, rng.choice(NOISE + PLAIN)))
    return out


@dataclass
class Segment:
    file: str
    channel: str
    begin: float
    end: float
    ref: List[str]
    hyp: List[str]

    @property
    def utt(self) -> str:  # Kaldi's eval2000 utterance id
        return f"{self.file}-{self.channel}_{int(self.begin * 100):06d}-{int(self.end * 100):06d}"


@dataclass
class Corpus:
    segments: List[Segment] = field(default_factory=list)
    missing: set = field(default_factory=set)  # utterances left out of the hypothesis text


def make_corpus(seed: int, n_segments: int) -> Corpus:
    """About ``n_segments`` segments in conversations of 2 channels x 4-12 segments."""
    rng = random.Random(seed)
    corpus = Corpus()
    k = 0
    while len(corpus.segments) < n_segments:
        name = f"{'sw' if k % 2 == 0 else 'en'}_{4000 + k}"
        k += 1
        for chan in "AB":
            t = round(rng.uniform(0, 5), 2)
            for _ in range(rng.randint(4, 12)):
                dur = round(rng.uniform(1.0, 6.0), 2)
                ref = _ref_tokens(rng)
                if rng.random() < 0.03:
                    ref = ["IGNORE_TIME_SEGMENT_IN_SCORING"]
                seg = Segment(name, chan, t, round(t + dur, 2), ref, _hyp_tokens(rng, ref))
                corpus.segments.append(seg)
                if not seg.hyp and rng.random() < 0.5:
                    corpus.missing.add(seg.utt)
                t = round(t + dur + rng.uniform(0.05, 1.0), 2)
    return corpus


def write_inputs(corpus: Corpus, out: Path) -> Dict[str, Path]:
    """stm (with LABEL lines), hypothesis Kaldi text and ctm of the corpus."""
    paths = {name: out / name for name in ("ref.stm", "hyp.text", "hyp.ctm")}
    with open(paths["ref.stm"], "w") as stm, open(paths["hyp.text"], "w") as text, \
            open(paths["hyp.ctm"], "w") as ctm:
        stm.write(';; LABEL "O" "Overall" "All segments"\n;; LABEL "sw" "Switchboard" "swbd"\n'
                  ';; LABEL "en" "CallHome" "callhm"\n')
        for s in corpus.segments:
            stm.write(f"{s.file} {s.channel} {s.file}_{s.channel} {s.begin:.2f} {s.end:.2f} <O,{s.file[:2]}> "
                      f"{' '.join(s.ref)}\n")
            if s.utt not in corpus.missing:
                text.write(" ".join([s.utt] + s.hyp) + "\n")
            step = (s.end - s.begin) / max(len(s.hyp), 1)
            for i, w in enumerate(s.hyp):
                ctm.write(f"{s.file} {s.channel} {s.begin + (i + 0.1) * step:.3f} {0.8 * step:.3f} {w}\n")
    return paths


def _env() -> dict:
    env = dict(os.environ)
    env["PATH"] = f"{SCTK_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["LC_ALL"] = "C"
    return env


def _run(cmd: str, cwd: Path) -> None:
    r = subprocess.run(cmd, shell=True, cwd=cwd, env=_env(), capture_output=True, text=True)
    assert r.returncode == 0, f"{cmd}\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}"


Counts = Tuple[int, int, int, int]  # corr, sub, del, ins


def parse_sgml(text: str) -> Dict[Tuple[str, str, str], Counts]:
    """(file, channel, begin as '%.2f') -> (C, S, D, I) from sclite's sgml report."""
    out = {}
    for m in re.finditer(r"<PATH ([^\n]*)>\n(.*?)</PATH>", text, re.S):
        attrs = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
        codes = [e.split(",", 1)[0] for e in m.group(2).strip().split(":") if e]
        key = (attrs["file"], attrs["channel"], f"{float(attrs['R_T1']):.2f}")
        out[key] = tuple(codes.count(c) for c in "CSDI")
    return out


def sclite_counts(work: Path, stm: Path, ctm: Path, glm: Path) -> Dict[Tuple[str, str, str], Counts]:
    """Per segment: Kaldi's ctm greps, csrfilt.sh on both sides, sclite -F -D (hubscr.pl's commands)."""
    _run(f"cat {ctm} | {KALDI_CTM_GREPS} > hyp.grep.ctm || true", work)
    _run(f"csrfilt.sh -i stm -t ref -dh {glm} < {stm} > ref.filt.stm", work)
    _run(f"csrfilt.sh -i ctm -t hyp -dh {glm} < hyp.grep.ctm > hyp.filt.ctm", work)
    _run("sclite -r ref.filt.stm stm -h hyp.filt.ctm ctm -F -D -o sgml -n out", work)
    return parse_sgml((work / "out.sgml").read_text())


def hubscr_counts(work: Path, stm: Path, ctm: Path, glm: Path, keep: str):
    """hubscr.pl on the lines of one subset (Kaldi's ``grep -v '^<other>_'``): its .raw report's Sum row
    ((C, S, D, I), sentences, sentence errors) and its .sgml report's counts per segment."""
    drop = {"swbd": "en_", "callhm": "sw_", "total": "zz_"}[keep]
    _run(f"grep -v '^{drop}' {stm} > {keep}.stm; cat {ctm} | {KALDI_CTM_GREPS} | grep -v '^{drop}' "
         f"> {keep}.ctm || true", work)
    _run(f"hubscr.pl -p {SCTK_BIN} -V -l english -h hub5 -g {glm} -r {keep}.stm {keep}.ctm", work)
    raw = (work / f"{keep}.ctm.filt.raw").read_text()
    row = re.search(r"\| Sum\s*\|\s*(\d+)\s+(\d+)\s*\|\s*(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s*\|", raw)
    snt, _, c, s, d, i, _, serr = (int(x) for x in row.groups())
    return (c, s, d, i), snt, serr, parse_sgml((work / f"{keep}.ctm.filt.sgml").read_text())


def rfilter1_rules(glm: Path) -> List[Tuple[str, str, str, str]]:
    """The rules rfilter1 reads from ``glm`` (its debug dump at level 4): (A, B, C, D) in file order."""
    r = subprocess.run([f"{SCTK_BIN}/rfilter1", str(glm), "4"], input=b" X \n", capture_output=True)
    out = r.stdout.decode("latin-1")
    assert r.returncode == 0, out[-2000:]
    rules: List[Dict[str, str]] = []
    for line in out.split("\n"):
        if " data line '" in line:
            rules.append({"lhs": "", "rhs": "", "lcontext": "", "rcontext": ""})
        m = re.match(r"\*DB:\s+(lhs|rhs|lcontext|rcontext)='(.*)',len=(-?\d+)$", line)
        if m:
            rules[-1][m.group(1)] = m.group(2)
    return [(r["lhs"], r["rhs"], r["lcontext"], r["rcontext"]) for r in rules]


def rfilter1_apply(glm: Path, lines: List[str]) -> Tuple[int, List[str]]:
    """rfilter1's exit status and output lines for the (byte-string) ``lines``."""
    data = "".join(line + "\n" for line in lines).encode("latin-1")
    r = subprocess.run([f"{SCTK_BIN}/rfilter1", str(glm)], input=data, capture_output=True)
    return r.returncode, r.stdout.decode("latin-1").split("\n")[:len(lines)]


def csrfilt(glm: Path, fmt: str, purpose: str, text: str, work: Path) -> str:
    """``csrfilt.sh -i fmt -t purpose -dh glm`` on ``text`` (a file's content)."""
    (work / "csrfilt.in").write_text(text, encoding="latin-1")
    r = subprocess.run(f"csrfilt.sh -i {fmt} -t {purpose} -dh {glm} < csrfilt.in", shell=True, cwd=work,
                       env=_env(), capture_output=True)
    assert r.returncode == 0, r.stdout.decode("latin-1")[-2000:]
    return r.stdout.decode("latin-1")
