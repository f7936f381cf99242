"""A real kube-apiserver on 127.0.0.1, backed by kine over a SQLite file.

`ci/apiserver/build.sh` builds both binaries into `.tools/apiserver/`. Every start makes
new certificates: a CA, the server's serving certificate, a service-account key pair and
an administrator client certificate.

Authorization mode is RBAC, as on a real cluster. The client certificate's organization is
``system:masters``, the group that kube-apiserver's bootstrap policy binds to
cluster-admin, so the tests pass RBAC with full rights. Admission plugins are
kube-apiserver's defaults.

No kube-controller-manager, scheduler or kubelet runs, so objects are validated, admitted
and stored, but nothing acts on them. A Deployment gets no ReplicaSet, a Pod is never
scheduled, a namespace gets no ``default`` ServiceAccount unless a test creates it, and a
namespace cannot be deleted, because its finalizer never runs.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from mlship.local_servers import stop_process_group
from tests.support.network import free_port
from tests.support.paths import TOOLS

APISERVER_TOOLS = Path(os.environ.get("APISERVER_TOOLS_DIR", TOOLS / "apiserver"))
KUBE_APISERVER = APISERVER_TOOLS / "kube-apiserver"
KINE = APISERVER_TOOLS / "kine"

# Cluster IPs that the apiserver assigns to Services. Nothing routes them, because no kube-proxy runs.
SERVICE_CLUSTER_IP_RANGE = "10.0.0.0/24"
ADMIN_USER = "mlship-test-admin"
READY_TIMEOUT_SECONDS = 180.0


class KubeApiError(RuntimeError):
    """A request to which kube-apiserver returned an error status."""

    def __init__(self, method: str, path: str, status: int, body: str) -> None:
        try:
            message = json.loads(body).get("message", body)
        except ValueError:
            message = body
        super().__init__(f"{method} {path} failed with HTTP {status}: {message}")
        self.status = status
        self.message = message


class KubeClient:
    """Minimal REST client for kube-apiserver that authenticates with a client certificate."""

    def __init__(self, server: str, ca_file: Path, cert_file: Path, key_file: Path) -> None:
        self.server = server
        self.session = requests.Session()
        # Proxy variables from the environment must not send loopback traffic elsewhere.
        self.session.trust_env = False
        self.session.verify = str(ca_file)
        self.session.cert = (str(cert_file), str(key_file))

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        params: dict[str, str] | None = None,
        timeout: float = 30.0,
    ) -> Any:
        """Send a request and return the decoded JSON body, or raise KubeApiError on an error status."""
        response = self.session.request(method, self.server + path, json=body, params=params, timeout=timeout)
        if response.status_code >= 400:
            raise KubeApiError(method, path, response.status_code, response.text)
        if not response.content:
            return None
        return response.json()

    def get(self, path: str) -> Any:
        return self.request("GET", path)

    def find(self, path: str) -> Any | None:
        """Return the object at ``path``, or None when it does not exist."""
        try:
            return self.get(path)
        except KubeApiError as error:
            if error.status == 404:
                return None
            raise

    def create(self, collection_path: str, body: dict[str, Any]) -> Any:
        return self.request("POST", collection_path, body)

    def ensure(self, collection_path: str, body: dict[str, Any]) -> Any:
        """Create ``body`` unless an object of that name already exists, and return the stored object."""
        name = body["metadata"]["name"]
        try:
            return self.create(collection_path, body)
        except KubeApiError as error:
            if error.status != 409:
                raise
        return self.get(f"{collection_path}/{name}")

    def resource_path(self, api_version: str, kind: str, namespace: str | None) -> str:
        """Return the collection path of ``kind``, looked up in the server's discovery documents."""
        group_path = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
        for resource in self.get(group_path)["resources"]:
            if resource["kind"] == kind and "/" not in resource["name"]:
                if resource["namespaced"]:
                    if namespace is None:
                        raise ValueError(f"{kind} is namespaced, but no namespace was given")
                    return f"{group_path}/namespaces/{namespace}/{resource['name']}"
                return f"{group_path}/{resource['name']}"
        raise LookupError(f"the server serves no kind {kind} in {api_version}")

    def dry_run_create(self, manifest: dict[str, Any], namespace: str) -> None:
        """Create ``manifest`` with dryRun=All and strict field validation, storing nothing.

        This is what `kubectl create --dry-run=server` sends: the object passes through
        defaulting, validation (unknown fields included) and admission, and errors are
        raised as KubeApiError.
        """
        metadata = manifest.get("metadata", {})
        path = self.resource_path(manifest["apiVersion"], manifest["kind"], metadata.get("namespace", namespace))
        self.request("POST", path, manifest, params={"dryRun": "All", "fieldValidation": "Strict"})

    def ensure_namespace(self, name: str) -> None:
        """Create namespace ``name`` and its ``default`` ServiceAccount.

        kube-controller-manager creates that ServiceAccount on a real cluster. Without it
        the default ServiceAccount admission plugin rejects every Pod in the namespace.
        """
        self.ensure("/api/v1/namespaces", {"metadata": {"name": name}})
        self.ensure(f"/api/v1/namespaces/{name}/serviceaccounts", {"metadata": {"name": "default"}})


@dataclass(frozen=True)
class ClusterFiles:
    """Certificates, keys and the kubeconfig of one cluster start."""

    ca_cert: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    service_account_key: Path
    service_account_public_key: Path
    kubeconfig: Path


def _write_private_key(path: Path, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _issue_certificate(
    common_name: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Certificate | None,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    organization: str | None = None,
    server_names: tuple[str, ...] = (),
    server_ips: tuple[str, ...] = (),
    client: bool = False,
) -> x509.Certificate:
    """Sign a certificate for ``key``, or a self-signed CA certificate when ``issuer`` is None."""
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization is not None:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    subject = x509.Name(attributes)
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.subject if issuer is not None else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    if issuer is None:
        usage = x509.KeyUsage(
            digital_signature=True,
            content_commitment=False,
            key_encipherment=False,
            data_encipherment=False,
            key_agreement=False,
            key_cert_sign=True,
            crl_sign=True,
            encipher_only=False,
            decipher_only=False,
        )
        builder = builder.add_extension(usage, critical=True)
    else:
        purpose = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([purpose]), critical=False)
    if server_names or server_ips:
        alternative_names: list[x509.GeneralName] = [x509.DNSName(name) for name in server_names]
        alternative_names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in server_ips]
        builder = builder.add_extension(x509.SubjectAlternativeName(alternative_names), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def write_cluster_files(directory: Path, server_url: str) -> ClusterFiles:
    """Generate a CA, serving and client certificates, a service-account key pair and a kubeconfig."""
    directory.mkdir(parents=True, exist_ok=True)
    files = ClusterFiles(
        ca_cert=directory / "ca.crt",
        server_cert=directory / "apiserver.crt",
        server_key=directory / "apiserver.key",
        client_cert=directory / "admin.crt",
        client_key=directory / "admin.key",
        service_account_key=directory / "service-account.key",
        service_account_public_key=directory / "service-account.pub",
        kubeconfig=directory / "kubeconfig",
    )

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _issue_certificate("mlship-test-ca", ca_key, None, ca_key)
    files.ca_cert.write_bytes(ca.public_bytes(serialization.Encoding.PEM))

    server_key = ec.generate_private_key(ec.SECP256R1())
    server = _issue_certificate(
        "kube-apiserver",
        server_key,
        ca,
        ca_key,
        server_names=("localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"),
        server_ips=("127.0.0.1",),
    )
    files.server_cert.write_bytes(server.public_bytes(serialization.Encoding.PEM))
    _write_private_key(files.server_key, server_key)

    client_key = ec.generate_private_key(ec.SECP256R1())
    client = _issue_certificate(ADMIN_USER, client_key, ca, ca_key, organization="system:masters", client=True)
    files.client_cert.write_bytes(client.public_bytes(serialization.Encoding.PEM))
    _write_private_key(files.client_key, client_key)

    service_account_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _write_private_key(files.service_account_key, service_account_key)
    files.service_account_public_key.write_bytes(
        service_account_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )

    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "mlship-test",
                "cluster": {"server": server_url, "certificate-authority": str(files.ca_cert)},
            }
        ],
        "users": [
            {
                "name": ADMIN_USER,
                "user": {
                    "client-certificate": str(files.client_cert),
                    "client-key": str(files.client_key),
                },
            }
        ],
        "contexts": [{"name": "mlship-test", "context": {"cluster": "mlship-test", "user": ADMIN_USER}}],
        "current-context": "mlship-test",
    }
    files.kubeconfig.write_text(yaml.safe_dump(kubeconfig, sort_keys=False))
    files.kubeconfig.chmod(0o600)
    return files


class ServerProcess:
    """Child process whose output goes to a log file, stopped with SIGTERM and then SIGKILL."""

    def __init__(self, name: str, command: list[str], log_path: Path) -> None:
        self.name = name
        self.log_path = log_path
        with log_path.open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def exited(self) -> bool:
        return self.process.poll() is not None

    def log_tail(self, characters: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-characters:]

    def stop(self) -> None:
        stop_process_group(self.process)


def _wait_for_port(process: ServerProcess, port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.exited():
            raise RuntimeError(f"{process.name} exited early; log:\n{process.log_tail()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"{process.name} did not listen on 127.0.0.1:{port} within {timeout} s")


class Cluster:
    """kine and kube-apiserver with their files under ``root``, usable as a context manager."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.kine_port = free_port()
        self.port = free_port()
        self.server = f"https://127.0.0.1:{self.port}"
        self.processes: list[ServerProcess] = []
        self.files: ClusterFiles | None = None
        self.client: KubeClient | None = None

    def start(self) -> Cluster:
        self.root.mkdir(parents=True, exist_ok=True)
        self.files = write_cluster_files(self.root / "pki", self.server)
        try:
            self._start_kine()
            self._start_kube_apiserver()
        except BaseException:
            self.stop()
            raise
        return self

    def _start_kine(self) -> None:
        database = self.root / "kine" / "state.db"
        database.parent.mkdir(exist_ok=True)
        kine = ServerProcess(
            "kine",
            [
                str(KINE),
                "--endpoint",
                f"sqlite://{database}",
                "--listen-address",
                f"127.0.0.1:{self.kine_port}",
                # "0" turns off kine's metrics listener, which would bind every address.
                "--metrics-bind-address",
                "0",
            ],
            self.root / "kine.log",
        )
        self.processes.append(kine)
        _wait_for_port(kine, self.kine_port, timeout=60)

    def _start_kube_apiserver(self) -> None:
        assert self.files is not None
        files = self.files
        apiserver = ServerProcess(
            "kube-apiserver",
            [
                str(KUBE_APISERVER),
                f"--etcd-servers=http://127.0.0.1:{self.kine_port}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                # The endpoint reconciler rejects a loopback advertise address (v1.37), and
                # the `kubernetes` Service's endpoints would route nowhere here anyway.
                "--endpoint-reconciler-type=none",
                f"--secure-port={self.port}",
                f"--cert-dir={self.root / 'apiserver-certs'}",
                f"--tls-cert-file={files.server_cert}",
                f"--tls-private-key-file={files.server_key}",
                f"--client-ca-file={files.ca_cert}",
                "--authorization-mode=RBAC",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={files.service_account_public_key}",
                f"--service-account-signing-key-file={files.service_account_key}",
                f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
                "--profiling=false",
            ],
            self.root / "kube-apiserver.log",
        )
        self.processes.append(apiserver)
        self.client = KubeClient(self.server, files.ca_cert, files.client_cert, files.client_key)
        self._wait_ready(apiserver)

    def _wait_ready(self, apiserver: ServerProcess) -> None:
        """Poll /readyz until it returns 200, which includes the RBAC bootstrap hooks."""
        assert self.client is not None
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        last_error = "no answer yet"
        while time.monotonic() < deadline:
            if apiserver.exited():
                raise RuntimeError(f"kube-apiserver exited early; log:\n{apiserver.log_tail()}")
            try:
                response = self.client.session.get(f"{self.server}/readyz", timeout=5)
                if response.status_code == 200:
                    return
                last_error = f"HTTP {response.status_code}: {response.text[-500:]}"
            except requests.RequestException as error:
                last_error = str(error)
            time.sleep(0.5)
        raise TimeoutError(
            f"kube-apiserver not ready after {READY_TIMEOUT_SECONDS} s: {last_error}\nlog:\n{apiserver.log_tail()}"
        )

    def stop(self) -> None:
        """Stop kube-apiserver first, then kine, which stores its state."""
        for process in reversed(self.processes):
            process.stop()
        self.processes.clear()

    def __enter__(self) -> Cluster:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def load_crds(folders: list[Path]) -> list[dict[str, Any]]:
    """Read every CustomResourceDefinition from the YAML files in ``folders``."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    crds = []
    for folder in folders:
        files = sorted(folder.glob("*.yaml")) + sorted(folder.glob("*.yml"))
        if not files:
            raise FileNotFoundError(f"no CRD files (*.yaml) found in {folder}")
        for path in files:
            with path.open() as stream:
                for document in yaml.load_all(stream, Loader=loader):
                    if document and document.get("kind") == "CustomResourceDefinition":
                        crds.append(document)
    return crds


def _type_empty_array_items(schema: Any, path: str, patched: list[str]) -> None:
    """Give every ``items: {}`` under ``schema`` the type object with unknown fields kept."""
    if isinstance(schema, dict):
        if schema.get("type") == "array" and schema.get("items") == {}:
            schema["items"] = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
            patched.append(path)
        for key, child in schema.items():
            _type_empty_array_items(child, f"{path}.{key}", patched)
    elif isinstance(schema, list):
        for index, child in enumerate(schema):
            _type_empty_array_items(child, f"{path}[{index}]", patched)


def make_structural(crd: dict[str, Any]) -> list[str]:
    """Type the untyped array items in ``crd`` in place, and return the schema paths changed.

    controller-gen writes ``items: {}`` for a recursive field, such as Seldon Core v1.18.2's
    ``graph.children``, and kube-apiserver rejects that: "must not be empty for specified
    array items". Kubernetes has no $ref, so unknown fields stay for those items only and
    the rest of the schema is unchanged.
    """
    patched: list[str] = []
    for version in crd["spec"].get("versions", []):
        _type_empty_array_items(version.get("schema"), f"{version['name']}.schema", patched)
    return patched


def apply_crds(client: KubeClient, crds: list[dict[str, Any]], timeout: float = 60.0) -> list[str]:
    """Create each missing CRD, wait until all are Established, and return their names."""
    collection = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
    names = []
    for crd in crds:
        make_structural(crd)
        client.ensure(collection, crd)
        names.append(crd["metadata"]["name"])

    deadline = time.monotonic() + timeout
    pending = list(names)
    while pending:
        pending = [name for name in pending if not _is_established(client.get(f"{collection}/{name}"))]
        if not pending:
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"CRDs not Established after {timeout} s: {', '.join(pending)}")
        time.sleep(0.2)
    return names


def _is_established(crd: dict[str, Any]) -> bool:
    conditions = (crd.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)
