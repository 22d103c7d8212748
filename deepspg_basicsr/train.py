"""Train with BasicSR's pipeline and this project's registrations.

Usage: ``python -m deepspg_basicsr.train -opt options/train_DeepSPG_LOLv1.yml [--auto_resume]``
(also ``deepspg-train`` and ``python basicsr/train.py`` from the repository root). Distributed:
``torchrun --nproc_per_node=N basicsr/train.py -opt ... --launcher pytorch`` (docs/RELIABILITY.md).
"""

import sys

from .launch import prepare, run_guarded


def main(argv=None):
    root = prepare(argv)
    from basicsr.utils import get_root_logger

    from basicsr.train import train_pipeline

    from .models.llie_base_model import NonFiniteLossError

    try:
        run_guarded(train_pipeline, root, is_train=True)
    except NonFiniteLossError as err:  # a clear last line instead of a traceback; status 3
        get_root_logger().error(f'{type(err).__name__}: {err}')
        print(f'error: {err}', file=sys.stderr, flush=True)
        raise SystemExit(3) from None


if __name__ == '__main__':
    main()
