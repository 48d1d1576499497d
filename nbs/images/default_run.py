"""Re-make the README's three pictures of the default run: `dcgan_train` with no arguments, then its final fixed-noise grid, its
learning curves (from `metrics.csv`) and the latent explorer on its generator. Prints the hardware and the time for the README.

    python nbs/images/default_run.py [RUN_FOLDER]     # default: a new temporary folder
"""
import shutil, subprocess, sys, tempfile, time
from pathlib import Path
import matplotlib
from PIL import Image
matplotlib.use('Agg')
import matplotlib.pyplot as plt
from dcgan_course.train import plot_metrics, load_generator
from dcgan_course.explore import explorer_figure
from dcgan_course.labs import hardware

here = Path(__file__).resolve().parent
run = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp())/'digits'
t0 = time.time()
subprocess.run([shutil.which('dcgan_train') or 'dcgan_train', '--out', str(run)], check=True)
secs = time.time() - t0
with Image.open(run/'samples.png') as im:        # the run's own grid, shown at twice its size (nearest neighbour: the same pixels)
    im.resize((im.width * 2, im.height * 2), Image.NEAREST).save(here/'default_samples.png')
plot_metrics(run/'metrics.csv')
plt.savefig(here/'default_curves.png', dpi=80, bbox_inches='tight'); plt.close('all')
fig = explorer_figure(load_generator(run), dims=(0, 1, 2, 3), steps=9)
fig.savefig(here/'default_explorer.png', dpi=80, bbox_inches='tight')
n = len(list((run/'samples').glob('epoch_*.png')))
print(f"dcgan_train with no arguments: {n} epochs in {secs:.0f} s on {hardware()}; run folder {run}")
