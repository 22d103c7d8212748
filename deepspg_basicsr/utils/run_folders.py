"""A failed run leaves the folders as they were.

BasicSR's pipelines make ``experiments/<name>`` (training) or ``results/<name>`` (test) first
thing, renaming an existing folder of that name to ``<name>_archived_<time>``; a run that then
fails on a bad data folder, checkpoint or image leaves an empty experiment behind and the
previous good results archived under another name. :func:`rollback_new_folders` undoes that
when the run produced nothing: the new folder holds only logs and the copied option file (no
checkpoint, training state, metric report or image). The folder and its archive are put back
as they were; the error (printed on the console, which the log repeats) is left to the caller.
"""

import glob
import os
import shutil
from contextlib import contextmanager

__all__ = ['produced_nothing', 'rollback_new_folders', 'run_folders']

#: Files a run writes before it has done anything (BasicSR's log, the copied option file).
BOOKKEEPING_SUFFIXES = ('.log', '.yml', '.yaml')


def run_folders(opt, is_train, root):
    """The folders BasicSR's pipeline makes (and archives) for the options ``opt``.

    Args:
        opt (dict): The option file as loaded.
        is_train (bool): Training (``experiments/<name>``, ``tb_logger/<name>``) or test
            (``results/<name>``).
        root (str): The root folder (the current directory).

    Returns:
        list[str]: Absolute folder paths.
    """
    name = str(opt['name'])
    if not is_train:
        return [os.path.abspath(os.path.join(root, 'results', name))]
    folders = [os.path.abspath(os.path.join(root, 'experiments', name))]
    if (opt.get('logger') or {}).get('use_tb_logger') and 'debug' not in name:
        folders.append(os.path.abspath(os.path.join(root, 'tb_logger', name)))
    return folders


def produced_nothing(folder):
    """Whether ``folder`` holds no file other than logs and option files (any depth)."""
    for _, _, files in os.walk(folder):
        if any(not f.endswith(BOOKKEEPING_SUFFIXES) for f in files):
            return False
    return True


def _archives(folder):
    return set(glob.glob(glob.escape(folder) + '_archived_*'))


@contextmanager
def rollback_new_folders(folders, is_tb=lambda folder: False):
    """Run the body; if it raises (or is interrupted) and a folder in ``folders`` was made by it
    and holds nothing but logs, remove that folder and rename the archive it displaced back.

    Folders that existed before and were not archived (a resumed run writes into its own
    experiment) are never touched, nor is anything when the run produced a checkpoint, a
    report or an image. TensorBoard folders (``is_tb``) count as empty when their experiment
    folder is.

    Args:
        folders (list[str]): Folders the body may make (see :func:`run_folders`).
        is_tb (callable): Whether a folder is a TensorBoard log folder. Default: none is.
    """
    before = {f: (os.path.exists(f), _archives(f)) for f in folders}
    parents = {os.path.dirname(f): os.path.exists(os.path.dirname(f)) for f in folders}
    try:
        yield
    except BaseException:
        main_empty = all(produced_nothing(f) for f in folders if os.path.isdir(f) and not is_tb(f))
        for folder in folders:
            existed, archives = before[folder]
            new_archives = sorted(_archives(folder) - archives)
            made_here = not existed or bool(new_archives)
            if not (made_here and os.path.isdir(folder) and main_empty):
                continue
            shutil.rmtree(folder)
            if new_archives:
                os.rename(new_archives[-1], folder)
        for parent, existed in parents.items():  # experiments/, results/ made by this run, now empty
            if not existed and os.path.isdir(parent) and not os.listdir(parent):
                os.rmdir(parent)
        raise
