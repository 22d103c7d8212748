"""Retinexformer-style launcher: ``python basicsr/train.py -opt options/<file>.yml``.

A thin script in a folder without ``__init__.py``: it never shadows the pip ``basicsr``
package. Experiments are written under the current directory.
"""

from deepspg_basicsr.train import main

if __name__ == '__main__':
    main()
