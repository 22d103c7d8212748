"""Write the pinned output of the shipped model that tests/test_shipped_model.py compares against.

python scripts/pin_shipped_output.py    # after the shipped weights change (docs/MODEL.md)
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'tests'))


def main():
    from deepspg_basicsr import DeepSPGEnhancer
    from deepspg_basicsr.utils.image_io import write_png

    from test_shipped_model import EXPECTED, low_light_input

    out = DeepSPGEnhancer(device='cpu').enhance(low_light_input())
    write_png(EXPECTED, out)
    print(f'{EXPECTED}: {out.shape}, mean {out.mean():.3f}')


if __name__ == '__main__':
    main()
