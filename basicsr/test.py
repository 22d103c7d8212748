"""Retinexformer-style launcher: ``python basicsr/test.py -opt options/<file>.yml``.

A thin script in a folder without ``__init__.py``: it never shadows the pip ``basicsr``
package. Results are written under the current directory.
"""

from deepspg_basicsr.test import main

if __name__ == '__main__':
    main()
