"""A Dataset's file put where its Azure ML Data asset points: the workspace's default datastore.

The rendered `Data` asset names `azureml://datastores/workspaceblobstore/paths/specops/<name>/<version>/<spec.path>`;
before the asset is created, apply uploads the checkout's file there, into the
datastore's container of the workspace's storage account (the account that also
keeps specops' remote state), with azure-storage-blob as the state does.

An asset version is immutable, and its version is the Dataset spec's digest: a
copy already at the version's path with other bytes is refused (naming both),
never overwritten under an unchanged version. A file missing from the checkout is
one a pipeline step writes (spec validation refuses any other; the example's
generate step): that step makes the rows on Azure, and nothing is uploaded.
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from specops.errors import SpecopsError
from specops.spec import Dataset, SpecSet
from specops.state.storage import blob_service

DATASTORE_PATH = "/paths/"  # azureml://datastores/<name>/paths/<blob name>


def upload_dataset(client: Any, call: Callable[..., Any], specs: SpecSet, dataset: Dataset, asset_path: str) -> str:
    """Upload the dataset's file to `asset_path` on the default datastore; returns what was done, for the report."""
    local = specs.root / dataset.spec.path
    if not local.is_file():  # validation refuses a missing file unless a pipeline step writes it
        return f"{dataset.spec.path} is written by a pipeline step on Azure: nothing to upload"
    container, blob_name, where = _datastore_blob(client, call, dataset, asset_path)
    return _put(container, blob_name, local.read_bytes(), local.name, where)


def upload_beside(client: Any, call: Callable[..., Any], specs: SpecSet, dataset: Dataset, asset_path: str, text: str) -> str:
    """Upload a small file specops writes beside the Dataset's file (its MLTable) to `asset_path`, where that file
    is uploaded too (not one a pipeline step writes on Azure)."""
    if not (specs.root / dataset.spec.path).is_file():
        return f"{dataset.spec.path} is written by a pipeline step on Azure: nothing to upload"
    container, blob_name, where = _datastore_blob(client, call, dataset, asset_path)
    return _put(container, blob_name, text.encode(), blob_name.rsplit("/", 1)[-1], where)


def _datastore_blob(client: Any, call: Callable[..., Any], dataset: Dataset, asset_path: str) -> tuple[Any, str, str]:
    """The default datastore's container, the blob name of `asset_path` in it, and who is asking (for errors)."""
    datastore = call("Datastore", "default", client.datastores.get_default)
    _, _, blob_name = asset_path.partition(DATASTORE_PATH)
    account_url = f"{datastore.protocol or 'https'}://{datastore.account_name}.blob.{datastore.endpoint or 'core.windows.net'}"
    where = f"Dataset/{dataset.name}: datastore {datastore.name}"
    return blob_service(account_url, where).get_container_client(datastore.container_name), blob_name, where


def _put(container: Any, blob_name: str, data: bytes, local: str, where: str) -> str:
    from azure.core.exceptions import HttpResponseError, ResourceExistsError

    blob = container.get_blob_client(blob_name)
    try:
        blob.upload_blob(data, overwrite=False, length=len(data))
        return f"uploaded {local} ({len(data):,} bytes) to {blob.url}"
    except ResourceExistsError:
        pass  # the path is taken: the same bytes are fine (a re-run), other bytes are not
    except HttpResponseError as exc:
        need = (": the applying identity needs Storage Blob Data Contributor on the datastore's container"
                if exc.status_code == 403 else "")
        raise SpecopsError(f"{where}: Azure Storage refused the upload to {blob.url} ({exc.status_code}){need}") from None
    existing = blob.download_blob().readall()
    if hashlib.sha256(existing).digest() != hashlib.sha256(data).digest():
        raise SpecopsError(f"{where}: {blob.url} already holds other bytes than {local} under this Data version, and "
                           f"Azure ML data versions are immutable: change the Dataset spec (its description, say) so it "
                           f"renders a new version, which gets a path of its own")
    return f"{blob.url} already holds {local}"
