"""Time DCGAN training on one device (made for a GPU; `--device cpu` runs it too, to check the script), in one run:

- `plain loop, replayed batches`: PyTorch's examples/dcgan step (two torch.optim.Adam) on batches already on the device;
- `pytorch/examples recipe`: the same step fed as examples/dcgan feeds it: a torch DataLoader over the images, each batch converted to
  float and normalised on the host, then copied to the device, plus fresh noise drawn on the device;
- `dcgan_course learner, end to end`: `dcgan_learner` as `dcgan_train` builds it (GANDataLoader on the device, a run folder, the failure
  monitor), one epoch;
- `dcgan_course learner, compiled`: the same with `compile=True` (after a warm-up epoch that compiles);
- on CUDA only: `dcgan_course learner, compiled reduce-overhead` (`compile='reduce-overhead'`: torch.compile's CUDA graphs) and the same
  with `bf16=True`; `plain loop, one CUDA graph`: the plain step pair captured whole as one CUDA graph (static batch buffers, capturable
  Adam), what the hardware allows with these networks.

A setting that fails (say, a CUDA-graph capture this torch refuses) is recorded with its error instead of a time; the others still run.

Same networks (copies of one initialisation) for all, the digits upscaled to `--size`. Reported per setting: ms per update pair (one critic +
one generator step), images per second, peak device memory, ratios to the plain loop, the device's name. Results: benchmarks/gpu_results.json.

    python benchmarks/bench_gpu.py                                   # 32 and 64 px, batch 64 and 256, on cuda
    python benchmarks/bench_gpu.py --device cpu --sizes 16 --bss 16 --nf 8 --steps 8 --repeats 1 --out /tmp/x.json   # a smoke run
"""
import argparse, copy, json, platform, statistics, tempfile, time, warnings
from pathlib import Path

import torch


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--device', default='cuda')
    p.add_argument('--sizes', type=int, nargs='+', default=[32, 64])
    p.add_argument('--bss', type=int, nargs='+', default=[64, 256])
    p.add_argument('--nf', type=int, default=64)
    p.add_argument('--steps', type=int, default=0, help='update pairs per timed run (0: one epoch of the 1,797 digits)')
    p.add_argument('--repeats', type=int, default=3)
    p.add_argument('--no-compile', action='store_true')
    p.add_argument('--out', default=str(Path(__file__).with_name('gpu_results.json')))
    a = p.parse_args(argv)

    from fastai.torch_core import set_seed
    from dcgan_course.data import gan_dataloaders, digits_images
    from dcgan_course.layers import dcgan_nets
    from dcgan_course.learner import plain_dcgan_steps, dcgan_pair
    from dcgan_course.train import dcgan_learner
    from dcgan_course.hacks import hack_callbacks

    dev = torch.device(a.device)
    cuda = dev.type == 'cuda'
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    name = torch.cuda.get_device_name(dev) if cuda else platform.processor() or platform.machine()
    res = dict(device=name, torch=torch.__version__, date=time.strftime('%Y-%m-%d %H:%M'), settings={})
    for size in a.sizes:
        for bs in a.bss:
            set_seed(0)
            dls = gan_dataloaders('digits', size=size, bs=bs, device=dev)
            steps = a.steps or len(dls.train)
            G0, D0 = dcgan_nets(dls, nf=a.nf)
            imgs = digits_images(size)[0]
            nets = lambda: (copy.deepcopy(G0).to(dev), copy.deepcopy(D0).to(dev))
            replay = [(torch.randn(bs, G0.nz, 1, 1, device=dev), (imgs[i * bs % len(imgs):][:bs].float() / 127.5 - 1).to(dev))
                      for i in range(steps)]
            replay = [(z, x) for z, x in replay if len(x) == bs]

            def timed(f):
                if cuda: torch.cuda.reset_peak_memory_stats(dev)
                sync(); t = time.perf_counter(); n = f(); sync()
                return (time.perf_counter() - t) / n, (torch.cuda.max_memory_allocated(dev) if cuda else None)

            def plain():
                G, D = nets(); plain_dcgan_steps(G, D, replay); return len(replay)

            def recipe():
                G, D = nets()
                loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(imgs), batch_size=bs, shuffle=True, drop_last=True,
                                                     pin_memory=cuda)
                def batches():
                    for (x,) in loader:
                        x = (x.float() / 255 - 0.5) / 0.5          # ToTensor + Normalize(0.5, 0.5), on the host
                        yield torch.randn(bs, G.nz, 1, 1, device=dev), x.to(dev, non_blocking=True)
                plain_dcgan_steps(G, D, batches()); return len(loader)

            def graphed():
                G, D = nets()
                optD, optG = (torch.optim.Adam(m.parameters(), lr=2e-4, betas=(0.5, 0.999), capturable=True) for m in (D, G))
                z, x = (t.clone() for t in replay[0])          # static inputs: each batch is copied in before a replay
                pair = lambda: dcgan_pair(G, D, optD, optG, z, x)   # plain_dcgan_steps' update pair, without its host reads of the losses
                side = torch.cuda.Stream(); side.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(side):
                    for _ in range(3): pair()                  # warm-up on a side stream, as CUDA-graph capture requires
                torch.cuda.current_stream().wait_stream(side)
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph): pair()
                def go():
                    for zb, xb in replay: z.copy_(zb); x.copy_(xb); graph.replay()
                    return len(replay)
                return go

            def learner(compile=False, bf16=False):
                G, D = nets()
                learn = dcgan_learner(dls, G, D, path=Path(tempfile.mkdtemp())/'run', cbs=hack_callbacks(), compile=compile, bf16=bf16)
                def go():
                    with learn.no_bar(), learn.no_logging(), warnings.catch_warnings():
                        warnings.simplefilter('ignore'); learn.fit(1)
                    return len(dls.train)
                if compile: go()                                   # compiles
                return go

            makers = {'plain loop, replayed batches': lambda: plain, 'pytorch/examples recipe': lambda: recipe,
                      'dcgan_course learner, end to end': learner}
            if not a.no_compile: makers['dcgan_course learner, compiled'] = lambda: learner(compile=True)
            if cuda:
                if not a.no_compile:
                    makers['dcgan_course learner, compiled reduce-overhead'] = lambda: learner(compile='reduce-overhead')
                    makers['dcgan_course learner, compiled reduce-overhead, bf16'] = lambda: learner(compile='reduce-overhead', bf16=True)
                makers['plain loop, one CUDA graph'] = graphed
            runners, failed = {}, {}
            said = lambda e: f'{type(e).__name__}: {str(e)[:300]}'   # an error as the JSON records it
            for k, make in makers.items():
                try: f = make(); f(); runners[k] = f                # built and warmed up (a compiled one has compiled)
                except Exception as e: failed[k] = said(e)
            times, mem = {k: [] for k in runners}, {}
            for _ in range(a.repeats):
                for k, f in list(runners.items()):
                    try: t, m = timed(f); times[k].append(t); mem[k] = m
                    except Exception as e: failed[k] = said(e); del runners[k]
            med = {k: statistics.median(times[k]) for k in runners}
            base = med['plain loop, replayed batches']
            key = f'{size}px_bs{bs}'
            res['settings'][key] = {k: dict(ms_per_update_pair=round(v * 1000, 3), images_per_s=round(bs / v, 1),
                                            ratio_to_plain=round(v / base, 3), peak_memory_mb=None if mem[k] is None else round(mem[k] / 2**20, 1),
                                            all_ms=[round(x * 1000, 3) for x in times[k]]) for k, v in med.items()}
            res['settings'][key].update({k: dict(error=e) for k, e in failed.items()})
            print(f'{key} on {name}:')
            for k, r in res['settings'][key].items():
                if 'error' in r: print(f"  {k:52s} failed: {r['error']}"); continue
                print(f"  {k:52s} {r['ms_per_update_pair']:8.2f} ms  {r['images_per_s']:9.0f} img/s  {r['ratio_to_plain']:5.2f}x  "
                      f"peak {r['peak_memory_mb']} MB")
    if a.out:
        Path(a.out).write_text(json.dumps(res, indent=1)); print(f'wrote {a.out}')
    return res


if __name__ == '__main__':
    main()
