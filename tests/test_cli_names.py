"""One concept, one name, one default — across every ``admmq`` command.

:data:`CONCEPTS` says what each shared or look-alike parameter means: a concept and where it appears
(command -> click parameter name).  A parameter of no concept is its own concept, named by its option.
The checks, over every command's click parameters:

* ``names:C``     concept C is spelled two ways (``--lm`` here, ``--init-from`` there; a positional
                  argument first here and last there);
* ``defaults:C``  concept C has two defaults (8192 here, 4096 there) — a default written in the help
                  as ``[default: ...]`` counts as the default;
* ``missing:C:X`` command X lacks concept C, which every command of its kind has (``--device``);
* ``meanings:N``  one spelling N stands for two concepts (``--precision``: bit widths in ``train``,
                  arithmetic in ``rescore``);
* an option spelled the same in two commands must be declared in :data:`CONCEPTS` (so a new shared
  name is a decision, not an accident).

:data:`KNOWN` lists the violations the command line has today.  Each is an expected failure
(``xfail(strict=True)``): renaming an option so that a violation disappears makes its case pass
unexpectedly, which fails until the entry is removed — the list can only shrink.  Any violation not in
it fails :func:`test_no_violation_beyond_the_known_ones`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Dict, List, Set, Tuple

import click
import pytest

from rescorer.cli import cli
from rescorer.cli.reference import default_of, walk

Where = Dict[str, str]  # command path ("nbest merge") -> click parameter name


@dataclass(frozen=True)
class Concept:
    meaning: str
    where: Where
    same_default: bool = True  # False: the defaults may differ, for the reason in ``meaning``
    everywhere: Tuple[str, ...] = ()  # commands that must have it


def _all(commands: str, name: str) -> Where:
    return {c: name for c in commands.split(",")}


LM_COMMANDS = "eval,interpolate,rescore"
PLOTS = "plot curves,plot front,plot sweep"
NBEST_TOOLS = "nbest convert,nbest merge,nbest split"
SCORING = "rescore,wer"

CONCEPTS: Dict[str, Concept] = {
    "lm": Concept("an LSTM LM to read (checkpoint, run directory or packed file)",
                  {**_all(LM_COMMANDS, "lm_paths"), "sensitivity": "lm_path", "export": "checkpoint",
                   "info": "lm_file", "train": "init_from"}),
    "ngram": Concept("an n-gram LM to read", _all(LM_COMMANDS, "ngram_paths")),
    "interpolation weights": Concept("the interpolation weights of the LMs: used as given by eval and rescore, "
                                     "EM's start in interpolate; when absent each command finds its own",
                                     {"eval": "weights", "rescore": "weights", "interpolate": "init"},
                                     same_default=False),
    "output": Concept("where the command writes (-o)",
                      {**_all("train,import,export,interpolate,sensitivity,nbest synth,report", "out"),
                       "interpolate": "out_path", "sensitivity": "out_path", "rescore": "out_dir",
                       **_all(PLOTS, "output")}),
    "nbest input": Concept("the n-best list(s) an n-best tool reads",
                           {"nbest convert": "src", "nbest split": "src", "nbest merge": "srcs"}),
    "nbest output": Concept("the n-best list an n-best tool writes",
                            {"nbest convert": "dest", "nbest split": "out_dir", "nbest merge": "dest"}),
    "validation text": Concept("held-out text to tune on (EM weights, learning rate, sensitivity)",
                               {**_all("train,eval,interpolate,rescore", "valid_path"), "sensitivity": "text_path"}),
    "input text": Concept("the text the command works on", {"eval": "text_path", "nbest synth": "text"}),
    "text format": Concept("plain or Kaldi text", _all("train,eval,interpolate,sensitivity,rescore", "text_format")),
    "device": Concept("where to compute", _all("train,eval,interpolate,rescore", "device"),
                      everywhere=("train", "eval", "interpolate", "rescore", "sensitivity")),
    "batch tokens": Concept("padded tokens per scoring batch (memory only)",
                            {**_all("eval,interpolate,sensitivity,rescore", "batch_tokens"),
                             "train": "eval_batch_tokens"}),
    "quiet": Concept("no progress display", _all("train,import,export,eval,interpolate,sensitivity,rescore,"
                                                 "nbest synth,report", "quiet")),
    "json": Concept("print one JSON object", _all("import,export,info,eval,interpolate,sensitivity,rescore,wer",
                                                  "as_json")),
    "sensitivity metric": Concept("how the sensitivity of a matrix is measured",
                                  {"sensitivity": "metric", "train": "sensitivity"}),
    "training method": Concept("the training method", {"train": "method"}),
    "candidate widths": Concept("the widths (tables) a mixed-precision allocation chooses from",
                                {"sensitivity": "bits_spec", "train": "precision_bits"}),
    "sensitivity sentences": Concept("measure the sensitivity on the first N sentences",
                                     {"sensitivity": "max_sentences", "train": "sensitivity_sentences"}),
    "training sentences": Concept("train on the first N sentences", {"train": "max_sentences"}),
    "trace probes": Concept("least trace samples of the Hessian sensitivity", _all("train,sensitivity", "probes")),
    "tying": Concept("one α per matrix or per row", _all("train,sensitivity", "tying")),
    "size budget bits": Concept("stored bits per weight a mixed-precision allocation aims at",
                                _all("train,sensitivity", "budget_bits")),
    "multibit bits": Concept("bits per weight of the multibit method", {"train": "bits"}),
    "packing width": Concept("bits per packed weight code", _all("export,info", "bits")),
    "precision plan": Concept("one table per matrix: auto or a precision file", {"train": "precision"}),
    "arithmetic": Concept("the LSTM's arithmetic: fp32, tf32, bf16", {"rescore": "precision"}),
    "epochs": Concept("how many epochs to train", {"train": "epochs"}),
    "admm epochs": Concept("how many epochs to train (ADMM iterations at one per epoch)", {"train": "admm_iters"}),
    "parallel processes": Concept("how many processes (or parts) work in parallel; running defaults to one, "
                                  "splitting must be told how many parts",
                                  {"train": "nproc", "nbest synth": "jobs", "nbest split": "parts"},
                                  same_default=False),
    "seed": Concept("random seed; each seeds its own computation, and nbest synth's default reproduces the "
                    "shipped lists", {"train": "seed", "sensitivity": "seed", "nbest synth": "seed"},
                    same_default=False),
    "dropout": Concept("dropout rate of the model", _all("train,import", "dropout")),
    "unknown word": Concept("the unknown-word symbol", _all("train,import", "unk_symbol")),
    "symbol table": Concept("a Kaldi words.txt (word id lines)", {"train": "vocab_path", **_all(NBEST_TOOLS + ",rescore",
                                                                                                "words_txt")}),
    "model rows": Concept("the imported model's vocabulary in row order", {"import": "vocab_path"}),
    "form": Concept("the n-best form written", _all(NBEST_TOOLS, "to")),
    "archive": Concept("archive kind of an n-best directory", _all(NBEST_TOOLS, "archive")),
    "title": Concept("the heading of what is written; a figure's default says what is drawn, a report's is "
                     "'Results'", {**_all(PLOTS, "title"), "report": "title"}, same_default=False),
    "run dirs": Concept("training run directories", _all("plot curves,plot front", "run_dirs")),
    "labels": Concept("legend labels", _all("plot curves,plot front", "labels")),
    **{f"figure {n}": Concept(f"figure {n}", _all(PLOTS, n)) for n in ("width", "height", "dpi", "svg")},
    **{f"n-gram {n}": Concept(f"n-gram {n}", _all(LM_COMMANDS, f"ngram_{n}")) for n in ("backend", "case")},
    **{f"oov {n}": Concept(f"OOV policy: {n}", _all(LM_COMMANDS, f"oov_{n}")) for n in ("mode", "types", "logprob")},
    **{f"wer {n}": Concept(f"WER scoring: {n}", _all(SCORING, n)) for n in ("subsets", "utt2subset", "stm", "glm",
                                                                            "hyp_filter", "acronym_map")},
    **{f"carry-over {n}": Concept(f"cross-utterance LSTM state: {n}", _all("eval,rescore", n))
       for n in ("carry_over", "segments", "utt2spk", "recording_pattern")},
}

# today's violations; each entry is an expected failure, to be emptied by renames
KNOWN = {
    "names:lm": "--lm (eval, interpolate, rescore, sensitivity), positional (export, info), --init-from (train)",
    "names:interpolation weights": "--weights (eval, rescore), --init (interpolate)",
    "names:output": "-o/--out, but -o/--output in the plot commands",
    "names:nbest input": "nbest convert/split SRC first, nbest merge SRC... last",
    "names:nbest output": "nbest convert/split DEST last, nbest merge DEST first",
    "names:validation text": "--valid, but --text in sensitivity",
    "names:symbol table": "a Kaldi words.txt is --vocab in train, --words-txt in rescore and the nbest tools",
    "names:batch tokens": "--batch-tokens, but --eval-batch-tokens in train",
    "names:sensitivity metric": "sensitivity --method, train --sensitivity",
    "names:candidate widths": "sensitivity --bits, train --precision-bits",
    "names:sensitivity sentences": "sensitivity --max-sentences, train --sensitivity-sentences",
    "names:parallel processes": "train --nproc, nbest synth -j/--jobs, nbest split -n/--parts",
    "defaults:device": "train auto, eval/interpolate/rescore cpu",
    "missing:device:sensitivity": "sensitivity has no --device",
    "defaults:batch tokens": "8192, but 4096 in sensitivity",
    "defaults:trace probes": "train 16, sensitivity 32",
    "defaults:size budget bits": "train none (required with --precision auto), sensitivity 2.0",
    "defaults:dropout": "train: 0, or the checkpoint's (at least 0.3 when quantizing); import: 0.0",
    "defaults:unknown word": "train <unk>, import <unk> or <UNK>",
    "meanings:--precision": "train: per-matrix tables; rescore: arithmetic",
    "meanings:--method": "train: training method; sensitivity: the metric",
    "meanings:--bits": "train: multibit bits; export/info: packing width; sensitivity: candidate widths",
    "meanings:--vocab": "train: a Kaldi words.txt; import: the model's rows in order",
    "meanings:--text": "eval/nbest synth: the input text; sensitivity: the validation text",
    "meanings:--max-sentences": "train: the training sentences; sensitivity: the measured sentences",
    "concept with two options:epochs": "train has both --epochs and --admm-iters for the number of epochs",
}
# one concept held by two options of one command
SAME_COMMAND = {("train", "epochs", "admm epochs")}


# ---------------------------------------------------------------- the checker

def spelling(param: click.Parameter, cmd: click.Command) -> str:
    """How a user writes the parameter: its option strings, or which positional argument it is."""
    if isinstance(param, click.Option):
        return " ".join(sorted(param.opts + param.secondary_opts))
    args = [p for p in cmd.params if isinstance(p, click.Argument)]
    where = "only" if len(args) == 1 else "first" if param is args[0] else "last" if param is args[-1] else "middle"
    return f"<{where} positional>"


def effective_default(param: click.Parameter) -> str:
    """The default a user gets: shown, or a single value written as ``[default: VALUE]`` in the help
    ('' when unset or described in words); numbers compared as numbers."""
    if isinstance(param, click.Argument):
        return ""
    d = default_of(param)
    m = re.search(r"\[default: ([^\]\s;,]+)\]", param.help or "")
    if not d and m:
        d = m.group(1)
    try:
        return repr(float(d))
    except ValueError:
        return d


def parameters(group: click.Group) -> Dict[Tuple[str, str], Tuple[click.Parameter, click.Command]]:
    """(command path, parameter name) -> (parameter, command), hidden options (old spellings) left out."""
    out = {}
    for path, cmd in walk(group):
        for p in cmd.params:
            if not getattr(p, "hidden", False):
                out[(" ".join(path), p.name)] = (p, cmd)
    return out


def violations(group: click.Group, concepts: Dict[str, Concept], same_command=()) -> Dict[str, str]:
    """Violation id -> what it is (module docstring), for the commands of ``group``."""
    params = parameters(group)
    commands = {c for c, _ in params}
    concept_of: Dict[Tuple[str, str], str] = {}
    found: Dict[str, str] = {}
    for name, c in concepts.items():
        for where in c.where.items():
            assert where in params, f"concept {name!r}: no parameter {where[1]!r} in 'admmq {where[0]}'"
            concept_of[where] = name
    for key, (p, cmd) in params.items():
        concept_of.setdefault(key, spelling(p, cmd))
    by_concept: Dict[str, List[Tuple[str, str]]] = {}
    for key, name in concept_of.items():
        by_concept.setdefault(name, []).append(key)
    for name, keys in sorted(by_concept.items()):
        spell = {spelling(*params[k]) for k in keys}
        if len(spell) > 1:
            found[f"names:{name}"] = "; ".join(sorted(f"{s} ({', '.join(sorted(c for c, _ in keys if spelling(*params[(c, _)]) == s))})"
                                                      for s in spell))
        c = concepts.get(name)
        if c is None or c.same_default:
            defaults = {effective_default(params[k][0]) for k in keys}
            if len(defaults) > 1:
                found[f"defaults:{name}"] = " vs ".join(sorted(repr(d) for d in defaults))
        for command in (c.everywhere if c else ()):
            if command in commands and not any(k[0] == command for k in keys):
                found[f"missing:{name}:{command}"] = f"'admmq {command}' has no {name}"
        per_command: Dict[str, int] = {}
        for command, _ in keys:
            per_command[command] = per_command.get(command, 0) + 1
        for command, n in per_command.items():
            if n > 1:
                found[f"concept with two options:{name}"] = f"'admmq {command}' has {n} options for {name}"
    for command, a, b in same_command:  # declared as separate concepts, but one concept in truth
        if a in by_concept and b in by_concept:
            found[f"concept with two options:{a}"] = f"'admmq {command}': {a} and {b} are one concept"
    by_spelling: Dict[str, Set[str]] = {}
    for key, name in concept_of.items():
        p, cmd = params[key]
        if isinstance(p, click.Option):
            for opt in p.opts + p.secondary_opts:
                if opt.startswith("--"):
                    by_spelling.setdefault(opt, set()).add(name)
    for opt, names in sorted(by_spelling.items()):
        if len(names) > 1:
            found[f"meanings:{opt}"] = ", ".join(sorted(names))
    return found


def undeclared_shared_names(group: click.Group, concepts: Dict[str, Concept]) -> List[str]:
    """Long options that appear in two or more commands without every occurrence in a concept."""
    declared = {(c, n) for con in concepts.values() for c, n in con.where.items()}
    seen: Dict[str, List[Tuple[str, str]]] = {}
    for key, (p, _cmd) in parameters(group).items():
        if isinstance(p, click.Option):
            for opt in p.opts:
                if opt.startswith("--"):
                    seen.setdefault(opt, []).append(key)
    return sorted(f"{opt} in {', '.join(sorted(c for c, _ in keys))}" for opt, keys in seen.items()
                  if len({c for c, _ in keys}) > 1 and not all(k in declared for k in keys))


# ---------------------------------------------------------------- the tests

FOUND = violations(cli, CONCEPTS, SAME_COMMAND)


def test_every_option_shared_by_commands_is_declared():
    missing = undeclared_shared_names(cli, CONCEPTS)
    assert not missing, ("options spelled alike in several commands; say in CONCEPTS what each one means: "
                         + "; ".join(missing))


def test_no_violation_beyond_the_known_ones():
    new = {k: v for k, v in FOUND.items() if k not in KNOWN}
    assert not new, "one concept, one name, one default:\n" + "\n".join(f"{k}: {v}" for k, v in sorted(new.items()))


@pytest.mark.parametrize("violation", [pytest.param(v, marks=pytest.mark.xfail(strict=True, reason=KNOWN[v]))
                                       for v in sorted(KNOWN)])
def test_known_violation_is_gone(violation):
    # fails while the violation is there (expected); passes — and so fails, strict — once it is fixed:
    # then remove the entry from KNOWN
    assert violation not in FOUND, f"{violation}: {FOUND.get(violation)}"


def _toy():
    """A toy command line with one violation of each kind."""
    g = click.Group("admmq")
    g.add_command(click.Command("a", params=[click.Option(["--lm"]), click.Option(["--batch-tokens"], default=8192),
                                            click.Option(["--bits"], help="packing width"),
                                            click.Option(["--device"], default="cpu")]))
    g.add_command(click.Command("b", params=[click.Option(["--model"]), click.Option(["--batch-tokens"], default=4096),
                                            click.Option(["--bits"], help="candidate widths")]))
    g.add_command(click.Command("c", params=[click.Option(["--lm"]), click.Option(["--old"], hidden=True)]))
    concepts = {"lm": Concept("an LM", {"a": "lm", "b": "model", "c": "lm"}),
                "batch tokens": Concept("tokens", {"a": "batch_tokens", "b": "batch_tokens"}),
                "width": Concept("packing", {"a": "bits"}), "widths": Concept("candidates", {"b": "bits"}),
                "device": Concept("where", {"a": "device"}, everywhere=("a", "b"))}
    return g, concepts


def test_the_checker_catches_each_kind_of_violation():
    g, concepts = _toy()
    found = violations(g, concepts)
    assert set(found) == {"names:lm", "defaults:batch tokens", "meanings:--bits", "missing:device:b"}, found
    assert found["names:lm"] == "--lm (a, c); --model (b)"
    assert found["defaults:batch tokens"] == "'4096.0' vs '8192.0'"
    concepts["lm"] = Concept("an LM", {"a": "lm", "c": "lm"})  # b's --model undeclared: its own concept
    assert "names:lm" not in violations(g, concepts)
    del concepts["widths"]  # b's --bits undeclared while a's is declared
    assert undeclared_shared_names(g, concepts) == ["--bits in a, b"]


def test_a_new_violation_in_the_real_commands_fails():
    """Copies of the real command line, each with one deliberate new violation."""
    ctx = click.Context(cli, info_name="admmq")
    real = {n: cli.get_command(ctx, n) for n in cli.list_commands(ctx)}

    def changed(command, swap=None, add=()):
        cmd = real[command]
        params = [swap(p) if swap else p for p in cmd.params] + list(add)
        return click.Group("admmq", commands={**real, command: click.Command(command, params=params,
                                                                               callback=cmd.callback)})

    def new(group):
        return set(violations(group, CONCEPTS, SAME_COMMAND)) - set(KNOWN)

    assert new(changed("rescore")) == set()
    # a second default for one concept
    lower = changed("rescore", lambda p: click.Option(["--ngram-case"], default="lower") if p.name == "ngram_case" else p)
    assert new(lower) == {"defaults:n-gram case"}
    # one concept under a second name
    renamed = changed("eval", lambda p: click.Option(["--arpa", "ngram_paths"], multiple=True)
                      if p.name == "ngram_paths" else p)
    assert new(renamed) == {"names:ngram"}
    # one name for a second concept (declared), and an undeclared shared name (an accident)
    clip = changed("eval", add=[click.Option(["--clip"], default=5.0)])
    assert set(undeclared_shared_names(clip, CONCEPTS)) - set(undeclared_shared_names(cli, CONCEPTS)) == {
        "--clip in eval, train"}
    concepts = {**CONCEPTS, "score clipping": Concept("clip scores", {"eval": "clip"})}
    assert set(violations(clip, concepts, SAME_COMMAND)) - set(KNOWN) == {"meanings:--clip"}
