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

:data:`KNOWN` lists the violations the command line keeps, each with its reason (none today).  A
violation not in it fails :func:`test_no_violation_beyond_the_known_ones`; one in it that is gone fails
:func:`test_every_known_violation_is_still_there` — the list can only shrink.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Dict, List, Set, Tuple

import click

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
    "lm": Concept("the LSTM LM a command works on: scores, measures, packs or describes (checkpoint, run "
                  "directory or packed file)",
                  {**_all(LM_COMMANDS, "lm_paths"), **_all("sensitivity,export,info", "lm_path")}),
    # train reads LMs in two roles, each named by its role (an unqualified --lm would not say which)
    "starting weights": Concept("the checkpoint a training run starts from", {"train": "init_from"}),
    "teacher": Concept("the LM a training run distills from", {"train": "teacher"}),
    "ngram": Concept("an n-gram LM to read", _all(LM_COMMANDS, "ngram_paths")),
    "interpolation weights": Concept("the interpolation weights of the LMs: used as given by eval and rescore, "
                                     "EM's start in interpolate; when absent each command finds its own",
                                     _all("eval,rescore,interpolate", "weights"),
                                     same_default=False),
    "output": Concept("where the command writes (-o)",
                      {**_all("train,import,export,interpolate,sensitivity,nbest synth,report," + NBEST_TOOLS + ","
                              + PLOTS, "out"),
                       "interpolate": "out_path", "sensitivity": "out_path", "rescore": "out_dir"}),
    "nbest input": Concept("the n-best list(s) an n-best tool reads",
                           {"nbest convert": "src", "nbest split": "src", "nbest merge": "srcs"}),
    "validation text": Concept("held-out text to tune on (EM weights, learning rate, sensitivity)",
                               _all("train,eval,interpolate,rescore,sensitivity", "valid_path")),
    "input text": Concept("the text the command works on", {"eval": "text_path", "nbest synth": "text"}),
    "text format": Concept("plain or Kaldi text", _all("train,eval,interpolate,sensitivity,rescore", "text_format")),
    "device": Concept("where to compute", _all("train,eval,interpolate,rescore,sensitivity", "device"),
                      everywhere=("train", "eval", "interpolate", "rescore", "sensitivity")),
    "batch tokens": Concept("padded tokens per scoring batch (memory only)",
                            _all("train,eval,interpolate,sensitivity,rescore", "batch_tokens")),
    "quiet": Concept("no progress display", _all("train,import,export,eval,interpolate,sensitivity,rescore,"
                                                 "nbest synth,report", "quiet")),
    "json": Concept("print one JSON object", _all("import,export,info,eval,interpolate,sensitivity,rescore,wer",
                                                  "as_json")),
    "sensitivity metric": Concept("how the sensitivity of a matrix is measured",
                                  _all("train,sensitivity", "metric")),
    "training method": Concept("the training method", {"train": "method"}),
    "candidate widths": Concept("the widths (tables) a mixed-precision allocation chooses from",
                                _all("train,sensitivity", "widths")),
    "sensitivity sentences": Concept("measure the sensitivity on the first N sentences",
                                     _all("train,sensitivity", "sensitivity_sentences")),
    "training sentences": Concept("train on the first N sentences", {"train": "max_sentences"}),
    "trace probes": Concept("least trace samples of the Hessian sensitivity", _all("train,sensitivity", "probes")),
    "tying": Concept("one α per matrix or per row", _all("train,sensitivity", "tying")),
    "size budget bits": Concept("stored bits per weight a mixed-precision allocation aims at",
                                _all("train,sensitivity", "budget_bits")),
    "multibit bits": Concept("bits per weight of the multibit method", {"train": "multibit_bits"}),
    "packing width": Concept("bits per packed weight code", _all("export,info", "bits")),
    "allocation": Concept("one table per matrix: auto or an allocation file", {"train": "allocation"}),
    "arithmetic": Concept("the LSTM's arithmetic: fp32, tf32, bf16", {"rescore": "precision"}),
    "epochs": Concept("how many epochs to train", {"train": "epochs"}),
    "parallel processes": Concept("how many processes (or parts) work in parallel; running defaults to one, "
                                  "splitting must be told how many parts",
                                  _all("train,nbest synth,nbest split", "nj"), same_default=False),
    "seed": Concept("random seed; each seeds its own computation, and nbest synth's default reproduces the "
                    "shipped lists", {"train": "seed", "sensitivity": "seed", "nbest synth": "seed"},
                    same_default=False),
    "dropout": Concept("dropout rate of the model", {"train": "dropout"}),
    "unknown word": Concept("the unknown-word symbol", _all("train,import", "unk_symbol")),
    "symbol table": Concept("a Kaldi words.txt (word id lines)", _all("train,rescore," + NBEST_TOOLS, "words_txt")),
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

# violations the command line still has, each with the reason it stays; an expected failure each
# (every violation there was is gone: the renames are listed in the README's changelog)
KNOWN: Dict[str, str] = {}
# one concept held by two options of one command: (command, concept, concept); train's --epochs and
# --admm-iters were the last such pair
SAME_COMMAND: Set[Tuple[str, str, str]] = set()


# ---------------------------------------------------------------- the checker

def spelling(param: click.Parameter, cmd: click.Command) -> str:
    """How a user writes the parameter: its option strings, or which positional argument it is."""
    if isinstance(param, click.Option):
        return " ".join(sorted(param.opts + param.secondary_opts))
    args = [p for p in cmd.params if isinstance(p, click.Argument) and not getattr(p, "hidden", False)]
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


def test_every_known_violation_is_still_there():
    # a violation that is fixed must leave KNOWN: the list can only shrink
    gone = sorted(set(KNOWN) - set(FOUND))
    assert not gone, "fixed, remove from KNOWN: " + ", ".join(gone)


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
