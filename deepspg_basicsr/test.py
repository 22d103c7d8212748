"""Test / benchmark with BasicSR's pipeline and this project's registrations.

Usage: ``python -m deepspg_basicsr.test -opt options/test_DeepSPG_LOLv1.yml``
(also ``deepspg-test`` and ``python basicsr/test.py`` from the repository root).
"""

from .launch import prepare, run_guarded


def main(argv=None):
    root = prepare(argv, is_train=False)
    from basicsr.test import test_pipeline

    run_guarded(test_pipeline, root, is_train=False)


if __name__ == '__main__':
    main()
