"""Train with BasicSR's pipeline and this project's registrations.

Usage: ``python -m deepspg_basicsr.train -opt options/train_DeepSPG_LOLv1.yml [--auto_resume]``
(also ``deepspg-train`` and ``python basicsr/train.py`` from the repository root).
"""

from .launch import prepare


def main(argv=None):
    root = prepare(argv)
    from basicsr.train import train_pipeline

    train_pipeline(root)


if __name__ == '__main__':
    main()
