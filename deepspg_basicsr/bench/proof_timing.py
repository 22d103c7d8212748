"""The proof's training iteration timed per variant in the same rounds (``deepspg-bench proof
--time-iterations R``), for the equal-training-time comparison with Retinexformer.

Each chosen variant is built as its proof job is (:func:`~.proof.job_options`: the ``--options``
sections, the crop and batch) and runs BasicSR's iteration (``feed_data`` + ``optimize_parameters``) on
the proof's batches; the rounds interleave the variants, so a load change hits all of them alike. The
block gives each variant's seconds per iteration, its per-round ratio to the peer and the iterations
that take the peer's ``--iters`` worth of time (what ``--iters`` of an equal-time run should be).
"""

from .common import build, iteration
from .core import rounds


def time_iterations(names, repeats, make_options, make_batches, warmup=2):
    """Seconds of one training iteration of each variant, in ``repeats`` interleaved rounds.

    Args:
        names (list[str]): Variants (proof names).
        repeats (int): Timed rounds (at least 1).
        make_options (callable): name -> the variant's option dict (ready for ``build_model``).
        make_batches (callable): option dict -> endless training batches for it.
        warmup (int): Untimed iterations of each variant first.

    Returns:
        Timings: name -> seconds per round.
    """
    calls = {}
    for name in names:
        opt = make_options(name)
        calls[name] = iteration(build(opt, seed=0), make_batches(opt))
    return rounds(calls, repeats, warmup=warmup)


def equal_time_iterations(t, name, ref, ref_iters):
    """Iterations of ``name`` taking as long as ``ref_iters`` of ``ref`` (the median per-round ratio)."""
    return int(round(ref_iters / t.ratio(name, ref)))


def report_timing(rep, t, ref, ref_iters, what):
    """The block's note and table: latency, ratio to ``ref`` per round, equal-time iterations."""
    rep.note(
        f'One training iteration of each variant ({what}), the variants interleaved in {len(t[ref])} rounds '
        f'after 2 untimed iterations each; equal time = {ref_iters} iterations of {ref}.'
    )
    rows = []
    for name in t:
        ratio = '' if name == ref else t.fmt_ratio(name, ref)
        rows.append([name, t.fmt(name), ratio, equal_time_iterations(t, name, ref, ref_iters)])
    rep.table(['variant', 's / iteration', f'vs {ref} (per round)', 'iterations at equal time'], rows)
    rep.data.update(
        times=dict(t),
        reference=ref,
        reference_iters=ref_iters,
        equal_time_iters={k: equal_time_iterations(t, k, ref, ref_iters) for k in t},
    )
