"""The ``deepspg-app`` web page (Gradio Blocks) around :class:`~deepspg_basicsr.app.session.AppSession`.

Every problem (model files, a photo that is not an image, one too large for the memory bound) is
a message on the page; the other photos are still enhanced. Element ids (``#photos``,
``#enhance``, ``#run-status``, ``#downloads``, ...) are stable for tests and scripts.
"""

import dataclasses
import glob
import os
import time

from .session import AppError

__all__ = ['build_demo', 'option_file_choices', 'run_status']

INTRO = """# DeepSPG: low-light enhancement guided by a semantic prior
Drop one or more photos, press **Enhance**, compare before and after with the slider, and see what the
prior saw: the illumination and reflectance of the Retinex decomposition and the prior's segmentation
with its classes. Downloads keep the input's format, bit depth and alpha channel."""


def option_file_choices(folder='options'):
    """Test option files under ``folder`` (``test_*.yml``, sorted), for the option file menu."""
    return sorted(glob.glob(os.path.join(folder, 'test_*.yml')))


def run_status(done, failures, seconds, backend, warnings=()):
    """Markdown of one click: the photos enhanced (size, time), the failures, the backend.

    Args:
        done (list[PhotoResult]): The photos enhanced.
        failures (list[str]): One message per photo that failed.
        seconds (float): Time for the whole click.
        backend (str): :meth:`AppSession.backend`.
        warnings (Sequence[str]): Random-weights warnings, shown first.
    """
    total = len(done) + len(failures)
    head = [f'> ⚠️ **{w}**' for w in warnings]
    head.append(f'**Enhanced {len(done)} of {total} photo(s)** in {seconds:.1f} s with {backend}.')
    items = []
    for res in done:
        notes = ''.join(f' {note[0].upper()}{note[1:]}.' for note in res.notes)
        items.append(f'- `{res.name}` {res.size[1]}x{res.size[0]}: {res.seconds:.1f} s.{notes}')
    items += [f'- **Failed:** {message}' for message in failures]
    return '\n\n'.join(head + ['\n'.join(items)] if items else head)


def _views(result):
    """Slider, illumination, reflectance, segmentation and legend of one stored result (dict)."""
    if not result:
        return None, None, None, None, ''
    return (
        (result['before'], result['after']),
        result['illumination'],
        result['reflectance'],
        result['segmentation'],
        result['legend'],
    )


def build_demo(session, tile=0):
    """The Gradio Blocks of the app.

    Args:
        session (AppSession): The model and the output folder.
        tile (int): Initial tile size (0: whole images). Default: 0.

    Returns:
        gradio.Blocks: Not launched.
    """
    import gradio as gr

    def load(opt, weights, onnx):
        try:
            return session.load(opt or '', weights, onnx)
        except AppError as err:
            return f'**Failed:** {err}'

    def enhance(opt, weights, onnx, files, tile_size, progress=gr.Progress()):  # noqa: B008 - how Gradio injects progress
        start = time.perf_counter()
        empty = (None, None, None, None, '')
        try:
            progress(0, desc='loading the model')
            session.load(opt or '', weights, onnx)
        except AppError as err:
            return (f'**Failed:** {err}', gr.update(choices=[], value=None), {}, None) + empty
        files = [f for f in (files or []) if f]
        if not files:
            return ('Upload one or more photos first.', gr.update(choices=[], value=None), {}, None) + empty
        try:
            run = session.new_run_folder()
        except OSError as err:
            return (
                f'**Failed:** cannot write into {session.output}: {err}',
                gr.update(choices=[], value=None),
                {},
                None,
            ) + empty
        done, failures = [], []
        for i, path in enumerate(files):
            name = os.path.basename(path)

            def tick(step, steps, i=i, name=name):
                progress((i + step / steps) / len(files), desc=f'{name}: tile {step} of {steps}')

            progress(i / len(files), desc=f'{name}')
            try:
                done.append(session.enhance_photo(path, run, name=name, tile=tile_size, progress=tick))
            except AppError as err:
                failures.append(str(err))
            except Exception as err:  # noqa: BLE001 - never a dead page
                failures.append(f'{name}: {type(err).__name__}: {err}')
        status = run_status(
            done, failures, time.perf_counter() - start, session.backend(), session.random_weights_warnings()
        )
        results = {res.name: dataclasses.asdict(res) for res in done}
        names = list(results)
        first = results[names[0]] if names else None
        downloads = [res.download for res in done] or None
        return (status, gr.update(choices=names, value=names[0] if names else None), results, downloads) + _views(first)

    def show(name, results):
        return _views((results or {}).get(name))

    with gr.Blocks(title='DeepSPG low-light enhancement', analytics_enabled=False) as demo:
        gr.Markdown(INTRO)
        with gr.Accordion('Model', open=True):
            with gr.Row():
                opt = gr.Dropdown(
                    choices=sorted(set(option_file_choices() + [session.defaults['opt']]) - {''}),
                    value=session.defaults['opt'] or None,
                    allow_custom_value=True,
                    label='Option file (network_g, prior)',
                    elem_id='opt',
                )
                weights = gr.Textbox(
                    value=session.defaults['weights'],
                    label="Checkpoint (empty: the option file's path.pretrain_network_g; no file: the shipped model)",
                    elem_id='weights',
                )
                onnx = gr.Textbox(
                    value=session.defaults['onnx'], label='Or an exported ONNX model (deepspg-export)', elem_id='onnx'
                )
            load_button = gr.Button('Load model', elem_id='load')
            model_status = gr.Markdown(elem_id='model-status')
        with gr.Row():
            photos = gr.File(file_count='multiple', label='Photos', elem_id='photos')
            with gr.Column():
                tile_size = gr.Number(
                    value=tile, precision=0, minimum=0, label='Tile size (0: whole image)', elem_id='tile'
                )
                enhance_button = gr.Button('Enhance', variant='primary', elem_id='enhance')
        status = gr.Markdown(elem_id='run-status')
        choice = gr.Dropdown(choices=[], label='Photo shown', elem_id='photo-choice')
        slider = gr.ImageSlider(label='Before / after', type='filepath', elem_id='slider')
        with gr.Row():
            illumination = gr.Image(label='Illumination', type='filepath', elem_id='illumination')
            reflectance = gr.Image(label='Reflectance (clipped to [0, 1])', type='filepath', elem_id='reflectance')
        with gr.Row():
            segmentation = gr.Image(label="The prior's segmentation on the output", type='filepath', elem_id='seg')
            legend = gr.HTML(elem_id='legend')
        downloads = gr.File(
            label="Results (the input's format and bit depth)", file_count='multiple', interactive=False,
            elem_id='downloads',
        )  # fmt: skip
        results = gr.State({})

        views = [slider, illumination, reflectance, segmentation, legend]
        load_button.click(load, [opt, weights, onnx], model_status)
        enhance_button.click(
            enhance, [opt, weights, onnx, photos, tile_size], [status, choice, results, downloads] + views
        )
        choice.change(show, [choice, results], views)
        demo.load(load, [opt, weights, onnx], model_status)  # nothing chosen: the shipped model
    return demo
