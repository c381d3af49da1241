"""Where an environment's records live: files in .specops/, or blobs in Azure Storage.

Everything specops records for an environment (its state, the audit log, rollout
records inside the state, incident records, SLO history) and the apply lock go
through one `Storage`, chosen by the Environment spec: `state:` unset keeps them
in the project's `.specops/` folder; `state: {account_url, container}` keeps them
in a blob container, so a CI runner that vanishes after its apply leaves the
trail where the next runner, or a person's laptop, reads it (Terraform's azurerm
backend, for specops' records):

- the state document is replaced with an ETag condition (a writer that read an
  older copy retries on the fresh one, as the local file lock serialises them);
- the audit log and SLO history are append blobs (each line one atomic block);
- the apply lock is a blob lease of LEASE_S seconds renewed while held, the blob
  naming its holder: a second apply fails at once naming it, and a holder that
  dies without letting go frees it when the lease runs out.

Names are paths relative to `.specops/` (ProjectPaths knows them); in a
container they sit under the project's name, so projects can share one.
"""
from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from specops.core.files import append_line, atomic_write
from specops.core.locks import describe_holder, exclusive, holder_info, serialized
from specops.core.paths import ProjectPaths
from specops.errors import LockHeld, SpecopsError

if TYPE_CHECKING:
    from azure.storage.blob import BlobClient, BlobServiceClient, ContainerClient

    from specops.spec import SpecSet

LEASE_S = 60  # the longest finite blob lease; renewed every LEASE_S / 4 while the lock is held
CONNECTION_STRING = "AZURE_STORAGE_CONNECTION_STRING"  # account-key or emulator access instead of Entra ID
UPDATE_ATTEMPTS = 20  # ETag retries before a state write gives up (each loses only to a commit that landed)


class Storage(Protocol):
    """What the state store, the audit log, incidents, SLO history and the apply lock need of a place."""

    def describe(self, name: str) -> str:
        """Where `name` lives, for messages and audit entries."""
        ...

    def read(self, name: str) -> str | None:
        ...

    def lines(self, name: str) -> Iterator[str]:
        """The complete lines of an appended record (a line still being written is left out)."""
        ...

    def update(self, name: str, change: Callable[[str | None], str]) -> None:
        """Replace `name` with change(current text) atomically; `change` may run again on a fresh copy."""
        ...

    def append(self, name: str, line: str) -> None:
        ...

    def write(self, name: str, text: str) -> None:
        ...

    def lock(self, name: str, what: str, actor: str) -> AbstractContextManager[None]:
        """Hold the exclusive lock `name`; LockHeld naming the holder at once if another has it."""
        ...


class LocalStorage:
    """Files below `.specops/`: atomic replaces, O_APPEND lines, flock locks (core.files, core.locks)."""

    def __init__(self, folder: Path):
        self.folder = folder

    def path(self, name: str) -> Path:
        return self.folder / name

    def describe(self, name: str) -> str:
        return str(self.path(name))

    def read(self, name: str) -> str | None:
        path = self.path(name)
        return path.read_text(encoding="utf-8") if path.exists() else None

    def lines(self, name: str) -> Iterator[str]:
        path = self.path(name)
        if not path.exists():
            return
        with path.open(encoding="utf-8") as handle:
            for line in handle:
                if line.endswith("\n"):
                    yield line

    def update(self, name: str, change: Callable[[str | None], str]) -> None:
        path = self.path(name)
        with serialized(path.with_suffix(".lock")):
            atomic_write(path, change(self.read(name)))

    def append(self, name: str, line: str) -> None:
        append_line(self.path(name), line)

    def write(self, name: str, text: str) -> None:
        atomic_write(self.path(name), text)

    def lock(self, name: str, what: str, actor: str) -> AbstractContextManager[None]:
        return exclusive(self.path(name), what, actor)


class BlobStorage:
    """Blobs under `<prefix>/` in one container (azure-storage-blob)."""

    def __init__(self, container: ContainerClient, prefix: str):
        self.container, self.prefix = container, prefix.strip("/")
        self._checked = False

    def _blob(self, name: str) -> BlobClient:
        if not self._checked:  # once per session: the infra creates the container; a fresh account gets it here
            from azure.core.exceptions import ResourceExistsError

            try:
                if not self._call(name, self.container.exists):
                    self._call(name, self.container.create_container)
            except ResourceExistsError:
                pass  # created by another process meanwhile
            self._checked = True
        return self.container.get_blob_client(f"{self.prefix}/{name}")

    def describe(self, name: str) -> str:
        return f"{self.container.url}/{self.prefix}/{name}"

    def read(self, name: str) -> str | None:
        text, _ = self._download(name)
        return text

    def lines(self, name: str) -> Iterator[str]:
        text = self.read(name) or ""
        yield from text[: text.rfind("\n") + 1].splitlines(keepends=True)

    def update(self, name: str, change: Callable[[str | None], str]) -> None:
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceExistsError, ResourceModifiedError

        blob = self._blob(name)

        def replace(new: bytes, etag: str | None) -> None:
            if etag is None:  # create only if nobody created it meanwhile
                blob.upload_blob(new, overwrite=False)
            else:
                blob.upload_blob(new, overwrite=True, etag=etag, match_condition=MatchConditions.IfNotModified)

        for _ in range(UPDATE_ATTEMPTS):
            text, etag = self._download(name)
            new = change(text).encode()
            try:
                self._call(name, partial(replace, new, etag))
                return
            except (ResourceExistsError, ResourceModifiedError):
                continue  # another writer committed first: change the copy it left
        raise SpecopsError(f"{self.describe(name)}: {UPDATE_ATTEMPTS} writers committed before this one could; try again")

    def append(self, name: str, line: str) -> None:
        from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError

        blob = self._blob(name)
        data = (line.rstrip("\n") + "\n").encode()
        try:
            self._call(name, lambda: blob.append_block(data))
        except ResourceNotFoundError:
            try:
                from azure.core import MatchConditions

                self._call(name, lambda: blob.create_append_blob(match_condition=MatchConditions.IfMissing))
            except ResourceExistsError:
                pass  # created by another writer meanwhile
            self._call(name, lambda: blob.append_block(data))

    def write(self, name: str, text: str) -> None:
        blob = self._blob(name)
        self._call(name, lambda: blob.upload_blob(text.encode(), overwrite=True))

    @contextmanager
    def lock(self, name: str, what: str, actor: str) -> Iterator[None]:
        from azure.core.exceptions import HttpResponseError, ResourceExistsError

        blob = self._blob(name)
        try:
            self._call(name, lambda: blob.upload_blob(b"{}", overwrite=False))  # the blob the lease is taken on
        except ResourceExistsError:
            pass
        try:
            lease = blob.acquire_lease(lease_duration=LEASE_S)
        except HttpResponseError as exc:
            if exc.status_code != 409:
                raise self._error(name, exc) from exc
            raise LockHeld(f"another process holds the apply lock {self.describe(name)} ({self._holder(name)}); wait for "
                           f"it to finish (a holder that died frees it within {LEASE_S}s)") from None
        stop = threading.Event()
        renewer = threading.Thread(target=_renew, args=(lease, stop), name=f"lease {name}", daemon=True)
        try:
            blob.upload_blob(json.dumps(holder_info(what, actor)).encode(), overwrite=True, lease=lease)
            renewer.start()
            yield
        finally:
            stop.set()
            if renewer.is_alive():
                renewer.join()
            try:
                blob.upload_blob(b"{}", overwrite=True, lease=lease)
                lease.release()
            except HttpResponseError:
                pass  # the lease runs out by itself within LEASE_S

    def _holder(self, name: str) -> str:
        text, _ = self._download(name)
        try:
            info = json.loads(text or "{}")
        except ValueError:
            info = {}
        return describe_holder(info) if info else "holder unknown"

    def _download(self, name: str) -> tuple[str | None, str | None]:
        from azure.core.exceptions import ResourceNotFoundError

        blob = self._blob(name)
        try:
            stream = self._call(name, blob.download_blob)
        except ResourceNotFoundError:
            return None, None
        return stream.readall().decode("utf-8"), stream.properties.etag

    def _call(self, name: str, call: Callable[[], Any]) -> Any:
        """One storage call; refusals and unreachable accounts become messages naming the blob and the role."""
        from azure.core.exceptions import (
            ClientAuthenticationError, HttpResponseError, ResourceExistsError, ResourceModifiedError, ResourceNotFoundError,
            ServiceRequestError,
        )

        try:
            return call()
        except (ResourceNotFoundError, ResourceExistsError, ResourceModifiedError):
            raise
        except ClientAuthenticationError as exc:
            raise SpecopsError(f"{self.describe(name)}: could not sign in to Azure Storage ({exc.message}); in CI, log in "
                               "with OIDC, on a workstation run `az login` (see docs/azureml.md)") from None
        except HttpResponseError as exc:
            raise self._error(name, exc) from exc
        except ServiceRequestError as exc:
            raise SpecopsError(f"{self.describe(name)}: the storage account cannot be reached ({exc})") from None

    def _error(self, name: str, exc: Any) -> SpecopsError:
        if exc.status_code == 403:
            return SpecopsError(f"{self.describe(name)}: Azure Storage refused (403): the identity needs Storage Blob Data "
                                f"Contributor on the state container (infra/ grants it to the CI identity)")
        return SpecopsError(f"{self.describe(name)}: Azure Storage answered {exc.status_code}: {exc.message}")


def _renew(lease: Any, stop: threading.Event) -> None:
    """Keep the lease while its holder works; a renewal that fails is tried again until the lease would lapse."""
    while not stop.wait(LEASE_S / 4):
        try:
            lease.renew()
        except Exception:  # a transient failure: the next try is LEASE_S / 4 later, before the lease lapses
            continue


def open_storage(specs: SpecSet) -> Storage:
    """The storage of the specs' environment: its `state:` container, or the project's .specops/ folder."""
    from specops.spec.refs import resolve

    paths = ProjectPaths(specs.root)
    remote = specs.project.spec.environments[specs.env].state
    if remote is None:
        return LocalStorage(paths.state_dir)
    where = f"Project/{specs.project.name}: spec.environments.{specs.env}.state"
    account_url = str(resolve(remote.account_url)).rstrip("/")
    return BlobStorage(_container(account_url, remote.container, where), specs.project.name)


def _container(account_url: str, container: str, where: str) -> ContainerClient:
    return blob_service(account_url, where).get_container_client(container)


def blob_service(account_url: str, where: str) -> BlobServiceClient:
    """A client for the storage account at `account_url`, signed in as specops signs in to Azure
    (core.credentials), or with AZURE_STORAGE_CONNECTION_STRING (an account key, the Azurite emulator)
    when that is set and names the same account."""
    import os

    from azure.storage.blob import BlobServiceClient

    from specops.core.credentials import azure_credential

    connection = os.environ.get(CONNECTION_STRING)
    if connection:
        service = BlobServiceClient.from_connection_string(connection)
        if service.url.rstrip("/") != account_url.rstrip("/") and service.account_name != _account_name(account_url):
            raise SpecopsError(f"{where}: the account is {account_url}, but {CONNECTION_STRING} is for {service.url}; "
                               f"unset it to sign in with Entra ID, or point it at that account")
        return service
    if not account_url.startswith("https://"):
        raise SpecopsError(f"{where}: the account must be an https:// blob endpoint (got {account_url})")
    return BlobServiceClient(account_url, credential=azure_credential())


def _account_name(account_url: str) -> str:
    from urllib.parse import urlsplit

    return urlsplit(account_url).netloc.split(".", 1)[0]
