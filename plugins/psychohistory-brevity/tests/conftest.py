import sys
from pathlib import Path

# run from a checkout without installing: the module sits beside this folder
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
