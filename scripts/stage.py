"""The adapter every rule runs: the rule's name is the stage; the work is the library's.

The workflow's own library comes first on the path (an editable install of another
checkout in the same environment must not win), and is checked to be the one imported.
"""

import sys
from pathlib import Path

SRC = Path(snakemake.scriptdir).parent / "src"  # noqa: F821 (injected by Snakemake)
sys.path.insert(0, str(SRC))

from memorization.workflow.snakemake import check_code, run_from_snakemake  # noqa: E402

check_code(SRC)
run_from_snakemake(snakemake)  # noqa: F821
