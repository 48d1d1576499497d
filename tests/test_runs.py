"One owner per run folder (dcgan_course.runs): the lock, refusing a folder that holds a run, and tidying a resumed one."
import os, socket, subprocess, sys
from pathlib import Path
import pytest
from dcgan_course.runs import (claim_run_folder, lock_run_folder, release_run_folder, remove_dead_temp_files, resume_run_folder,
                               trim_metrics, run_files, RunExistsError, RunInUseError)

HOLD = ('import sys, time; from dcgan_course.runs import claim_run_folder; claim_run_folder(sys.argv[1]); '
        'print("held", flush=True); time.sleep(300)')


@pytest.fixture
def run(tmp_path):
    p = tmp_path/'run'
    yield p
    release_run_folder(p)


def dead_pid() -> int:
    p = subprocess.Popen([sys.executable, '-c', 'pass']); p.wait()
    return p.pid


@pytest.fixture
def holder(run):
    "A live process that owns `run`."
    p = subprocess.Popen([sys.executable, '-c', HOLD, str(run)], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == 'held'
    yield p
    p.kill(); p.wait(); p.stdout.close()


def test_a_second_owner_is_refused_naming_the_first(run, holder):
    with pytest.raises(RunInUseError, match=f'in use by another run \\(pid {holder.pid} on '):
        claim_run_folder(run)
    with pytest.raises(RunInUseError): claim_run_folder(run, overwrite=True)     # not even to start over
    assert (run/'run.lock').read_text().startswith(f'pid {holder.pid} ')


def test_a_killed_owners_lock_is_taken_over(run, holder):
    holder.kill(); holder.wait()
    assert (run/'run.lock').exists()
    claim_run_folder(run)
    assert (run/'run.lock').read_text().startswith(f'pid {os.getpid()} ')


def test_a_lock_file_naming_a_dead_process_is_taken_over(run):
    run.mkdir()
    (run/'run.lock').write_text(f'pid {dead_pid()} on {socket.gethostname()}, since 2026-01-01 00:00:00\n')
    assert lock_run_folder(run) is False
    assert (run/'run.lock').read_text().startswith(f'pid {os.getpid()} ')


def test_the_same_process_may_claim_again_and_release_removes_the_lock(run):
    assert lock_run_folder(run) is False
    (run/'checkpoint.pth').write_bytes(b'x')
    assert lock_run_folder(run) is True
    assert claim_run_folder(run) == run           # its own run: a notebook cell run again
    assert release_run_folder(run) and not (run/'run.lock').exists()
    with pytest.raises(RunExistsError): claim_run_folder(run)


def test_a_process_that_ends_normally_leaves_no_lock(run):
    claim = 'import sys; from dcgan_course.runs import claim_run_folder; claim_run_folder(sys.argv[1])'
    subprocess.run([sys.executable, '-c', claim, str(run)], check=True)
    assert not run.exists()                       # the lock made the folder, and nothing was written in it: gone
    run.mkdir()
    subprocess.run([sys.executable, '-c', claim, str(run)], check=True)
    assert run.is_dir() and not (run/'run.lock').exists()


@pytest.mark.parametrize('name', ['recipe.json', 'checkpoint.pth', 'metrics.csv', 'generator.safetensors', 'generator.pth', 'samples'])
def test_a_folder_that_holds_a_run_is_refused(run, name):
    run.mkdir()
    (run/name).mkdir() if name == 'samples' else (run/name).write_text('x')
    with pytest.raises(RunExistsError, match=f'already holds a run \\({name}\\)'):
        claim_run_folder(run)
    assert not (run/'run.lock').exists()           # refused: the lock is let go
    assert claim_run_folder(run, resume=True) == run and (run/name).exists()


def test_a_failed_start_or_other_files_are_not_a_run(run):
    run.mkdir()
    for f in ('error.log', 'skipped_files.txt', 'notes.txt'): (run/f).write_text('x')
    assert claim_run_folder(run) == run


def test_overwrite_removes_the_kits_files_only(run):
    run.mkdir(); (run/'samples').mkdir(); (run/'tensorboard').mkdir()
    kit = ['recipe.json', 'checkpoint.pth', 'generator.safetensors', 'generator.json', 'generator_best_fid.safetensors', 'metrics.csv',
           'samples/epoch_002.png', 'samples.png', 'skipped_files.txt', 'error.log', 'tensorboard/events.out', f'.checkpoint.pth.{dead_pid()}.tmp']
    for f in kit + ['notes.txt', 'my_images/a.png']:
        (run/f).parent.mkdir(parents=True, exist_ok=True); (run/f).write_text('x')
    claim_run_folder(run, overwrite=True)
    assert sorted(str(p.relative_to(run)) for p in run.rglob('*')) == ['my_images', 'my_images/a.png', 'notes.txt', 'run.lock']
    assert run_files(run) == []
    with pytest.raises(ValueError, match='not both'): claim_run_folder(run, resume=True, overwrite=True)


def test_rows_past_the_checkpoint_are_dropped(tmp_path):
    m = tmp_path/'metrics.csv'
    m.write_text('epoch,gen_loss,seconds\n1,0.5,1.0\n2,0.4,1.1\n3,0.3,1.2\n3,0.3,1.2\n')
    assert trim_metrics(m, 2) == 2
    assert m.read_text().splitlines() == ['epoch,gen_loss,seconds', '1,0.5,1.0', '2,0.4,1.1']
    assert trim_metrics(m, 2) == 0 and trim_metrics(tmp_path/'none.csv', 1) == 0
    assert [p.name for p in tmp_path.iterdir()] == ['metrics.csv']       # rewritten atomically: no temporary file left


def test_dead_writers_temp_files_are_removed_live_ones_kept(run):
    (run/'samples').mkdir(parents=True)
    dead, live = dead_pid(), os.getppid()      # the parent: alive, and not this process (whose own writes reuse its pid)
    files = [run/f'.checkpoint.pth.{dead}.tmp', run/'samples'/f'.epoch_003.png.{dead}.tmp', run/f'.checkpoint.pth.{live}.tmp',
             run/'.notes.tmp', run/'notes.txt']
    for f in files: f.write_text('x')
    (run/'metrics.csv').write_text('epoch\n1\n2\n3\n')
    resume_run_folder(run, 2)
    assert [f.exists() for f in files] == [False, False, True, True, True]
    assert (run/'metrics.csv').read_text().split() == ['epoch', '1', '2']
    assert remove_dead_temp_files(run) == []
