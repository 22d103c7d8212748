"""``deepspg-app``: a local web page to enhance photos and see what the prior saw.

:mod:`.session` does the work (the same enhancement as ``deepspg-enhance``), :mod:`.ui` is the
Gradio page, :mod:`.cli` the command line. Gradio is imported only when the page is built.
"""

from .session import AppError, AppSession, PhotoResult

__all__ = ['AppError', 'AppSession', 'PhotoResult']
