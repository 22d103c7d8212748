"""The user-facing documents (README.md, docs/*.md) describe the user's machine, not the one they were
written on, and every command they show exists.

:func:`check_doc` finds, in one document's text:

* wording about how the project was made (``issue 12``, ``this session``, ``development machine``);
* an absolute path of a development machine: ``/tmp/...``, ``/work/...``, ``/home/NAME``,
  ``/root/...``, ``/Users/NAME``;
* a path that leaves the repository: ``../something`` (resolved from the repository root, where
  the commands run, or from the document's folder for a Markdown link), and a relative Markdown
  link or image whose file does not exist;
* in fenced shell blocks and inline code: a ``python`` line whose script is not in the repository
  or whose ``-m`` module is neither in the repository nor installed; a ``deepspg-*`` program that
  is not one of setup.py's console scripts; an ``-opt options/...`` (and any ``options/``,
  ``scripts/``, ``basicsr/``, ``datasets/*.py``, ``tests/`` or ``deepspg_basicsr/`` path) that
  does not exist.

The checker is tested on planted lines first, then run over the real documents.
"""

import glob
import importlib.util
import os
import re
import shlex

from deepspg_basicsr.bench.core import public_command
from deepspg_basicsr.weights import KNOWN_WEIGHTS  # names such as `deepspg-espnetv2-photos`

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: Absolute paths that only exist on a development machine.
DEV_PATH = re.compile(r'(?<![\w.~/:-])/(?:tmp|work|root)(?:/|\b)|(?<![\w.~/:-])/(?:home|Users)/\w')
#: Words about how the project was made rather than how it is used.
DEV_WORDS = re.compile(r'\bissue \d+|\b(?:this|other) sessions?\b|\bdevelopment machines?\b', re.I)
#: A relative path going up, e.g. ``../other/folder`` (not ``.../``, not a URL's ``/../``).
UP_PATH = re.compile(r'(?<![\w./-])(?:\.\./)+[\w.{},*<>-][\w./{},*<>-]*')
#: Markdown links and images: ``[text](target)`` / ``![alt](target)``.
LINK = re.compile(r'!?\[[^\]]*\]\(([^)\s]+)\)')
#: Fenced code blocks: language and body.
FENCE = re.compile(r'^```([\w+-]*)[^\n]*\n(.*?)^```', re.M | re.S)
INLINE = re.compile(r'`([^`\n]+)`')
SHELL_LANGS = ('', 'bash', 'sh', 'shell', 'console', 'zsh')
#: Repository folders whose paths a command may name: each named file must exist.
REPO_PREFIXES = ('options/', 'scripts/', 'basicsr/', 'tests/', 'deepspg_basicsr/', '.ci/')
#: Programs whose command lines are checked (others, e.g. ``git`` or ``pip``, are left alone).
PYTHONS = ('python', 'python3')


def console_scripts(root=ROOT):
    """The console script names setup.py declares (``deepspg-train`` ...)."""
    with open(os.path.join(root, 'setup.py'), encoding='utf-8') as f:
        return set(re.findall(r"""['"]([\w-]+)\s*=\s*[\w.]+:\w+['"]""", f.read()))


def _expand(token):
    """``options/{train,test}_X.yml`` -> both names (one level of braces)."""
    m = re.search(r'\{([^{}]*)\}', token)
    if not m:
        return [token]
    return [token[: m.start()] + alt + token[m.end() :] for alt in m.group(1).split(',')]


def _placeholder(token):
    return any(c in token for c in '<>*…') or '...' in token or token.upper() == token


def _module_exists(name, root):
    parts = name.split('.')
    base = os.path.join(root, *parts)
    if os.path.isfile(base + '.py') or os.path.isfile(os.path.join(base, '__init__.py')):
        return True
    if os.path.isdir(os.path.join(root, parts[0])):  # a package of the repository: the file must be there
        return False
    if parts[0] == 'pip':  # always there; looking it up trips setuptools' distutils hook (a warning)
        return True
    return importlib.util.find_spec(parts[0]) is not None


def _segments(line):
    """The simple commands of one shell line (split at ``&&``, ``||``, ``;``, ``|``), as token lists,
    leading environment assignments and ``sudo`` / ``$SUDO`` removed."""
    try:
        lexer = shlex.shlex(line, posix=True, punctuation_chars='&|;')
        lexer.whitespace_split = True
        lexer.commenters = '#'
        tokens = list(lexer)
    except ValueError:
        return []
    segments, cur = [], []
    for tok in tokens:
        if tok and set(tok) <= set('&|;'):
            segments.append(cur)
            cur = []
        else:
            cur.append(tok)
    segments.append(cur)
    out = []
    for seg in segments:
        while seg and (re.match(r'^[A-Za-z_]\w*=', seg[0]) or seg[0] in ('sudo', '$SUDO', 'env')):
            seg = seg[1:]
        if seg:
            out.append(seg)
    return out


def check_command(line, root=ROOT, scripts=None):
    """Problems of one shell command line (empty when it is fine or not a checked program)."""
    scripts = console_scripts(root) if scripts is None else scripts
    problems = []
    for seg in _segments(line.strip().removeprefix('$ ')):
        prog, script = seg[0], None
        if prog in PYTHONS:
            args = seg[1:]
            while args and args[0] in ('-u', '-B', '-O', '-I', '-E', '-s'):
                args = args[1:]
            if args[:1] == ['-c'] or not args:
                pass
            elif args[0] == '-m' and len(args) > 1:
                if not _module_exists(args[1], root):
                    problems.append(f'`python -m {args[1]}`: no such module in the repository or installed')
            elif args[0].endswith('.py') and not _placeholder(args[0]):
                script = args[0]
                if not os.path.isfile(os.path.join(root, args[0])):
                    problems.append(f'`python {args[0]}`: no such script in the repository')
        elif prog.startswith('deepspg-') and prog not in scripts and prog not in KNOWN_WEIGHTS:
            problems.append(f'`{prog}`: not a console script of setup.py ({", ".join(sorted(scripts))})')
        elif prog in ('bash', 'sh') and len(seg) > 1 and seg[1].endswith('.sh'):
            script = seg[1]
            if not os.path.isfile(os.path.join(root, seg[1])):
                problems.append(f'`{prog} {seg[1]}`: no such script in the repository')
        elif not (prog in PYTHONS or prog.startswith('deepspg-') or prog in ('torchrun', 'bash', 'sh')):
            continue
        for tok in seg[1:]:
            if tok == script:
                continue
            value = tok.partition('=')[2] if tok.startswith('-') else tok  # --opt=options/x.yml
            checked = value.startswith(REPO_PREFIXES) or re.match(r'^datasets/[\w.-]+\.py$', value)
            if not checked or _placeholder(value):
                continue
            for name in _expand(value):
                if not os.path.exists(os.path.join(root, name)):
                    problems.append(f'`{name}`: no such file in the repository')
    return problems


def _line_of(text, pos):
    return text.count('\n', 0, pos) + 1


def check_doc(text, doc_dir, root=ROOT, scripts=None):
    """Problems of one Markdown document, each ``'line N: what'``.

    Args:
        text (str): The document.
        doc_dir (str): Its folder (relative links resolve from there).
        root (str): The repository root (commands run there).
        scripts (set[str] | None): Console script names. Default: setup.py's.
    """
    scripts = console_scripts(root) if scripts is None else scripts
    root = os.path.realpath(root)
    problems = []
    for m in DEV_PATH.finditer(text):
        problems.append(f'line {_line_of(text, m.start())}: absolute path of a development machine: {m.group(0)!r}')
    for m in DEV_WORDS.finditer(text):
        problems.append(f'line {_line_of(text, m.start())}: development wording: {m.group(0)!r}')
    links = {m.start(1): m.group(1) for m in LINK.finditer(text)}
    for pos, target in links.items():
        if re.match(r'^[a-z][\w+.-]*:|^#', target):
            continue
        path = os.path.realpath(os.path.join(doc_dir, target.split('#')[0]))
        if not (path == root or path.startswith(root + os.sep)):
            problems.append(f'line {_line_of(text, pos)}: link outside the repository: {target!r}')
        elif not os.path.exists(path):
            problems.append(f'line {_line_of(text, pos)}: link to a missing file: {target!r}')
    for m in UP_PATH.finditer(text):
        if m.start() in links:
            continue
        path = os.path.realpath(os.path.join(root, m.group(0)))
        if not path.startswith(root + os.sep):
            problems.append(f'line {_line_of(text, m.start())}: folder outside the repository: {m.group(0)!r}')
    fenced = []
    for m in FENCE.finditer(text):
        fenced.append((m.start(), m.end()))
        if m.group(1).lower() not in SHELL_LANGS:
            continue
        joined, start = [], None
        for i, raw in enumerate(m.group(2).split('\n')):  # continuation lines join; the first one's number
            start = i if start is None else start
            joined.append(raw.rstrip().removesuffix('\\'))
            if raw.rstrip().endswith('\\'):
                continue
            for p in check_command(' '.join(joined), root, scripts):
                problems.append(f'line {_line_of(text, m.start(2)) + start}: {p}')
            joined, start = [], None
    for m in INLINE.finditer(text):
        if any(a <= m.start() < b for a, b in fenced):
            continue
        span = m.group(1)
        if re.match(r'^(?:python3? |deepspg-[\w-]+(?: |$)|bash |torchrun )', span):
            for p in check_command(span, root, scripts):
                problems.append(f'line {_line_of(text, m.start())}: {p}')
    return problems


def documents(root=ROOT):
    return [os.path.join(root, 'README.md')] + sorted(glob.glob(os.path.join(root, 'docs', '*.md')))


# ---------------------------------------------------------------------------------------------------
# The checker, on planted lines


@pytest.fixture(scope='module')
def scripts():
    return console_scripts()


def fence(*lines, lang='bash'):
    return '# T\n\n```' + lang + '\n' + '\n'.join(lines) + '\n```\n'


def problems_of(text, scripts, doc_dir=ROOT):
    return check_doc(text, doc_dir, ROOT, scripts)


def test_console_scripts_are_read_from_setup_py(scripts):
    assert {'deepspg-train', 'deepspg-test', 'deepspg-enhance', 'deepspg-bench'} <= scripts
    assert 'deepspg-basicsr' not in scripts


@pytest.mark.parametrize(
    'line',
    [
        'python basicsr/train.py -opt options/train_DeepSPG_demo.yml',
        'python -m pip install -e ".[test]" && python -m pytest -q',
        'python -m deepspg_basicsr.export -opt options/test_DeepSPG_LOLv1.yml --output deepspg.onnx',
        'python -m deepspg_basicsr.bench peer --quick',
        'deepspg-enhance photos/ -opt options/test_DeepSPG_LOLv1.yml --output enhanced/ [--tile 512]',
        'deepspg-bench sizes | inference | train [--quick]',
        'OMP_NUM_THREADS=1 python datasets/make_demo_data.py --seed 3 --root demo_seed3',
        'python basicsr/train.py -opt my_options/mine.yml   # your own file',
        'python basicsr/train.py -opt <file>.yml --launcher pytorch',
        'bash scripts/cuda_check.sh --out DIR',
        'pip install -U openmim && mim install "mmcv>=2.0.0rc4,<2.2.0"',
        'python basicsr/test.py -opt options/{train,test}_DeepSPG_demo.yml',
    ],
)
def test_real_commands_pass(line, scripts):
    assert problems_of(fence(line), scripts) == []


@pytest.mark.parametrize(
    ('line', 'what'),
    [
        ('python basicsr/trian.py -opt options/train_DeepSPG_demo.yml', 'basicsr/trian.py'),
        ('python -m deepspg_basicsr.exprot --output x.onnx', 'deepspg_basicsr.exprot'),
        ('python -m no_such_module_anywhere_xyz', 'no_such_module_anywhere_xyz'),
        ('deepspg-enhnace photos/ --output out/', 'deepspg-enhnace'),
        ('deepspg-basicsr --help', 'deepspg-basicsr'),
        ('python basicsr/train.py -opt options/train_DeepSPG_LOLv9.yml', 'options/train_DeepSPG_LOLv9.yml'),
        ('python basicsr/test.py --opt=options/nope.yml', 'options/nope.yml'),
        ('make && python datasets/make_demo_data2.py', 'datasets/make_demo_data2.py'),
        ('bash scripts/no_check.sh', 'scripts/no_check.sh'),
        ('deepspg-app -opt options/{test,tset}_DeepSPG_demo.yml', 'options/tset_DeepSPG_demo.yml'),
        ('python basicsr/train.py \\\n  -opt options/missing.yml', 'options/missing.yml'),
    ],
)
def test_bad_commands_are_named(line, what, scripts):
    found = problems_of(fence(line), scripts)
    assert len(found) == 1 and what in found[0] and found[0].startswith('line 4: '), found


@pytest.mark.parametrize(
    ('text', 'what'),
    [
        ('Made by `deepspg-bench peer --work /tmp/i17/work`.', '/tmp'),
        ('Data in /work/shared/' + 'priors here.', '/work'),
        ('See /home/alice/photos.', '/home/a'),
        ('cache: /root/.cache/torch', '/root'),
        ('On a Mac: /Users/bob/x', '/Users/b'),
        ('the file lives in `../other/priors/`, beside the checkout', '../other/priors/'),
        ('seg_checkpoint: ../priors/espnetv2.pth', '../priors/espnetv2.pth'),
        ('[design](../other/DESIGN.md)', '../other/DESIGN.md'),
        ('![before and after](docs/figures/no_such_figure.png)', 'no_such_figure.png'),
        ('As found in issue 12, the resume failed.', 'issue 12'),
        ('Measured in this session on 2 cores.', 'this session'),
        ('Measured on the 2-core development machine.', 'development machine'),
    ],
)
def test_development_paths_are_named(text, what, scripts):
    found = problems_of('# T\n\n' + text + '\n', scripts)
    assert len(found) == 1 and what in found[0] and found[0].startswith('line 3: '), found


@pytest.mark.parametrize(
    'text',
    [
        'Weights are cached under `~/.cache/torch` or `$XDG_CACHE_HOME`.',
        'See <https://github.com/sacmehta/EdgeNets/tree/master/model> and https://example.org/tmp/x.',
        'From the docs folder, [the README](../README.md) and [data](DATA.md#1-where).',
        'A path like `datasets/LOL-v1_lmdb/our485/high.lmdb` is made by the converter.',
        'Inline `python basicsr/train.py -opt options/train_DeepSPG_LOLv1.yml` is checked and real.',
        'The .../x ellipsis and tmp/ alone are not paths of a machine.',
    ],
)
def test_clean_text_passes(text, scripts):
    assert problems_of('# T\n\n' + text + '\n', scripts, doc_dir=os.path.join(ROOT, 'docs')) == []


def test_inline_and_yaml_code(scripts):
    bad_inline = 'Run `deepspg-enhanse photos/` then.'
    assert any('deepspg-enhanse' in p for p in problems_of(bad_inline, scripts))
    # YAML and Python blocks are not shell commands (their lines are not run as such)
    assert problems_of(fence('python: basicsr/nope.py', lang='yaml'), scripts) == []
    assert problems_of(fence('import deepspg_basicsr', lang='python'), scripts) == []
    # ... but a development path is flagged in any block
    assert len(problems_of(fence('seg_checkpoint: /tmp/x.pth', lang='yaml'), scripts)) == 1


def test_public_command_leaves_out_where_a_run_wrote():
    argv = ['peer', '--retinexformer', '/tmp/peer/RetinexFormer_arch.py', '--ort', '--work', '/tmp/w']
    argv += ['--json=/tmp/p.json', '--out', 'results/p.md', '--seg-checkpoint', '../other/priors/e.pth', '-x']
    assert public_command(argv) == (
        'deepspg-bench peer --retinexformer RetinexFormer_arch.py --ort --seg-checkpoint e.pth -x'
    )
    assert public_command(['sizes', '--size', '256']) == 'deepspg-bench sizes --size 256'
    assert public_command(['run', '--out-dir', '/o'], prefix='python -m m') == 'python -m m run'
    assert check_doc(f'_Made by `{public_command(argv)}` on a day._', ROOT, ROOT, {'deepspg-bench'}) == []


# ---------------------------------------------------------------------------------------------------
# The real documents


@pytest.mark.parametrize('path', documents(), ids=lambda p: os.path.relpath(p, ROOT))
def test_document_is_clean(path, scripts):
    with open(path, encoding='utf-8') as f:
        text = f.read()
    found = check_doc(text, os.path.dirname(path), ROOT, scripts)
    assert not found, f'{os.path.relpath(path, ROOT)}:\n' + '\n'.join(found)


def _fenced(text, lang='bash'):
    return [m.group(2).strip() for m in FENCE.finditer(text) if m.group(1) == lang]


def test_readme_quick_start_and_ci_run_the_same_test_command():
    with open(os.path.join(ROOT, 'README.md'), encoding='utf-8') as f:
        readme = f.read()
    with open(os.path.join(ROOT, '.ci', 'run'), encoding='utf-8') as f:
        ci = [line.strip() for line in f if line.strip() and not line.lstrip().startswith('#')]
    blocks = _fenced(readme)
    main_job, tests = blocks[0], blocks[1]
    assert 'basicsr/train.py -opt options/' in main_job and 'basicsr/test.py -opt options/' in main_job
    assert '\n' not in main_job and '\n' not in tests
    assert tests in ci, f'.ci/run does not run the README test command {tests!r}'
    assert len(readme.splitlines()) <= 160, 'README.md: keep it to about 150 lines (details go to docs/)'
