import os

os.environ.setdefault("HDF5_USE_FILE_LOCKING", "FALSE")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def mnist5k():
    from memorization.data import prepare_dataset

    return prepare_dataset("mnist5k")
