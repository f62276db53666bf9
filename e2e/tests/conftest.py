import sys
from pathlib import Path

# pytest's importlib mode keeps test folders off sys.path; the end-to-end tests share one
# helper module, named so it cannot shadow a package.
sys.path.insert(0, str(Path(__file__).parent))
