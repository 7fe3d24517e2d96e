#!/usr/bin/env python3
"""STAND-INS for a few Kaldi binaries, for testing recipes/swbd/run.sh without Kaldi.

NOT Kaldi.  Kaldi is not installable here, so tests/test_swbd_recipe.py puts
these on PATH under the Kaldi names.  They take Kaldi's command-line syntax
(rspecifiers ``ark:-``, ``ark:gunzip -c F|``, ``ark,t:F``; wspecifiers
``ark:-``, ``ark,t:F``, ``ark:|gzip -c >F``, ``ark:/dev/null``) and write the
*linear* archives exactly as Kaldi's ``nbest-to-linear`` does (text ``ark,t``:
``key id id ...`` int vectors for ali/words, ``key cost`` for the costs).  The
lattices themselves are NOT Kaldi lattices: a stand-in lattice archive is text,
one utterance per line, ``<utt> <JSON list of paths>``, each path
``{"ac": acoustic cost, "graph": graph cost, "nolm": graph cost without the
first-pass LM, "ali": [...], "words": [word ids]}``; an n-best "lattice" is
keyed ``<utt>-<n>`` with a one-path list.

    lattice-to-nbest --acoustic-scale=S --n=N RSPEC WSPEC
    lattice-lmrescore --lm-scale=-1.0 RSPEC G WSPEC     (only -1: graph := nolm, the old LM removed)
    nbest-to-linear RSPEC ALI_W WORDS_W LM_W [AC_W]
    linear-to-nbest ALI_R WORDS_R LM_R AC_R WSPEC
    nbest-to-lattice RSPEC WSPEC
    lattice-best-path --lm-scale=L --word-symbol-table=words.txt RSPEC TRANS_W   (text of the best path)
"""

import json
import subprocess
import sys


def _spec(spec):
    kind, _, target = spec.partition(":")
    if not target or kind.split(",")[0] not in ("ark", "scp"):
        sys.exit(f"stand-in: bad specifier {spec!r}")
    return target


def read_lines(spec):
    target = _spec(spec)
    if target == "-":
        return sys.stdin.read().splitlines()
    if target.endswith("|"):
        return subprocess.run(target[:-1], shell=True, check=True, capture_output=True, text=True).stdout.splitlines()
    with open(target, encoding="utf-8") as fh:
        return fh.read().splitlines()


def write_lines(spec, lines):
    target = _spec(spec)
    text = "".join(line + "\n" for line in lines)
    if target == "-":
        sys.stdout.write(text)
    elif target.startswith("|"):
        subprocess.run(target[1:], shell=True, check=True, input=text, text=True)
    elif target != "/dev/null":
        with open(target, "w", encoding="utf-8") as fh:
            fh.write(text)


def read_lattices(spec):
    out = []
    for line in read_lines(spec):
        if line.strip():
            key, _, js = line.partition(" ")
            out.append((key, json.loads(js)))
    return out


def write_lattices(spec, items):
    write_lines(spec, [f"{k} {json.dumps(paths, separators=(',', ':'))}" for k, paths in items])


def opts(args):
    o, rest = {}, []
    for a in args:
        if a.startswith("--"):
            k, _, v = a[2:].partition("=")
            o[k] = v
        else:
            rest.append(a)
    return o, rest


def main(tool, args):
    o, a = opts(args)
    if tool == "lattice-to-nbest":
        s, n = float(o.get("acoustic-scale", 1.0)), int(o.get("n", 1))
        out = []
        for utt, paths in read_lattices(a[0]):
            ranked = sorted(paths, key=lambda p: s * p["ac"] + p["graph"])[:n]
            out += [(f"{utt}-{i}", [p]) for i, p in enumerate(ranked, 1)]
        write_lattices(a[1], out)
    elif tool == "lattice-lmrescore":
        if float(o.get("lm-scale", 0)) != -1.0:
            sys.exit("stand-in lattice-lmrescore only removes the old LM (--lm-scale=-1.0)")
        write_lattices(a[2], [(k, [dict(p, graph=p["nolm"]) for p in ps]) for k, ps in read_lattices(a[0])])
    elif tool == "nbest-to-linear":
        items = read_lattices(a[0])
        write_lines(a[1], [" ".join([k] + [str(x) for x in ps[0]["ali"]]) for k, ps in items])
        write_lines(a[2], [" ".join([k] + [str(x) for x in ps[0]["words"]]) for k, ps in items])
        write_lines(a[3], [f"{k} {ps[0]['graph']!r}" for k, ps in items])
        if len(a) > 4:
            write_lines(a[4], [f"{k} {ps[0]['ac']!r}" for k, ps in items])
    elif tool == "linear-to-nbest":
        tables = []
        for spec in a[:4]:
            tables.append({ln.split()[0]: ln.split()[1:] for ln in read_lines(spec) if ln.strip()})
        ali, words, lm, ac = tables
        out = [(k, [{"ac": float(ac[k][0]), "graph": float(lm[k][0]), "nolm": float(lm[k][0]),
                     "ali": [int(x) for x in ali[k]], "words": [int(x) for x in words[k]]}]) for k in words]
        write_lattices(a[4], out)
    elif tool == "nbest-to-lattice":
        grouped = {}
        for key, paths in read_lattices(a[0]):
            grouped.setdefault(key.rsplit("-", 1)[0], []).extend(paths)
        write_lattices(a[1], list(grouped.items()))
    elif tool == "lattice-best-path":
        lmwt = float(o.get("lm-scale", 1.0))
        syms = {}
        with open(o["word-symbol-table"], encoding="utf-8") as fh:
            for line in fh:
                w, i = line.split()
                syms[int(i)] = w
        out = []
        for utt, paths in read_lattices(a[0]):
            best = min(paths, key=lambda p: p["ac"] + lmwt * p["graph"])
            out.append(" ".join([utt] + [syms[i] for i in best["words"]]))
        write_lines(a[1], out)
    else:
        sys.exit(f"stand-in: unknown tool {tool}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
