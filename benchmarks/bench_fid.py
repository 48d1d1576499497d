"""Benchmark FID in dcgan_course: Inception feature extraction (images/s, CPU and GPU if there is one) and the Fréchet
distance at 2048 dimensions, ours against pytorch-fid's `scipy.linalg.sqrtm` formula and the other known routes.

    python benchmarks/bench_fid.py [--n-images 64] [--bs 32] [--repeats 3] [--out benchmarks/fid_results.json]

Writes JSON (hardware, versions, load average, every timing) to benchmarks/fid_results.json.
"""
import argparse, json, os, platform, sys, time, warnings
from pathlib import Path

import numpy as np
import scipy, scipy.linalg
import torch

from dcgan_course.data import digits_images
from dcgan_course.frechet import frechet_distance, frechet_distance_sqrtm, feature_stats, fid_from_features
from dcgan_course.inception import load_inception, inception_features


def hardware() -> dict:
    cpu = platform.processor() or ''
    try:
        cpu = next(l.split(':', 1)[1].strip() for l in open('/proc/cpuinfo') if l.startswith('model name'))
    except Exception: pass
    return dict(cpu=cpu, cpu_cores=os.cpu_count(), torch_threads=torch.get_num_threads(), platform=platform.platform(),
                gpu=torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
                python=platform.python_version(), torch=torch.__version__, numpy=np.__version__, scipy=scipy.__version__,
                blas=_blas_name())


def _blas_name():
    try:
        cfg = np.show_config(mode='dicts')
        return cfg['Build Dependencies']['blas']['name']
    except Exception: return None


def bench_features(device, n, bs) -> dict:
    "End to end from 32x32 uint8 digits: quantise, grey->RGB, bilinear resize to 299, Inception pool3."
    imgs = digits_images(32)[0][:n]
    net = load_inception(device=device)
    inception_features(imgs[:2], bs=2, device=device)                   # warm-up (allocations, cuDNN autotune)
    if device == 'cuda': torch.cuda.synchronize()
    t0 = time.perf_counter()
    f = inception_features(imgs, bs=bs, device=device)
    if device == 'cuda': torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    return dict(device=device, weights=f'{net.kind}:{net.path.name}', n=n, bs=bs, seconds=dt, images_per_s=n / dt,
                seconds_per_image=dt / n, feature_shape=list(f.shape))


def synth(n, d=2048, shift=0., seed=0):
    "Non-negative, correlated features (like pooled ReLU activations) from a fixed distribution."
    A = np.random.default_rng(d).standard_normal((d, 64))
    r = np.random.default_rng(seed)
    return np.abs(r.standard_normal((n, 64)) @ A.T * 0.3 + r.standard_normal((n, d)) * 0.5 + shift)


def _tr(m1, s1, m2, s2, trace_sqrt): return float(((m1 - m2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * trace_sqrt)

def eigvals_product(m1, s1, m2, s2):
    "torch-fidelity's route: sqrt of the (complex) eigenvalues of the non-symmetric product."
    ev = np.linalg.eigvals(s1 @ s2)
    return _tr(m1, s1, m2, s2, np.sqrt(ev.astype(np.complex128)).real.sum())

def symmetric_sqrt(m1, s1, m2, s2):
    "Symmetric square root of s1 by eigh, then eigvalsh(R s2 R); no Cholesky."
    w, V = np.linalg.eigh(s1)
    R = (V * np.sqrt(np.clip(w, 0, None))) @ V.T
    ev = np.linalg.eigvalsh(R @ s2 @ R)
    tol = max(ev.max(), 0) * len(ev) * np.finfo(np.float64).eps
    return _tr(m1, s1, m2, s2, np.sqrt(ev[ev > tol]).sum())

def generalized_eigh(m1, s1, m2, s2):
    "LAPACK's generalized symmetric-definite problem s2 s1 v = λ v (type 2): Cholesky of s1 inside."
    ev = scipy.linalg.eigh(s2, s1, type=2, eigvals_only=True)
    return _tr(m1, s1, m2, s2, np.sqrt(np.clip(ev, 0, None)).sum())

def torch_float32(m1, s1, m2, s2):
    "Our Cholesky route in float32 (torch), to show what single precision costs in accuracy."
    t1, t2 = torch.tensor(s1, dtype=torch.float32), torch.tensor(s2, dtype=torch.float32)
    L = torch.linalg.cholesky(t1)
    ev = torch.linalg.eigvalsh(L.T @ t2 @ L).clamp(min=0)
    d = torch.tensor(m1 - m2, dtype=torch.float32)
    return float((d * d).sum() + t1.trace() + t2.trace() - 2 * ev.sqrt().sum())


def timed(f, *args, repeats=1):
    times, v = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        try: v = f(*args)
        except Exception as e: return dict(seconds=None, value=None, error=f'{type(e).__name__}: {e}'[:200])
        times.append(time.perf_counter() - t0)
    return dict(seconds=min(times), all_seconds=times, value=v)


def bench_frechet(n, repeats, sqrtm_repeats) -> dict:
    x1, x2 = synth(n, seed=1), synth(n, shift=0.05, seed=2)
    s1, s2 = feature_stats(x1), feature_stats(x2)
    args = (*s1, *s2)
    methods = {
        'ours (frechet_distance)': timed(frechet_distance, *args, repeats=repeats),
        'scipy_sqrtm (pytorch-fid)': timed(frechet_distance_sqrtm, *args, repeats=sqrtm_repeats),
        'eigvals of product (torch-fidelity)': timed(eigvals_product, *args, repeats=sqrtm_repeats),
        'symmetric sqrt + eigvalsh': timed(symmetric_sqrt, *args, repeats=repeats),
        'scipy generalized eigh (type 2)': timed(generalized_eigh, *args, repeats=repeats),
        'float32 torch (cholesky + eigvalsh)': timed(torch_float32, *args, repeats=repeats),
    }
    if n < x1.shape[1]:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            methods['low-rank SVD from features (fid_from_features)'] = timed(fid_from_features, x1, x2, repeats=repeats)
    ref = methods['scipy_sqrtm (pytorch-fid)']['value']
    exact = None
    if n < x1.shape[1]:   # exact: Tr(C1 C2)^½ = nuclear norm of A Bᵀ (centred features / sqrt(n-1)), no 2048x2048 matrix at all
        A, B = (x1 - x1.mean(0)) / np.sqrt(n - 1), (x2 - x2.mean(0)) / np.sqrt(n - 1)
        exact = _tr(*s1, *s2, np.linalg.svd(A @ B.T, compute_uv=False).sum())
    for m in methods.values():
        m['rel_diff_vs_sqrtm'] = None if m['value'] is None else abs(m['value'] - ref) / abs(ref)
        if exact is not None: m['rel_diff_vs_exact'] = None if m['value'] is None else abs(m['value'] - exact) / abs(exact)
    ours = methods['ours (frechet_distance)']
    return dict(n_per_set=n, dims=x1.shape[1], exact=exact, methods=methods, speedup_vs_sqrtm=methods['scipy_sqrtm (pytorch-fid)']['seconds'] / ours['seconds'])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--n-images', type=int, default=64, help='images for the feature-extraction timing (default 64)')
    p.add_argument('--bs', type=int, default=32)
    p.add_argument('--repeats', type=int, default=3, help='repeats of the fast Fréchet methods (the best time is reported)')
    p.add_argument('--sqrtm-repeats', type=int, default=1, help='repeats of the slow ones (sqrtm, eigvals)')
    p.add_argument('--out', default=str(Path(__file__).parent/'fid_results.json'))
    args = p.parse_args(argv)
    res = dict(hardware=hardware(), load_average_before=os.getloadavg(), started=time.strftime('%Y-%m-%d %H:%M:%S'))
    res['features'] = {}
    devices = ['cpu'] + (['cuda'] if torch.cuda.is_available() else [])
    for dev in devices:
        r = bench_features(dev, args.n_images if dev == 'cpu' else max(args.n_images, 512), args.bs if dev == 'cpu' else 128)
        res['features'][dev] = r
        print(f"features on {dev}: {r['images_per_s']:.2f} images/s ({r['seconds_per_image']:.3f} s/image, batch {r['bs']}, {r['weights']})", flush=True)
    res['frechet'] = {}
    for case, n in (('full rank (5000 samples per set)', 5000), ('rank-deficient (1000 samples per set)', 1000)):
        r = bench_frechet(n, args.repeats, args.sqrtm_repeats)
        res['frechet'][case] = r
        print(f'\n{case}, d=2048:', flush=True)
        for k, v in r['methods'].items():
            if v['seconds'] is None: print(f'  {k:48s} failed: {v["error"]}')
            else: print(f"  {k:48s} {v['seconds']:8.3f} s   value {v['value']:.9f}   rel. diff vs sqrtm {v['rel_diff_vs_sqrtm']:.1e}"
                        + (f"   vs exact {v['rel_diff_vs_exact']:.1e}" if 'rel_diff_vs_exact' in v else ''))
        print(f"  speed-up of ours over sqrtm: {r['speedup_vs_sqrtm']:.1f}x", flush=True)
    res['load_average_after'] = os.getloadavg()
    Path(args.out).write_text(json.dumps(res, indent=1, default=str))
    print(f'\nwrote {args.out}')


if __name__ == '__main__': main()
