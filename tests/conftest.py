import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch

# One intra-op thread: the tests' tensors are small, and on a 2-core machine OpenMP synchronisation costs
# more than it gains (and much more when another process holds a core).
torch.set_num_threads(1)
