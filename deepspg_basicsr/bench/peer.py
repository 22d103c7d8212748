"""Section ``peer``: DeepSPG's whole pipeline against Retinexformer's LOL-v1 network, same rounds.

Retinexformer comes from its own arch file (``--retinexformer FILE``, never part of this project),
random weights, timed NCHW and channels-last; ratios per round to its faster layout and to NCHW.
"""

import copy
import os

import torch

from .common import SEG_PRIORS, build, export_once, load_peer, model_options, parse_size, test_image, unfolded_pipeline
from .core import rounds

#: Row names (the JSON keys).
PEER_NCHW = 'Retinexformer LOL-v1, NCHW (as its repository runs it)'
PEER_CL = 'Retinexformer LOL-v1, channels-last (weights and input)'
PIPELINE = 'DeepSPG default pipeline (DeepSPGPipeline: prior BN folded + channels-last, C2F)'
PIPELINE_NCHW = 'DeepSPG pipeline, enhancer NCHW (DeepSPGPipeline before 2026-12-03)'
ENHANCE = 'DeepSPG default pipeline (DeepSPGModel.enhance, as deepspg-enhance / test)'
RAW = 'DeepSPG raw (DeepSPG.forward, prior unfolded, NCHW)'
ORT = 'DeepSPG default pipeline, ONNX Runtime fp32 (exported DeepSPGPipeline)'
LOSSY = 'DeepSPG lossy: bf16 + channels-last, prior at half resolution'
HALF_PRIOR = 'DeepSPG pipeline, prior at half resolution (fp32, prior.seg_scale 0.5)'


def add_arguments(parser):
    parser.add_argument('--retinexformer', metavar='FILE', help="Retinexformer's RetinexFormer_arch.py (needs einops)")
    parser.add_argument('--size', default='600x400', help='WxH (quick: 96x64)')
    parser.add_argument('--seg', default='HRNet-W48', choices=sorted(SEG_PRIORS), help='prior (quick: W18-small)')
    parser.add_argument('--ort', action='store_true', help='also ONNX Runtime fp32 (exports once into --work)')
    parser.add_argument('--no-raw', action='store_true', help='leave out the raw (unfolded, NCHW) row')
    parser.add_argument('--lossy', action='store_true', help='also the lossy configuration (bf16, half prior)')
    parser.add_argument('--half-prior', action='store_true', help='also the pipeline with prior.seg_scale 0.5 (fp32)')
    parser.add_argument('--work', default='/tmp/deepspg_bench', help='exported models (reused)')


def candidates(args, x):
    """Name -> (callable, what the timed call contains)."""
    from deepspg_basicsr.deploy.pipeline import DeepSPGPipeline

    peer = load_peer(args.retinexformer)
    peer_cl = copy.deepcopy(peer).to(memory_format=torch.channels_last)
    x_cl = x.contiguous(memory_format=torch.channels_last)
    model = build(model_options(args.seg), torch.device('cpu'))  # defaults: BN folded, channels-last prior
    net = model.get_bare_model(model.net_g).eval()
    pipe = DeepSPGPipeline(net, model.seg_prior, model.seg_branches).eval()
    out = {
        PEER_NCHW: (lambda: peer(x), 'the network on the NCHW input'),
        PEER_CL: (lambda: peer_cl(x_cl), 'the network on the channels-last input (conversion outside the timer)'),
        PIPELINE: (lambda: pipe(x), 'pad, prior on the input, encoder, decoder, prior on the coarse result, decoder'),
        ENHANCE: (lambda: model.enhance(net, x), 'the same, through the model (channels-last enhancer input)'),
    }
    if not args.no_raw:
        pipe_nchw = DeepSPGPipeline(net, model.seg_prior, model.seg_branches, channels_last=False).eval()
        out[PIPELINE_NCHW] = (lambda: pipe_nchw(x), 'the same with the enhancer in NCHW')
        raw, _ = unfolded_pipeline(args.seg, torch.device('cpu'))
        out[RAW] = (lambda: raw(x), 'the same computation, no perf defaults')
    if args.half_prior:
        half = DeepSPGPipeline(net, model.seg_prior, model.seg_branches, seg_scale=0.5).eval()
        out[HALF_PRIOR] = (lambda: half(x), 'the default pipeline with both prior passes at half resolution')
    if args.lossy:
        fast = build(model_options(args.seg, extra={'perf': {'amp': 'bf16'}, 'prior': {'seg_scale': 0.5}}))
        fast.get_bare_model(fast.net_g).load_state_dict(net.state_dict())
        out[LOSSY] = (lambda: fast.enhance(fast.net_g, x), 'the model with perf.amp bf16 and prior.seg_scale 0.5')
    if args.ort:
        from deepspg_basicsr.deploy.ort_backend import OrtSession

        path = export_once(pipe, os.path.join(args.work, f'peer_{args.seg}_pipeline.onnx'))
        session = OrtSession(path, threads=args.threads, device='cpu')
        out[ORT] = (lambda: session.run(x)[0], 'the exported pipeline in one ONNX Runtime session')
    return out


def run(rep, args):
    if not args.retinexformer:
        raise SystemExit("peer: --retinexformer FILE is needed (Retinexformer's RetinexFormer_arch.py)")
    if args.quick:
        args.size, args.seg = '96x64', 'HRNet-W18-small'
    w, h = parse_size(args.size)
    x = test_image(h, w)
    cands = candidates(args, x)
    with torch.inference_mode():
        t = rounds({k: fn for k, (fn, _) in cands.items()}, args.repeats, warmup=1)
    fast = min((PEER_NCHW, PEER_CL), key=t.median)
    layout = 'channels-last' if fast == PEER_CL else 'NCHW'
    rep.block('peer')
    rep.note(
        f'{w}x{h}, random weights, base preset, {args.seg} prior, {args.repeats} rounds; faster peer layout: {layout}.'
    )
    rows = []
    for name, (_, what) in cands.items():
        vs_fast = '' if name == fast else t.fmt_ratio(name, fast)
        vs_nchw = '' if name == PEER_NCHW else t.fmt_ratio(name, PEER_NCHW)
        rows.append([name, what, t.fmt(name), vs_fast, vs_nchw])
    rep.table(['row', 'inside the timed call', 'latency', 'vs the peer, faster layout', 'vs the peer, NCHW'], rows)
    ratios = {k: {'vs_fast': t.ratio(k, fast), 'vs_nchw': t.ratio(k, PEER_NCHW)} for k in cands}
    rep.data.update(times=dict(t), faster_peer_layout=fast, ratios=ratios, size=[w, h], seg=args.seg)
