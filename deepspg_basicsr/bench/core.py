"""The one benchmark core: interleaved timing rounds (:func:`rounds`, ratios per round), the machine
record, and :class:`Report` (Markdown blocks written between ``<!-- bench:NAME:begin/end -->`` markers
by :func:`update_docs`). The method is in docs/BENCHMARKS.md."""

import datetime
import json
import math
import os
import platform
import re
import shlex
import statistics
import sys
import time
import traceback

from ..utils.metric_report import cpu_model

#: Options that only say where a run reads or writes files: left out of the command a report records.
WHERE_OPTIONS = ('--out', '--json', '--work', '--plot', '--out-dir')


def _public_path(arg):
    """``arg`` reduced to its file name when it is a path outside the working directory."""
    if arg.startswith(('/', '~', '../', '..\\')) or re.match(r'^[A-Za-z]:[\\/]', arg):
        return os.path.basename(arg.rstrip('/\\')) or arg
    return arg


def public_command(argv, prefix='deepspg-bench'):
    """The shell-quoted command ``prefix argv`` without :data:`WHERE_OPTIONS` (and their values),
    every path outside the working directory reduced to its file name."""
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
            continue
        opt, eq, value = arg.partition('=')
        if opt in WHERE_OPTIONS:
            skip = not eq
            continue
        kept.append(f'{opt}={_public_path(value)}' if eq and opt.startswith('--') else _public_path(arg))
    return ' '.join([prefix, shlex.join(kept)]) if kept else prefix


def sync(device):
    """Wait for ``device`` when it is a CUDA device (nothing on the CPU or for None)."""
    if device is not None and getattr(device, 'type', device) == 'cuda':
        import torch

        torch.cuda.synchronize(device)


class Timings(dict):
    """Times of interleaved rounds: ``t[name][r]`` is candidate ``name``'s seconds in round ``r`` (a dict of
    lists, written to the JSON as it is, full precision: ratios can be recomputed from it)."""

    def __init__(self, times, outputs=None):
        super().__init__((k, list(v)) for k, v in times.items())
        self.outputs = outputs or {}

    @property
    def times(self):
        return self

    def median(self, name):
        """Median seconds of ``name``."""
        return statistics.median(self[name])

    def per_round_ratios(self, name, ref):
        """``times[name][r] / times[ref][r]`` for each round ``r`` (same rounds only)."""
        a, b = self.times[name], self.times[ref]
        if len(a) != len(b):
            raise ValueError(f'{name!r} and {ref!r} were not timed in the same rounds ({len(a)} vs {len(b)})')
        return [x / y for x, y in zip(a, b)]

    def ratio(self, name, ref):
        """Median over rounds of the per-round ratio of ``name`` to ``ref``."""
        return statistics.median(self.per_round_ratios(name, ref))

    def fmt(self, name):
        """``'1.234 s (1.10-1.50, n=5)'`` (``'(n=1)'`` for one round)."""
        ts = self.times[name]
        if len(ts) == 1:
            return f'{ts[0]:.3f} s (n=1)'
        return f'{statistics.median(ts):.3f} s ({min(ts):.2f}-{max(ts):.2f}, n={len(ts)})'

    def fmt_ratio(self, name, ref):
        """``'0.81x (0.78-0.85)'``: the median per-round ratio and its spread over the rounds."""
        rs = self.per_round_ratios(name, ref)
        med = statistics.median(rs)
        return f'{med:.2f}x' if len(rs) == 1 else f'{med:.2f}x ({min(rs):.2f}-{max(rs):.2f})'


def rounds(fns, repeats, warmup=1, device=None, before_each=None, keep_outputs=False):
    """Time ``fns`` (name -> callable) in ``repeats`` interleaved rounds after ``warmup`` untimed
    calls of each; ``before_each(name)`` runs untimed before each call (CUDA ``device``: synchronised);
    ``keep_outputs``: the last round's results in ``Timings.outputs``."""
    if repeats < 1:
        raise ValueError(f'repeats must be >= 1, got {repeats}')
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times, outputs = {name: [] for name in fns}, {}
    for r in range(repeats):
        for name, fn in fns.items():
            if before_each is not None:
                before_each(name)
            sync(device)
            start = time.perf_counter()
            out = fn()
            sync(device)
            times[name].append(time.perf_counter() - start)
            if keep_outputs and r == repeats - 1:
                outputs[name] = out
            del out
    return Timings(times, outputs)


def load_average():
    """The 1 / 5 / 15 minute load averages (a list of three floats; NaN where unknown)."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return [math.nan] * 3


def machine_record(threads=None):
    """What the numbers were measured on (``threads``: ONNX Runtime's, None: torch's)."""
    import torch

    try:
        import onnxruntime

        ort = onnxruntime.__version__
    except ImportError:
        ort = None
    return {
        'cpu': cpu_model() or platform.processor() or platform.machine(),
        'logical_cores': os.cpu_count(),
        'system': f'{platform.system()} {platform.machine()}',
        'python': platform.python_version(),
        'torch': torch.__version__,
        'onnxruntime': ort,
        'torch_threads': torch.get_num_threads(),
        'ort_threads': torch.get_num_threads() if threads is None else int(threads),
        'cuda': torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        'load_start': load_average(),
    }


def _fmt_load(v):
    return '/'.join(f'{x:.1f}' for x in v)


def busy(machine):
    """Whether a run recorded by :func:`machine_record` used more than one thread on a machine whose
    1-minute load average was already at least half its cores."""
    load = machine['load_start'][0]
    return machine['torch_threads'] > 1 and math.isfinite(load) and load >= 0.5 * (machine['logical_cores'] or 1)


def markers(name):
    """The begin / end marker lines of block ``name`` in a Markdown document."""
    return f'<!-- bench:{name}:begin -->', f'<!-- bench:{name}:end -->'


def replace_block(text, name, body, append=False):
    """(``text`` with block ``name``'s contents replaced by ``body``, whether it was found); ``append``:
    add the block at the end when its markers are absent."""
    begin, end = markers(name)
    block = f'{begin}\n{body.strip()}\n{end}'
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        return head + block + rest.split(end, 1)[1], True
    if append:
        return text.rstrip('\n') + '\n\n' + block + '\n', True
    return text, False


def update_docs(blocks, docs):
    """Write each block (name -> Markdown) into every document of ``docs`` with its markers;
    returns name -> the documents written."""
    written = {name: [] for name in blocks}
    for path in docs:
        if not os.path.isfile(path):
            continue
        with open(path, encoding='utf-8') as f:
            text = f.read()
        new = text
        for name, body in blocks.items():
            new, found = replace_block(new, name, body)
            if found:
                written[name].append(path)
        if new != text:
            with open(path, 'w', encoding='utf-8') as f:
                f.write(new)
    return written


def write_json(path, data):
    """Write ``data`` as indented JSON (NaN / inf as strings) atomically, making the folder."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)

    def clean(v):
        if isinstance(v, float) and not math.isfinite(v):
            return str(v)
        if isinstance(v, dict):
            return {str(k): clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        return v

    with open(path + '.tmp', 'w', encoding='utf-8') as f:
        json.dump(clean(data), f, indent=1)
    os.replace(path + '.tmp', path)


class Report:
    """Markdown lines in named blocks (the first: ``section``), printed unless ``quiet``, and a JSON
    record ``data``; ``argv`` (default ``sys.argv[1:]``) and ``machine`` (default: now) head each block."""

    def __init__(self, section='report', argv=None, machine=None, quiet=False):
        self.section = section
        self.command = public_command([section] + list(sys.argv[1:] if argv is None else argv))
        self.machine = machine if machine is not None else machine_record()
        self.date = datetime.datetime.now().strftime('%Y-%m-%d %H:%M')
        self.quiet = quiet
        self.blocks = {}
        self.current = None
        self.data = {'section': section, 'command': self.command, 'date': self.date, 'machine': self.machine}
        self.started = time.perf_counter()

    def block(self, name, provenance=True):
        """Start (or continue) block ``name``; a new one opens with :meth:`provenance` unless not ``provenance``."""
        new = name not in self.blocks
        self.current = name
        self.blocks.setdefault(name, [])
        if new and provenance:
            self.provenance()

    def __call__(self, line=''):
        if self.current is None:
            self.block(self.section)
        if not self.quiet:
            print(line, flush=True)
        self.blocks[self.current].append(line)

    def provenance(self):
        """One line naming the command, date, machine, threads and load average at the start."""
        m = self.machine
        ort = f', onnxruntime {m["onnxruntime"]} ({m["ort_threads"]} threads)' if m.get('onnxruntime') else ''
        self(
            f'_Made by `{self.command}` on {self.date}: {m["cpu"]}, {m["logical_cores"]} logical cores, '
            f'torch {m["torch"]} ({m["torch_threads"]} threads){ort}, python {m["python"]}; load average at the '
            f'start {_fmt_load(m["load_start"])} (1/5/15 min)._'
        )
        if busy(m):
            self(
                f'_**The machine was busy** (1-min load {m["load_start"][0]:.1f} on {m["logical_cores"]} cores) '
                f'and {m["torch_threads"]} threads were used: multi-threaded timings then depend on the load, '
                'unevenly between networks (docs/BENCHMARKS.md, the peer section); `--threads 1` is stable there._'
            )
        self()

    def note(self, text):
        """A paragraph: ``text`` and a blank line."""
        self(text)
        self()

    def table(self, header, rows):
        """A Markdown table."""
        self('| ' + ' | '.join(header) + ' |')
        self('|' + '---|' * len(header))
        for row in rows:
            self('| ' + ' | '.join(str(c) for c in row) + ' |')
        self()

    def timings(self, header, t, ref=None):
        """A table of :class:`Timings` ``t``: name, latency (and the ratio to ``ref`` per round)."""
        self.table(header, [[k, t.fmt(k)] + ([t.fmt_ratio(k, ref)] if ref is not None else []) for k in t])

    def failure(self, what):
        """The traceback of the exception being handled, as a Markdown block titled ``what``."""
        self(f'**{what} failed:**')
        self()
        self('```')
        self(traceback.format_exc().rstrip())
        self('```')
        self()

    def finish(self):
        """Close every block with the run time and the load average at the end (also in the JSON)."""
        end = load_average()
        elapsed = time.perf_counter() - self.started
        self.data['machine']['load_end'] = end
        self.data['seconds'] = round(elapsed, 1)
        line = f'_Run time {elapsed:.0f} s; load average at the end {_fmt_load(end)}._'
        for lines in self.blocks.values():
            lines += [line, '']
        if not self.quiet:
            print(line, flush=True)

    def markdown(self):
        """All blocks, in order."""
        return '\n'.join('\n'.join(lines) for lines in self.blocks.values()).rstrip() + '\n'

    def texts(self):
        """Block name -> its Markdown."""
        return {name: '\n'.join(lines).rstrip() + '\n' for name, lines in self.blocks.items()}
