"""A fork server for tests/test_faults.py: it imports the library once, then runs each `dcgan_train` command it is
sent in a forked child, with a fault planted at a low level (a rename, an fsync, a `torch.save`, a backward pass, a file
opened for writing): there the child kills itself with SIGKILL, raises an `OSError`, or makes the disk full, read-only
or size-limited.

Protocol: one JSON request per line on standard input, one JSON reply per line on standard output.
Request: {"argv": [...], "env": {...}, "fault": {...} or null, "timeout": seconds}
Reply:   {"rc": exit status (-9: killed by SIGKILL; null: timed out), "pid": the child's, "stdout": ..., "stderr": ...,
          "fired": [what the fault did, one dict each time], "seconds": ...}

A fault: {"hook": "backward" | "replace" | "fsync" | "save" | "open",
          "name": regex the file's name must match (optional), "under": folder the file must be in (optional),
          "keys": keys the object given to torch.save must have (hook "save", optional),
          "after": {"name": regex, "n": N}: armed once N renames onto a file of that name have completed (optional),
          "nth": fire at the nth matching call once armed (default 1), "sticky": fire at every later match too,
          "action": "kill" | "raise" | "fill" | "shell" | "fsize",
          "errno": for "raise", "at": "open" or "write" (the open succeeds and every write fails; default "open"),
          "path": for "fill", a file that grows until its file system is full, "argv": for "shell",
          "fsize": bytes for "fsize"}
"""
import builtins, errno as _errno, io, json, os, re, resource, signal, subprocess, sys, tempfile, time, traceback

_open = io.open          # the real one: the runner's own files never go through the hooks


def _name(path) -> str:
    return os.path.basename(os.fsdecode(path))


def _is_path(f) -> bool:
    return isinstance(f, (str, bytes, os.PathLike))


class _FailingFile:
    "A file opened for writing whose every write raises `err` (a disk that fills, a quota...)."
    def __init__(self, f, err, path): self._f, self._err, self._path = f, err, path
    def _raise(self, *a, **k): raise OSError(self._err, os.strerror(self._err), self._path)
    write = writelines = _raise
    def __enter__(self): return self
    def __exit__(self, *a): self._f.close(); return False
    def __getattr__(self, k): return getattr(self._f, k)


class Fault:
    def __init__(self, spec:dict, log:str):
        self.s, self.log = spec, log
        self.armed = spec.get('after') is None
        self.n_arm = self.n = 0
        self.doomed = {}     # fd -> path: os.open'ed files whose writes fail

    def note_replace(self, dst):
        "A rename onto `dst` has completed: arm the fault once enough renames onto its `after` name have."
        a = self.s.get('after')
        if a is None or self.armed or not re.search(a['name'], _name(dst)): return
        self.n_arm += 1
        if self.n_arm >= a.get('n', 1): self.armed = True

    def match(self, hook:str, path=None, obj=None) -> bool:
        "Does this call count? True when the fault should act on it."
        s = self.s
        if s['hook'] != hook or not self.armed: return False
        if s.get('name') or s.get('under'):
            if path is None: return False
            p = os.path.abspath(os.fsdecode(path))
            if s.get('name') and not re.search(s['name'], _name(p)): return False
            if s.get('under') and not p.startswith(os.path.abspath(s['under']) + os.sep): return False
        if s.get('keys') and not (isinstance(obj, dict) and set(s['keys']) <= set(obj)): return False
        self.n += 1
        nth = s.get('nth', 1)
        return self.n == nth or (s.get('sticky') and self.n > nth)

    def record(self, hook, path):
        with _open(self.log, 'a') as f:
            where = None if path is None else os.fsdecode(path)
            event = dict(hook=hook, path=where, action=self.s['action'], pid=os.getpid(), t=time.time())
            f.write(json.dumps(event) + '\n')

    def act(self, hook:str, path=None):
        "Do what the fault does, right here (before the hooked call runs)."
        s = self.s
        self.record(hook, path)
        if s['action'] == 'kill':
            os.kill(os.getpid(), signal.SIGKILL)
            time.sleep(60)
        elif s['action'] == 'raise':
            e = s['errno']
            raise OSError(e, os.strerror(e), None if path is None else os.fspath(path))
        elif s['action'] == 'fill':
            _fill(s['path'])
        elif s['action'] == 'shell':
            r = subprocess.run(s['argv'], stdin=subprocess.DEVNULL, capture_output=True, text=True)
            if r.returncode:
                raise RuntimeError(f"fault_runner: {' '.join(s['argv'])} failed: {(r.stderr or r.stdout).strip()}")
        elif s['action'] == 'fsize':
            resource.setrlimit(resource.RLIMIT_FSIZE, (s['fsize'], s['fsize']))
        else: raise ValueError(f"unknown fault action {s['action']!r}")


def _fill(path):
    "Grow `path` until its file system has no byte left."
    with _open(path, 'ab', buffering=0) as f:
        for chunk in (1 << 20, 1 << 16, 4096, 512, 1):
            block = b'\0' * chunk
            while True:
                try: f.write(block)
                except OSError as e:
                    if e.errno not in (_errno.ENOSPC, _errno.EDQUOT): raise
                    break


def install(fault:Fault):
    "Plant `fault` in os, builtins, io and torch."
    import torch
    orig = dict(replace=os.replace, rename=os.rename, fsync=os.fsync, os_open=os.open, os_write=os.write, open=io.open,
                save=torch.save, backward=torch.autograd.backward)
    at_write = fault.s.get('action') == 'raise' and fault.s.get('at') == 'write'

    def _renamer(f):
        def rename(src, dst, *a, **k):
            if fault.match('replace', dst): fault.act('replace', dst)
            r = f(src, dst, *a, **k)
            fault.note_replace(dst)
            return r
        return rename

    def fsync(fd):
        n = fd if isinstance(fd, int) else fd.fileno()
        try: path = os.readlink(f'/proc/self/fd/{n}')
        except OSError: path = None
        if fault.match('fsync', path): fault.act('fsync', path)
        return orig['fsync'](fd)

    def _writes(mode) -> bool: return any(c in mode for c in 'wax+')

    def open_(file, mode='r', *a, **k):
        if _is_path(file) and _writes(mode) and fault.match('open', file):
            if not at_write: fault.act('open', file)
            else:
                fault.record('open', file)
                return _FailingFile(orig['open'](file, mode, *a, **k), fault.s['errno'], os.fspath(file))
        return orig['open'](file, mode, *a, **k)

    def os_open(path, flags, *a, **k):
        w = flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND)
        if w and fault.match('open', path):
            if not at_write: fault.act('open', path)
            else:
                fault.record('open', path)
                fd = orig['os_open'](path, flags, *a, **k)
                fault.doomed[fd] = os.fspath(path)
                return fd
        return orig['os_open'](path, flags, *a, **k)

    def os_write(fd, data):
        if fd in fault.doomed:
            e = fault.s['errno']; raise OSError(e, os.strerror(e), fault.doomed[fd])
        return orig['os_write'](fd, data)

    def save(obj, f, *a, **k):
        p = f if _is_path(f) else None
        if fault.match('save', p, obj): fault.act('save', p)
        if p is not None and fault.match('open', p):    # torch.save to a path opens it in C++, out of the hooks' sight
            fault.act('open', p)
        return orig['save'](obj, f, *a, **k)

    def backward(*a, **k):
        if fault.match('backward'): fault.act('backward')
        return orig['backward'](*a, **k)

    os.replace, os.rename = _renamer(orig['replace']), _renamer(orig['rename'])
    os.fsync, os.open, os.write = fsync, os_open, os_write
    builtins.open = io.open = open_
    torch.save, torch.autograd.backward = save, backward


def _child(req:dict, out:str, err:str, log:str):
    "In the forked child: the command's output to files, the fault planted, `dcgan_train(argv)`; never returns."
    code = 1
    try:
        for fd, fn in ((0, os.devnull), (1, out), (2, err)):
            f = os.open(fn, os.O_RDWR | os.O_CREAT | os.O_TRUNC if fd else os.O_RDONLY)
            os.dup2(f, fd); os.close(f)
        sys.stdout = sys.__stdout__      # the server writes its replies there; the child's prints go to its own file
        os.environ.update(req.get('env') or {})
        if req.get('fault'): install(Fault(req['fault'], log))
        from dcgan_course.cli import dcgan_train
        try:
            dcgan_train(list(req['argv']))
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
            if isinstance(e.code, str): print(e.code, file=sys.stderr)
        except BaseException:
            traceback.print_exc(); code = 1     # as Python ends a console script that raised
    finally:
        try: sys.stdout.flush(); sys.stderr.flush()
        except Exception: pass
        os._exit(code)


def run(req:dict) -> dict:
    "Run one request in a forked child and wait for it (at most `timeout` seconds)."
    with tempfile.TemporaryDirectory(prefix='fault_runner') as d:
        out, err, log = (os.path.join(d, n) for n in ('stdout', 'stderr', 'fired'))
        sys.stdout.flush(); sys.stderr.flush()
        t0 = time.time()
        pid = os.fork()
        if pid == 0: _child(req, out, err, log)
        rc, deadline = None, t0 + req.get('timeout', 300)
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                rc = os.waitstatus_to_exitcode(status); break
            if time.time() > deadline:
                os.kill(pid, signal.SIGKILL); os.waitpid(pid, 0); break
            time.sleep(0.01)
        read = lambda fn: io.open(fn, errors='replace').read() if os.path.exists(fn) else ''
        fired = [json.loads(l) for l in read(log).splitlines() if l.strip()]
        return dict(rc=rc, pid=pid, stdout=read(out)[-20000:], stderr=read(err)[-20000:], fired=fired,
                    seconds=time.time() - t0)


def main():
    import torch, dcgan_course.cli    # noqa: F401 -- imported once, here: every child starts with them loaded
    proto = sys.stdout
    sys.stdout = sys.stderr          # nothing but replies on the protocol's stream
    proto.write(json.dumps(dict(ready=True, pid=os.getpid())) + '\n'); proto.flush()
    for line in sys.stdin:
        if not line.strip(): continue
        try: reply = run(json.loads(line))
        except Exception as e:
            reply = dict(rc=None, error=f'{type(e).__name__}: {e}', stdout='', stderr='', fired=[], pid=None)
        proto.write(json.dumps(reply) + '\n'); proto.flush()


if __name__ == '__main__':
    main()
