#!/usr/bin/env python3
"""Validates Sealgate's Kubernetes manifests and Dockerfile without a cluster.

    python3 deploy/kubernetes/validate.py              # check base, overlays/dev, overlays/prod
    python3 deploy/kubernetes/validate.py --self-test  # ... then show that broken copies fail

For each target it renders the Kustomize directory with `kubectl kustomize` (or a standalone
`kustomize build`), validates every rendered document with kubernetes-validate in strict mode
(unknown fields are errors) against the bundled OpenAPI schemas of each version in
KUBERNETES_VERSIONS, then checks Sealgate's own policy (hardening, probes, drain, network
policy, replay store, KMS, image digest...). It also checks the example Secrets and makes a
static check of deploy/docker/Dockerfile.

Offline: the schemas ship inside kubernetes-validate, and every socket call of this process
is refused (an attempt is an error, not a silent fetch); kubectl runs with an unreachable
proxy and an empty kubeconfig, so it cannot fetch a remote base or reach a cluster either.

Exit status: 0 all good, 1 a check failed, 2 something needed is missing (kubectl, a package).
Needs Python 3.9+ and the packages pinned in deploy/kubernetes/requirements.txt.
"""

from __future__ import annotations

import argparse
import base64
import concurrent.futures
import copy
import functools
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

HERE = Path(__file__).resolve().parent
DOCKERFILE = HERE.parent / "docker" / "Dockerfile"

# 1.30: the oldest release with the preStop `sleep` handler on by default (the manifests need
# it); 1.37: the newest schema set kubernetes-validate 1.37.0 ships.
KUBERNETES_VERSIONS = ("1.30", "1.37")

GATEWAY_DEPLOYMENT = "sealgate"
GATEWAY_CONTAINER = "sealgate"
KEYS_IMPORT_CONTAINER = "keys-import"
METRICS_PORT = 9464
TLS_PORT = 8443
MONITORING_NAMESPACE = "monitoring"
DEFAULT_DRAIN_SECONDS = 30.0  # sealgate serve --drain-timeout default
DEFAULT_GRACE_SECONDS = 30  # Kubernetes' terminationGracePeriodSeconds default

# Flags that take no value, so `--flag next` is not read as `--flag=next`.
BOOLEAN_FLAGS = {
    "--aws-kms",
    "--replay-store-fail-open",
    "--metrics-tenant-label",
    "--danger-allow-anonymous",
    "--danger-allow-plaintext-models",
    "--danger-plaintext-bench",
}
# Environment variables that must come from a Secret (valueFrom.secretKeyRef), never a value.
SECRET_ENV = re.compile(r"(PASSWORD|PASSWD|SECRET|TOKEN|PASSPHRASE|_PIN$|ACCESS_KEY)", re.I)
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "Pod", "CronJob"}


class SetupError(Exception):
    """Something the validator needs is missing: exit 2, not a failed check."""


# ---------------------------------------------------------------------------------------------
# Offline guard and dependencies


def forbid_network() -> None:
    """Makes every socket connection of this process an error, so a library that tried to
    fetch a schema would fail loudly instead of quietly depending on the network."""

    def refuse(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("validate.py attempted a network connection; it must run offline")

    socket.socket.connect = refuse  # type: ignore[method-assign]
    socket.socket.connect_ex = refuse  # type: ignore[method-assign]
    socket.create_connection = refuse  # type: ignore[assignment]
    socket.getaddrinfo = refuse  # type: ignore[assignment]


def import_dependencies() -> tuple[Any, Any, str]:
    missing = []
    try:
        import yaml  # noqa: F401
    except ImportError:
        missing.append("PyYAML")
    try:
        import kubernetes_validate  # noqa: F401
        from kubernetes_validate import utils as kv_utils  # noqa: F401
    except ImportError:
        missing.append("kubernetes-validate")
    if missing:
        raise SetupError(
            f"missing Python package(s): {', '.join(missing)}; install them with\n"
            f"  python3 -m pip install -r {HERE / 'requirements.txt'}"
        )
    import yaml
    from kubernetes_validate import utils as kv_utils

    try:
        from kubernetes_validate.version import __version__ as kv_version
    except ImportError:
        kv_version = "unknown"
    shipped = {kv_utils.major_minor(v) for v in kv_utils.all_versions()}
    absent = [v for v in KUBERNETES_VERSIONS if v not in shipped]
    if absent:
        raise SetupError(
            f"kubernetes-validate {kv_version} ships no schemas for Kubernetes {', '.join(absent)} "
            f"(it has {min(shipped)} to {max(shipped, key=lambda v: tuple(map(int, v.split('.'))))}); "
            f"install the version pinned in {HERE / 'requirements.txt'}"
        )
    return yaml, kv_utils, kv_version


def find_renderer() -> list[str]:
    """The command that renders a Kustomize directory (the directory is appended)."""
    if os.environ.get("KUBECTL"):
        chosen = shutil.which(os.environ["KUBECTL"])
        if not chosen:
            raise SetupError(f"KUBECTL={os.environ['KUBECTL']} is not an executable kubectl")
        return [chosen, "kustomize"]
    kubectl = shutil.which("kubectl")
    if kubectl:
        return [kubectl, "kustomize"]
    kustomize = shutil.which("kustomize")
    if kustomize:
        return [kustomize, "build"]
    raise SetupError(
        "neither kubectl nor kustomize is on PATH: install kubectl (its `kubectl kustomize` "
        "embeds Kustomize v5) or a standalone kustomize v5, or set KUBECTL=/path/to/kubectl"
    )


def renderer_version(renderer: list[str]) -> str:
    try:
        if renderer[1] == "kustomize":
            out = subprocess.run([renderer[0], "version", "--client", "-o", "json"], env=offline_env(),
                                 capture_output=True, text=True, timeout=20)
            info = json.loads(out.stdout)
            return f"kubectl {info['clientVersion']['gitVersion']}, Kustomize {info.get('kustomizeVersion', '?')}"
        out = subprocess.run([renderer[0], "version"], capture_output=True, text=True, timeout=20)
        return f"kustomize {out.stdout.strip()}"
    except Exception:  # the version is informative only
        return " ".join(renderer)


def offline_env() -> dict[str, str]:
    env = dict(os.environ)
    for name in ("NO_PROXY", "no_proxy"):
        env.pop(name, None)
    # An unreachable proxy: any remote base or git URL fails at once instead of being fetched.
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"):
        env[name] = "http://127.0.0.1:9"
    env["KUBECONFIG"] = os.devnull
    return env


# ---------------------------------------------------------------------------------------------
# Findings


@dataclass
class Finding:
    where: str  # the target: base, overlays/prod, Dockerfile...
    check: str  # a short id, such as policy/read-only-root
    message: str

    def __str__(self) -> str:
        return f"FAIL {self.where}: [{self.check}] {self.message}"


@dataclass
class Report:
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def fail(self, where: str, check: str, message: str) -> None:
        self.findings.append(Finding(where, check, message))


# ---------------------------------------------------------------------------------------------
# Rendering and schema validation


@dataclass
class Target:
    name: str  # relative to deploy/kubernetes
    profile: str  # base, dev or prod: which policy applies


TARGETS = (Target("base", "base"), Target("overlays/dev", "dev"), Target("overlays/prod", "prod"))
EXAMPLES = "examples/secrets.example.yaml"


class Validator:
    def __init__(self, yaml_mod: Any, kv_utils: Any, renderer: list[str]):
        self.yaml = yaml_mod
        self.loader = getattr(yaml_mod, "CSafeLoader", yaml_mod.SafeLoader)  # libyaml when present
        self.kv = kv_utils
        self.renderer = renderer
        self._schema_cache: dict[tuple[str, str], Optional[str]] = {}
        self._lock = threading.Lock()
        # kubernetes-validate re-reads its 1.4 MB definitions file on every call; reading each
        # schema file once makes the checks several times faster (same files, same results).
        for name in ("schema_contents", "all_versions"):
            original = getattr(kv_utils, name, None)
            if callable(original) and not hasattr(original, "cache_info"):
                setattr(kv_utils, name, functools.lru_cache(maxsize=None)(original))

    def load_all(self, text: str) -> list[dict]:
        return [d for d in self.yaml.load_all(text, Loader=self.loader) if d]

    def render(self, directory: Path) -> tuple[list[dict], Optional[str]]:
        try:
            out = subprocess.run(self.renderer + [str(directory)], capture_output=True, text=True,
                                 env=offline_env(), timeout=60)
        except subprocess.TimeoutExpired:
            return [], "rendering took over 60 s"
        if out.returncode != 0:
            return [], (out.stderr.strip() or out.stdout.strip() or f"exit status {out.returncode}")
        try:
            docs = self.load_all(out.stdout)
        except self.yaml.YAMLError as e:
            return [], f"the rendered output is not YAML: {e}"
        return docs, None

    def schema_errors(self, doc: dict) -> list[str]:
        """Strict schema errors of one document for every version (memoized by content)."""
        errors = []
        canonical = json.dumps(doc, sort_keys=True)
        for version in KUBERNETES_VERSIONS:
            key = (version, canonical)
            with self._lock:
                cached = key in self._schema_cache
                result = self._schema_cache.get(key)
            if not cached:
                result = self._schema_error(doc, version)
                with self._lock:
                    self._schema_cache[key] = result
            if result:
                errors.append(result)
        return errors

    def _schema_error(self, doc: dict, version: str) -> Optional[str]:
        kv = self.kv
        try:
            kv.validate(copy.deepcopy(doc), version, strict=True)
            return None
        except kv.ValidationError as e:
            path = ".".join(str(p) for p in e.path) or "(document)"
            return f"Kubernetes {version}: {path}: {e.message}"
        except kv.SchemaNotFoundError as e:
            return f"Kubernetes {version}: {e.message} (a typo in kind or apiVersion?)"
        except kv.VersionNotSupportedError as e:
            return f"Kubernetes {version}: {e.message}"
        except Exception as e:  # a malformed document (no kind...) or an unresolvable schema
            return f"Kubernetes {version}: cannot validate: {type(e).__name__}: {e}"


def kind_name(doc: dict) -> str:
    return f"{doc.get('kind', '?')}/{(doc.get('metadata') or {}).get('name', '?')}"


# ---------------------------------------------------------------------------------------------
# Helpers over rendered documents


def pod_spec_of(doc: dict) -> Optional[dict]:
    kind = doc.get("kind")
    spec = doc.get("spec") or {}
    if kind == "Pod":
        return spec
    if kind == "CronJob":
        return (((spec.get("jobTemplate") or {}).get("spec") or {}).get("template") or {}).get("spec")
    if kind in WORKLOAD_KINDS:
        return (spec.get("template") or {}).get("spec")
    return None


def pod_labels_of(doc: dict) -> dict:
    if doc.get("kind") == "Pod":
        return (doc.get("metadata") or {}).get("labels") or {}
    return (((doc.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("labels") or {}


def all_containers(pod: dict) -> list[tuple[str, dict]]:
    out = []
    for kind in ("initContainers", "containers", "ephemeralContainers"):
        for c in pod.get(kind) or []:
            out.append((kind, c))
    return out


def selector_matches(selector: Optional[dict], labels: dict) -> bool:
    """A LabelSelector against labels; an empty selector matches everything."""
    if selector is None:
        return False
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def parse_flags(argv: list[str]) -> dict[str, list[Optional[str]]]:
    """`--name=value`, `--name value` and boolean `--name` into {name: [values]}."""
    flags: dict[str, list[Optional[str]]] = {}
    i = 0
    while i < len(argv):
        arg = str(argv[i])
        if arg.startswith("--"):
            if "=" in arg:
                name, value = arg.split("=", 1)
            elif arg not in BOOLEAN_FLAGS and i + 1 < len(argv) and not str(argv[i + 1]).startswith("-"):
                name, value = arg, str(argv[i + 1])
                i += 1
            else:
                name, value = arg, None
            flags.setdefault(name, []).append(value)
        i += 1
    return flags


def as_int(value: Any, default: int) -> int:
    """An integer field of a document that may be schema-invalid (the schema check reports that)."""
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def flag(flags: dict, name: str) -> Optional[str]:
    values = flags.get(name)
    return values[-1] if values else None


DURATION_UNITS = {
    "ns": 1e-9, "nsec": 1e-9, "us": 1e-6, "usec": 1e-6, "ms": 1e-3, "msec": 1e-3, "millis": 1e-3,
    "s": 1, "sec": 1, "secs": 1, "second": 1, "seconds": 1,
    "m": 60, "min": 60, "mins": 60, "minute": 60, "minutes": 60,
    "h": 3600, "hr": 3600, "hrs": 3600, "hour": 3600, "hours": 3600,
    "d": 86400, "day": 86400, "days": 86400,
}


def parse_duration(text: str) -> Optional[float]:
    """A humantime duration (`30s`, `1m 30s`, `500ms`) in seconds; None when unreadable."""
    parts = re.findall(r"(\d+)\s*([a-z]+)", text.strip().lower())
    if not parts or re.sub(r"[\d\sa-z]", "", text.lower()):
        return None
    total = 0.0
    for number, unit in parts:
        if unit not in DURATION_UNITS:
            return None
        total += int(number) * DURATION_UNITS[unit]
    return total


def resolve_port(port: Any, container: dict) -> Optional[int]:
    """A probe's or Service's port (number or name) as a container port number."""
    if isinstance(port, int):
        return port
    if isinstance(port, str) and port.isdigit():
        return int(port)
    for p in container.get("ports") or []:
        if p.get("name") == port:
            return p.get("containerPort")
    return None


def listen_port(value: Optional[str]) -> tuple[Optional[str], Optional[int]]:
    if not value or ":" not in value:
        return None, None
    host, _, port = value.rpartition(":")
    return host.strip("[]"), int(port) if port.isdigit() else None


# ---------------------------------------------------------------------------------------------
# Sealgate's policy over one rendered target


class Policy:
    def __init__(self, report: Report, where: str, docs: list[dict], profile: str):
        self.report = report
        self.where = where
        self.docs = docs
        self.profile = profile

    def fail(self, check: str, message: str) -> None:
        self.report.fail(self.where, check, message)

    def of_kind(self, kind: str) -> list[dict]:
        return [d for d in self.docs if d.get("kind") == kind]

    # -- entry point

    def run(self) -> None:
        self.check_every_workload()
        self.check_no_private_keys()
        gateway = self.gateway()
        if gateway is None:
            return
        deployment, pod, container = gateway
        labels = pod_labels_of(deployment)
        gflags = parse_flags(list(container.get("command") or []) + list(container.get("args") or []))
        self.check_entrypoint(container)
        self.check_listeners(container, gflags)
        self.check_probes(container)
        self.check_drain(pod, container, gflags)
        self.check_data_dir(pod, container, gflags)
        self.check_rollout(deployment)
        max_replicas = self.check_scaling(deployment)
        self.check_replay_store(container, gflags, pod, max_replicas)
        self.check_network_policy(labels, container)
        self.check_services(labels, container)
        if self.profile == "prod":
            self.check_prod(deployment, pod, container, gflags, labels)

    def gateway(self) -> Optional[tuple[dict, dict, dict]]:
        deployments = [d for d in self.of_kind("Deployment") if d["metadata"].get("name") == GATEWAY_DEPLOYMENT]
        if len(deployments) != 1:
            self.fail("policy/gateway", f"expected one Deployment named {GATEWAY_DEPLOYMENT}, found {len(deployments)}")
            return None
        deployment = deployments[0]
        pod = pod_spec_of(deployment) or {}
        containers = [c for c in pod.get("containers") or [] if c.get("name") == GATEWAY_CONTAINER]
        if len(containers) != 1:
            self.fail("policy/gateway", f"Deployment/{GATEWAY_DEPLOYMENT} has no container named {GATEWAY_CONTAINER}")
            return None
        return deployment, pod, containers[0]

    # -- every workload, every container

    def check_every_workload(self) -> None:
        for doc in self.docs:
            pod = pod_spec_of(doc)
            if pod is None:
                continue
            what = kind_name(doc)
            psc = pod.get("securityContext") or {}
            for host in ("hostNetwork", "hostPID", "hostIPC"):
                if pod.get(host):
                    self.fail("policy/host-namespaces", f"{what}: {host} is true")
            if pod.get("automountServiceAccountToken") is not False:
                self.fail("policy/service-account-token",
                          f"{what}: automountServiceAccountToken must be false (the gateway calls no Kubernetes API)")
            for vol in pod.get("volumes") or []:
                if "hostPath" in vol:
                    self.fail("policy/host-path", f"{what}: volume {vol.get('name')} is a hostPath")
            for kind, c in all_containers(pod):
                self.check_container_security(f"{what} {kind[:-1]} {c.get('name')}", psc, c)
                self.check_env_secrets(f"{what} {kind[:-1]} {c.get('name')}", c)

    def check_container_security(self, who: str, psc: dict, c: dict) -> None:
        sc = c.get("securityContext") or {}

        def effective(key: str) -> Any:
            return sc[key] if key in sc else psc.get(key)

        if effective("runAsNonRoot") is not True:
            self.fail("policy/run-as-non-root", f"{who}: runAsNonRoot must be true")
        if effective("runAsUser") == 0:
            self.fail("policy/run-as-non-root", f"{who}: runAsUser is 0 (root)")
        if sc.get("readOnlyRootFilesystem") is not True:
            self.fail("policy/read-only-root", f"{who}: securityContext.readOnlyRootFilesystem must be true")
        if sc.get("allowPrivilegeEscalation") is not False:
            self.fail("policy/no-privilege-escalation", f"{who}: securityContext.allowPrivilegeEscalation must be false")
        if sc.get("privileged"):
            self.fail("policy/privileged", f"{who}: privileged is true")
        caps = sc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            self.fail("policy/capabilities", f"{who}: securityContext.capabilities.drop must contain ALL")
        if caps.get("add"):
            self.fail("policy/capabilities", f"{who}: adds capabilities {caps['add']}")
        seccomp = (sc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            self.fail("policy/seccomp", f"{who}: seccompProfile must be RuntimeDefault (found {seccomp})")

    def check_env_secrets(self, who: str, c: dict) -> None:
        for env in c.get("env") or []:
            name = env.get("name", "")
            if SECRET_ENV.search(name) and "value" in env:
                self.fail("policy/secret-in-env",
                          f"{who}: env {name} has a literal value; take it from a Secret (valueFrom.secretKeyRef)")

    def check_no_private_keys(self) -> None:
        for doc in self.docs:
            text = json.dumps(doc)
            for blob in [text] + [self._decoded(v) for v in self._binary_values(doc)]:
                if re.search(r"-----BEGIN [A-Z ]*PRIVATE KEY-----", blob):
                    self.fail("policy/no-key-material", f"{kind_name(doc)} carries a PEM private key")
                    break

    @staticmethod
    def _binary_values(doc: dict) -> Iterable[str]:
        if doc.get("kind") == "Secret":
            yield from (doc.get("data") or {}).values()
        if doc.get("kind") == "ConfigMap":
            yield from (doc.get("binaryData") or {}).values()

    @staticmethod
    def _decoded(value: Any) -> str:
        try:
            return base64.b64decode(str(value)).decode("utf-8", "replace")
        except Exception:
            return ""

    # -- the gateway container

    def check_entrypoint(self, container: dict) -> None:
        command = container.get("command")
        if command and Path(str(command[0])).name != "sealgate":
            self.fail("policy/entrypoint",
                      f"container {GATEWAY_CONTAINER}: command {command} hides the gateway's flags from these "
                      f"checks; keep the image's ENTRYPOINT [\"sealgate\"] and set args only")
        args = list(container.get("args") or [])
        if not args or args[0] != "serve":
            self.fail("policy/entrypoint", f"container {GATEWAY_CONTAINER}: args must start with `serve` (found {args[:1]})")

    def check_listeners(self, container: dict, gflags: dict) -> None:
        ports = {p.get("containerPort"): p for p in container.get("ports") or []}
        host, port = listen_port(flag(gflags, "--metrics-listen") or "127.0.0.1:9464")
        if port != METRICS_PORT or host in ("127.0.0.1", "localhost", "::1"):
            self.fail("policy/metrics-listen",
                      f"--metrics-listen must be 0.0.0.0:{METRICS_PORT} so the kubelet's probes reach it "
                      f"(found {flag(gflags, '--metrics-listen') or 'the default 127.0.0.1:9464'})")
        host, port = listen_port(flag(gflags, "--listen") or "127.0.0.1:8443")
        if port != TLS_PORT or host in ("127.0.0.1", "localhost", "::1"):
            self.fail("policy/listen", f"--listen must be 0.0.0.0:{TLS_PORT} (found {flag(gflags, '--listen')})")
        for number in (TLS_PORT, METRICS_PORT):
            if number not in ports:
                self.fail("policy/ports", f"container {GATEWAY_CONTAINER} declares no containerPort {number}")

    def check_probes(self, container: dict) -> None:
        wanted = {"readinessProbe": {"/readyz"}, "livenessProbe": {"/healthz"}, "startupProbe": {"/healthz", "/readyz"}}
        for probe_name, paths in wanted.items():
            probe = container.get(probe_name)
            if not probe:
                self.fail("policy/probes", f"container {GATEWAY_CONTAINER} has no {probe_name}")
                continue
            http = probe.get("httpGet")
            if not http:
                self.fail("policy/probes", f"{probe_name} must be an httpGet on the metrics port {METRICS_PORT}")
                continue
            if http.get("path") not in paths:
                self.fail("policy/probes", f"{probe_name} must GET {' or '.join(sorted(paths))} (found {http.get('path')})")
            port = resolve_port(http.get("port"), container)
            if port != METRICS_PORT:
                self.fail("policy/probes",
                          f"{probe_name} goes to port {http.get('port')} ({port}); it must use the metrics port "
                          f"{METRICS_PORT}, plain HTTP (port {TLS_PORT} needs TLS and closes when draining)")
            if (http.get("scheme") or "HTTP") != "HTTP":
                self.fail("policy/probes", f"{probe_name} must use scheme HTTP (the metrics port has no TLS)")

    def check_drain(self, pod: dict, container: dict, gflags: dict) -> None:
        pre_stop = (container.get("lifecycle") or {}).get("preStop")
        sleep_seconds = 0.0
        if not pre_stop:
            self.fail("policy/pre-stop", f"container {GATEWAY_CONTAINER} has no lifecycle.preStop: SIGTERM would "
                                         "close the listener while the pod is still in the Service's endpoints")
        elif "sleep" in pre_stop:
            sleep_seconds = float((pre_stop.get("sleep") or {}).get("seconds") or 0)
        elif "exec" in pre_stop:
            cmd = (pre_stop.get("exec") or {}).get("command") or []
            numbers = [float(x) for x in cmd if re.fullmatch(r"\d+(\.\d+)?", str(x))]
            sleep_seconds = numbers[-1] if numbers else 0.0
        if pre_stop and sleep_seconds < 1:
            self.fail("policy/pre-stop", "the preStop hook must wait (sleep) a few seconds so the endpoint is removed first")
        drain_text = flag(gflags, "--drain-timeout")
        drain = DEFAULT_DRAIN_SECONDS if drain_text is None else parse_duration(drain_text)
        if drain is None:
            self.fail("policy/drain", f"--drain-timeout {drain_text!r} is not a duration")
            return
        if drain == 0:
            self.fail("policy/drain", "--drain-timeout=0s waits forever; no grace period can cover it")
            return
        grace = as_int(pod.get("terminationGracePeriodSeconds", DEFAULT_GRACE_SECONDS), 0)
        if grace <= sleep_seconds + drain:
            self.fail("policy/grace-period",
                      f"terminationGracePeriodSeconds {grace} must exceed preStop {sleep_seconds:g} s + "
                      f"--drain-timeout {drain:g} s, or the kubelet kills the drain half-way")

    def check_data_dir(self, pod: dict, container: dict, gflags: dict) -> None:
        data_dir = flag(gflags, "--data-dir")
        if data_dir is None:
            env = {e.get("name"): e.get("value") for e in container.get("env") or []}
            data_dir = env.get("SEALGATE_DATA_DIR")
        if not data_dir or not data_dir.startswith("/"):
            self.fail("policy/data-dir", f"--data-dir must be an absolute path on a writable volume (found {data_dir!r})")
            return
        volumes = {v.get("name"): v for v in pod.get("volumes") or []}
        mounts = sorted((m for m in container.get("volumeMounts") or []), key=lambda m: -len(m.get("mountPath", "")))
        mount = next((m for m in mounts if data_dir == m["mountPath"] or data_dir.startswith(m["mountPath"].rstrip("/") + "/")), None)
        if mount is None or mount.get("readOnly"):
            self.fail("policy/data-dir", f"--data-dir {data_dir} is not on a writable volume (the root filesystem is read-only)")
            return
        volume = volumes.get(mount.get("name")) or {}
        if "emptyDir" in volume and data_dir.rstrip("/") == mount["mountPath"].rstrip("/"):
            self.fail("policy/data-dir",
                      f"--data-dir {data_dir} is the emptyDir's mount point, which is group/other-writable and refused "
                      f"by the gateway; use a subfolder (such as {data_dir.rstrip('/')}/data)")

    def check_rollout(self, deployment: dict) -> None:
        strategy = (deployment.get("spec") or {}).get("strategy") or {}
        rolling = strategy.get("rollingUpdate") or {}
        if strategy.get("type", "RollingUpdate") != "RollingUpdate" or rolling.get("maxUnavailable") not in (0, "0%"):
            self.fail("policy/rollout", "strategy must be RollingUpdate with maxUnavailable 0 (a new pod is ready "
                                        "before an old one drains)")

    def hpas_for(self, name: str) -> list[dict]:
        return [h for h in self.of_kind("HorizontalPodAutoscaler")
                if ((h.get("spec") or {}).get("scaleTargetRef") or {}).get("name") == name
                and ((h.get("spec") or {}).get("scaleTargetRef") or {}).get("kind") == "Deployment"]

    def check_scaling(self, deployment: dict) -> int:
        replicas = as_int((deployment.get("spec") or {}).get("replicas", 1), 1)
        most = replicas
        for hpa in self.hpas_for(GATEWAY_DEPLOYMENT):
            most = max(most, as_int((hpa.get("spec") or {}).get("maxReplicas", 0), 0))
        return most

    def check_replay_store(self, container: dict, gflags: dict, pod: dict, max_replicas: int) -> None:
        env = {e.get("name"): e for e in container.get("env") or []}
        store = flag(gflags, "--replay-store") or (env.get("SEALGATE_REPLAY_STORE") or {}).get("value")
        if max_replicas > 1:
            if not store:
                self.fail("policy/replay-store",
                          f"up to {max_replicas} replicas but no --replay-store: a request replayed to another "
                          "replica would be answered again (RFC 9458 section 6.5)")
            if "--rotate-keys-every" in gflags:
                self.fail("policy/key-rotation",
                          "--rotate-keys-every with several replicas: each would rotate its own keys and the "
                          "replicas would disagree; rotate once with `sealgate keys rotate`, export, roll out")
        if store:
            if not store.startswith(("redis://", "rediss://")):
                self.fail("policy/replay-store", f"--replay-store must be redis://HOST:PORT[/DB] (found {store})")
            elif "@" in store.split("//", 1)[1].split("/", 1)[0]:
                self.fail("policy/replay-store",
                          "--replay-store has credentials in the URL; use --replay-store-password-file from a Secret")
            password_file = flag(gflags, "--replay-store-password-file")
            if password_file and not self.on_secret_volume(pod, container, password_file):
                self.fail("policy/replay-store",
                          f"--replay-store-password-file {password_file} is not on a Secret volume")

    @staticmethod
    def on_secret_volume(pod: dict, container: dict, path: str) -> bool:
        volumes = {v.get("name"): v for v in pod.get("volumes") or []}
        for m in container.get("volumeMounts") or []:
            if path.startswith(m["mountPath"].rstrip("/") + "/"):
                volume = volumes.get(m.get("name")) or {}
                if "secret" in volume:
                    return True
                projected = volume.get("projected") or {}
                if any("secret" in s for s in projected.get("sources") or []):
                    return True
        return False

    def check_network_policy(self, pod_labels: dict, container: dict) -> None:
        policies = [p for p in self.of_kind("NetworkPolicy")
                    if selector_matches((p.get("spec") or {}).get("podSelector"), pod_labels)]
        isolating = [p for p in policies if "Ingress" in ((p.get("spec") or {}).get("policyTypes") or ["Ingress"])]
        if not isolating:
            self.fail("policy/network-policy", "no NetworkPolicy isolates the gateway's pods for Ingress: the "
                                               f"plain-HTTP metrics port {METRICS_PORT} would be open to every pod")
            return
        tls_admitted = False
        for policy in isolating:
            for rule in (policy.get("spec") or {}).get("ingress") or []:
                covers_metrics = self.rule_covers(rule, METRICS_PORT, container)
                tls_admitted |= self.rule_covers(rule, TLS_PORT, container)
                if not covers_metrics:
                    continue
                peers = rule.get("from") or []
                if not peers:
                    self.fail("policy/network-policy",
                              f"{kind_name(policy)}: an ingress rule admits port {METRICS_PORT} from everyone; only "
                              f"the namespace {MONITORING_NAMESPACE!r} may reach the metrics port")
                for peer in peers:
                    if not self.is_monitoring_peer(peer):
                        self.fail("policy/network-policy",
                                  f"{kind_name(policy)}: port {METRICS_PORT} is admitted from {json.dumps(peer, sort_keys=True)}; "
                                  f"only the namespace {MONITORING_NAMESPACE!r} "
                                  f"(kubernetes.io/metadata.name: {MONITORING_NAMESPACE}) may reach it")
        if not tls_admitted:
            self.fail("policy/network-policy", f"no ingress rule admits the TLS port {TLS_PORT}: the gateway is unreachable")

    @staticmethod
    def rule_covers(rule: dict, number: int, container: dict) -> bool:
        ports = rule.get("ports")
        if not ports:
            return True
        for p in ports:
            if (p.get("protocol") or "TCP") != "TCP":
                continue
            if "port" not in p:
                return True
            port = resolve_port(p["port"], container)
            if port is None:
                continue
            end = p.get("endPort", port)
            if port <= number <= end:
                return True
        return False

    @staticmethod
    def is_monitoring_peer(peer: dict) -> bool:
        if set(peer) - {"namespaceSelector", "podSelector"} or "namespaceSelector" not in peer:
            return False
        ns = peer.get("namespaceSelector") or {}
        labels = ns.get("matchLabels") or {}
        exprs = ns.get("matchExpressions") or []
        by_label = labels == {"kubernetes.io/metadata.name": MONITORING_NAMESPACE} and not exprs
        by_expr = not labels and len(exprs) == 1 and exprs[0].get("key") == "kubernetes.io/metadata.name" \
            and exprs[0].get("operator") == "In" and exprs[0].get("values") == [MONITORING_NAMESPACE]
        return by_label or by_expr

    def check_services(self, pod_labels: dict, container: dict) -> None:
        tls_service = False
        for svc in self.of_kind("Service"):
            spec = svc.get("spec") or {}
            if not spec.get("selector") or not selector_matches({"matchLabels": spec["selector"]}, pod_labels):
                continue
            public = spec.get("type") in ("NodePort", "LoadBalancer") or spec.get("externalIPs")
            for port in spec.get("ports") or []:
                target = resolve_port(port.get("targetPort", port.get("port")), container)
                if target == TLS_PORT:
                    tls_service = True
                if target == METRICS_PORT and public:
                    self.fail("policy/metrics-exposure",
                              f"{kind_name(svc)} publishes the plain-HTTP metrics port outside the cluster ({spec.get('type')})")
        if not tls_service:
            self.fail("policy/service", f"no Service routes to the gateway's TLS port {TLS_PORT}")

    # -- production only

    def check_prod(self, deployment: dict, pod: dict, container: dict, gflags: dict, labels: dict) -> None:
        replicas = as_int((deployment.get("spec") or {}).get("replicas", 1), 0)
        if replicas < 3:
            self.fail("prod/replicas", f"Deployment/{GATEWAY_DEPLOYMENT} has {replicas} replica(s); production needs at least 3")
        pdbs = [p for p in self.of_kind("PodDisruptionBudget")
                if selector_matches((p.get("spec") or {}).get("selector"), labels)]
        if not pdbs:
            self.fail("prod/pdb", "no PodDisruptionBudget covers the gateway's pods")
        for pdb in pdbs:
            spec = pdb.get("spec") or {}
            if spec.get("maxUnavailable") in (0, "0%") or spec.get("minAvailable") in ("100%",) \
                    or (isinstance(spec.get("minAvailable"), int) and spec["minAvailable"] >= replicas):
                self.fail("prod/pdb", f"{kind_name(pdb)} allows no disruption at all: node drains would block")
            if isinstance(spec.get("maxUnavailable"), int) and spec["maxUnavailable"] > replicas - 2:
                self.fail("prod/pdb", f"{kind_name(pdb)}: maxUnavailable {spec['maxUnavailable']} of {replicas} replicas "
                                      "keeps fewer than 2 gateways")
            if isinstance(spec.get("minAvailable"), int) and spec["minAvailable"] < 2:
                self.fail("prod/pdb", f"{kind_name(pdb)}: minAvailable {spec['minAvailable']} keeps fewer than 2 gateways")
        hpas = [h for h in self.hpas_for(GATEWAY_DEPLOYMENT) if h.get("apiVersion") == "autoscaling/v2"]
        if not hpas:
            self.fail("prod/hpa", f"no autoscaling/v2 HorizontalPodAutoscaler targets Deployment/{GATEWAY_DEPLOYMENT}")
        for hpa in hpas:
            spec = hpa.get("spec") or {}
            low, high = as_int(spec.get("minReplicas", 1), 0), as_int(spec.get("maxReplicas"), 0)
            if low < 3 or high < low:
                self.fail("prod/hpa", f"{kind_name(hpa)}: minReplicas must be >= 3 and maxReplicas >= minReplicas")
        store = flag(gflags, "--replay-store")
        if not store or not store.startswith(("redis://", "rediss://")):
            self.fail("prod/replay-store", "production needs the Redis replay store: --replay-store=redis://...")
        elif not flag(gflags, "--replay-store-password-file"):
            self.fail("prod/replay-store", "--replay-store without --replay-store-password-file (Redis with no password)")
        if "--aws-kms" not in gflags:
            self.fail("prod/aws-kms", f"container {GATEWAY_CONTAINER} lacks --aws-kms")
        hpke = flag(gflags, "--hpke-key-kms") or "local:default"
        if not hpke.startswith("aws-kms:"):
            self.fail("prod/aws-kms", f"--hpke-key-kms is {hpke}; production keys are wrapped by AWS KMS (aws-kms:KEY)")
        imports = [c for c in pod.get("initContainers") or [] if c.get("name") == KEYS_IMPORT_CONTAINER]
        if not imports:
            self.fail("prod/keys-import", f"no initContainer {KEYS_IMPORT_CONTAINER}: replicas would each make their own keys")
        for c in imports:
            if "--aws-kms" not in parse_flags(list(c.get("args") or [])):
                self.fail("prod/aws-kms", f"initContainer {KEYS_IMPORT_CONTAINER} lacks --aws-kms: the bundle cannot unwrap")
        for _, c in all_containers(pod):
            argv = [str(a) for a in list(c.get("command") or []) + list(c.get("args") or [])]
            argv += [str(e.get("value", "")) for e in c.get("env") or []]
            danger = sorted({a.split("=", 1)[0] for a in argv if a.startswith("--danger")})
            danger += [e["name"] for e in c.get("env") or [] if e.get("name", "").startswith("SEALGATE_DANGER")]
            if danger:
                self.fail("prod/no-danger-flags", f"container {c.get('name')}: {', '.join(danger)} is development only")
            image = str(c.get("image", ""))
            if not re.search(r"@sha256:[0-9a-f]{64}$", image):
                self.fail("prod/image-digest", f"container {c.get('name')}: image {image} is not pinned by digest (@sha256:...)")
        for secret in self.of_kind("Secret"):
            if secret.get("data") or secret.get("stringData"):
                self.fail("prod/no-secret-data", f"{kind_name(secret)} carries data; production Secrets are created out of "
                                                 "band and only referenced by name")
        namespaces = {(d.get("metadata") or {}).get("name"): d for d in self.of_kind("Namespace")}
        ns_name = (deployment.get("metadata") or {}).get("namespace")
        ns = namespaces.get(ns_name)
        if ns is None or ((ns.get("metadata") or {}).get("labels") or {}).get("pod-security.kubernetes.io/enforce") != "restricted":
            self.fail("prod/pod-security", f"namespace {ns_name} must be rendered with pod-security.kubernetes.io/enforce: restricted")


# ---------------------------------------------------------------------------------------------
# The example Secrets (documentation) against what prod references


def secret_references(docs: list[dict]) -> tuple[dict[str, set[str]], set[str]]:
    """{secret name: keys} and the ConfigMap names the workloads of `docs` reference."""
    secrets: dict[str, set[str]] = {}
    configmaps: set[str] = set()
    for doc in docs:
        pod = pod_spec_of(doc)
        if pod is None:
            continue
        for vol in pod.get("volumes") or []:
            if "secret" in vol:
                s = vol["secret"]
                secrets.setdefault(s.get("secretName"), set()).update(i.get("key") for i in s.get("items") or [])
            if "configMap" in vol:
                configmaps.add(vol["configMap"].get("name"))
        for _, c in all_containers(pod):
            for env in c.get("env") or []:
                ref = (env.get("valueFrom") or {}).get("secretKeyRef")
                if ref:
                    secrets.setdefault(ref.get("name"), set()).add(ref.get("key"))
            for src in c.get("envFrom") or []:
                if "secretRef" in src:
                    secrets.setdefault(src["secretRef"].get("name"), set())
    return secrets, configmaps


def check_examples(report: Report, validator: Validator, path: Path, prod_docs: list[dict]) -> int:
    where = f"examples/{path.name}"
    try:
        docs = validator.load_all(path.read_text())
    except (OSError, validator.yaml.YAMLError) as e:
        report.fail(where, "examples/read", str(e))
        return 0
    for doc in docs:
        for error in validator.schema_errors(doc):
            report.fail(where, "schema", f"{kind_name(doc)}: {error}")
        values: list[str] = []
        if doc.get("kind") == "Secret":
            values += [str(v) for v in (doc.get("stringData") or {}).values()]
            values += [Policy._decoded(v) for v in (doc.get("data") or {}).values()]
        elif doc.get("kind") == "ConfigMap":
            values += [str(v) for v in (doc.get("data") or {}).values()]
            values += [Policy._decoded(v) for v in (doc.get("binaryData") or {}).values()]
        for value in values:
            if "PLACEHOLDER" not in value or "-----BEGIN" in value:
                report.fail(where, "examples/placeholders",
                            f"{kind_name(doc)}: every example value must be a PLACEHOLDER, never real material")
                break
    secrets, configmaps = secret_references(prod_docs)
    example_secrets = {d["metadata"]["name"]: set((d.get("stringData") or {}) | (d.get("data") or {}))
                       for d in docs if d.get("kind") == "Secret"}
    example_configmaps = {d["metadata"]["name"] for d in docs if d.get("kind") == "ConfigMap"}
    for name, keys in sorted(secrets.items()):
        if name not in example_secrets:
            report.fail(where, "examples/in-sync", f"overlays/prod references Secret {name}, which the example does not show")
        elif keys - example_secrets[name]:
            report.fail(where, "examples/in-sync",
                        f"Secret {name}: overlays/prod uses key(s) {sorted(keys - example_secrets[name])} the example lacks")
    for name in sorted(configmaps - example_configmaps):
        report.fail(where, "examples/in-sync", f"overlays/prod references ConfigMap {name}, which the example does not show")
    return len(docs)


# ---------------------------------------------------------------------------------------------
# Dockerfile (static)


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out, buffer = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if not buffer and (not stripped or stripped.startswith("#")):
            continue
        if buffer and stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            buffer += stripped[:-1] + " "
            continue
        buffer += stripped
        parts = buffer.split(None, 1)
        out.append((parts[0].upper(), parts[1] if len(parts) > 1 else ""))
        buffer = ""
    if buffer.strip():
        parts = buffer.split(None, 1)
        out.append((parts[0].upper(), parts[1] if len(parts) > 1 else ""))
    return out


SECRET_SOURCE = re.compile(r"(^|/)(\.sealgate|\.env|\.aws|\.ssh|\.git)(/|$)|\.(key|pem|token|p12|pfx)$|"
                           r"keys-bundle|tenants\.json|root\.key|id_rsa", re.I)


def check_dockerfile(report: Report, path: Path) -> None:
    where = "deploy/docker/Dockerfile"
    try:
        instructions = dockerfile_instructions(path.read_text())
    except OSError as e:
        report.fail(where, "docker/read", str(e))
        return
    froms = [i for i, (op, _) in enumerate(instructions) if op == "FROM"]
    if len(froms) < 2:
        report.fail(where, "docker/multi-stage", f"{len(froms)} FROM; a multi-stage build (builder + runtime) is required")
    if not froms:
        return
    final = instructions[froms[-1]:]
    users = [args.strip() for op, args in final if op == "USER"]
    if not users:
        report.fail(where, "docker/non-root", "the final stage sets no USER: the gateway would run as root")
    elif users[-1].split(":")[0] in ("0", "root"):
        report.fail(where, "docker/non-root", f"the final stage runs as USER {users[-1]}")
    for op, args in instructions:
        if op in ("COPY", "ADD"):
            words = [w for w in args.split() if not w.startswith("--")]
            if args.lstrip().startswith("["):
                try:
                    words = json.loads(args)
                except json.JSONDecodeError:
                    pass
            sources = words[:-1]
            from_stage = "--from=" in args
            for src in sources:
                if not from_stage and src.rstrip("/") in (".", "./", "*"):
                    report.fail(where, "docker/no-secrets",
                                f"{op} {args}: copies the whole build context, which may hold a .sealgate data dir "
                                "with keys; copy the sources it needs by name")
                if SECRET_SOURCE.search(src):
                    report.fail(where, "docker/no-secrets", f"{op} {args}: copies key or secret material into the image")
                if op == "ADD" and re.match(r"https?://", src):
                    report.fail(where, "docker/no-secrets", f"ADD {src}: fetch with a checksum in a RUN step instead")
        if op in ("ENV", "ARG"):
            for name in re.findall(r"([A-Za-z_][A-Za-z0-9_]*)\s*=", args) or args.split()[:1]:
                if SECRET_ENV.search(name):
                    report.fail(where, "docker/no-secrets", f"{op} {name}: secrets do not go into image layers")
    entrypoints = [args for op, args in final if op == "ENTRYPOINT"]
    try:
        entry = json.loads(entrypoints[-1]) if entrypoints else None
    except json.JSONDecodeError:
        entry = None
    if not entry or Path(str(entry[0])).name != "sealgate":
        report.fail(where, "docker/entrypoint", 'the final stage needs the exec form ENTRYPOINT ["sealgate"] (no shell)')
    envs = " ".join(args for op, args in final if op == "ENV")
    if "ORT_DYLIB_PATH" not in envs:
        report.fail(where, "docker/onnxruntime", "the final stage does not set ORT_DYLIB_PATH")
    exposed = " ".join(args for op, args in final if op == "EXPOSE").split()
    for port in (TLS_PORT, METRICS_PORT):
        if not any(p.split("/")[0] == str(port) for p in exposed):
            report.fail(where, "docker/expose", f"the final stage does not EXPOSE {port}")


# ---------------------------------------------------------------------------------------------
# Running the checks


@dataclass
class Summary:
    lines: list[str] = field(default_factory=list)


Rendered = dict  # target name -> (documents, render error or None)


def render_all(validator: Validator, root: Path, names: Iterable[str]) -> Rendered:
    names = list(names)
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(names) or 1) as pool:
        results = list(pool.map(lambda n: validator.render(root / n), names))
    return dict(zip(names, results))


def run_checks(validator: Validator, root: Path, dockerfile: Path, only: Optional[set[str]] = None,
               rendered: Optional[Rendered] = None) -> tuple[Report, Summary]:
    """Checks the targets in `only` (all when None): render targets, "examples", "docker".
    Targets already in `rendered` are not rendered again."""
    report, summary = Report(), Summary()
    selected = [t for t in TARGETS if only is None or t.name in only]
    need = {t.name for t in selected}
    if only is None or "examples" in only:
        need.add("overlays/prod")  # the examples are compared with what prod references
    have = dict(rendered or {})
    have.update(render_all(validator, root, sorted(need - set(have))))
    for target in selected:
        docs, error = have[target.name]
        if error:
            report.fail(target.name, "render", error)
            continue
        before = len(report.findings)
        for doc in docs:
            for problem in validator.schema_errors(doc):
                report.fail(target.name, "schema", f"{kind_name(doc)}: {problem}")
        schema_ok = len(report.findings) == before
        try:
            Policy(report, target.name, docs, target.profile).run()
        except Exception as e:  # a document too malformed to reason about (the schema says why)
            report.fail(target.name, "policy/unreadable", f"the policy checks could not read the documents: "
                                                          f"{type(e).__name__}: {e}")
        kinds = ", ".join(sorted({d.get("kind", "?") for d in docs}))
        status = "OK" if len(report.findings) == before else f"{len(report.findings) - before} problem(s)"
        summary.lines.append(f"{target.name:<14} {len(docs):2d} documents ({kinds}); "
                             f"schema {'OK' if schema_ok else 'FAILED'}; {target.profile} policy: {status}")
    if only is None or "examples" in only:
        before = len(report.findings)
        prod_docs, error = have["overlays/prod"]
        if error and not any(f.where == "overlays/prod" and f.check == "render" for f in report.findings):
            report.fail("overlays/prod", "render", error)
        n = check_examples(report, validator, root / EXAMPLES, prod_docs)
        status = "OK" if len(report.findings) == before else f"{len(report.findings) - before} problem(s)"
        summary.lines.append(f"{EXAMPLES} {n:2d} documents; schema, placeholders, in sync with prod: {status}")
    if only is None or "docker" in only:
        before = len(report.findings)
        check_dockerfile(report, dockerfile)
        status = "OK" if len(report.findings) == before else f"{len(report.findings) - before} problem(s)"
        summary.lines.append(f"{'Dockerfile':<14} static checks (multi-stage, non-root USER, no secrets copied, "
                             f"exec ENTRYPOINT, ORT_DYLIB_PATH, EXPOSE): {status}")
    return report, summary


# ---------------------------------------------------------------------------------------------
# Self-test: broken copies must be refused
#
# Two kinds of breakage. "source" edits a copy of the files (manifests, patches,
# kustomization, Dockerfile, examples) and renders it again, so the Kustomize wiring is part of
# what is tested. "rendered" edits the rendered documents of a clean copy: the same decision
# code, without a kubectl run per case (kubectl costs about 0.3 s of CPU per render).


@dataclass
class Breakage:
    name: str
    expect: str  # a check id that must be among the findings
    targets: set[str]  # what to check: render targets, "examples", "docker"
    source: Optional[Callable[[Path, Any], None]] = None  # edits the copy (root, yaml module)
    rendered: Optional[Callable[[list[dict]], None]] = None  # edits each target's rendered docs


def edit_yaml(path: Path, yaml_mod: Any, fn: Callable[[list], None]) -> None:
    docs = list(yaml_mod.safe_load_all(path.read_text()))
    fn(docs)
    path.write_text(yaml_mod.safe_dump_all(docs, sort_keys=False))


def edit_text(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    if old not in text:
        raise AssertionError(f"self-test: {path.name} no longer contains {old!r}; update the self-test")
    path.write_text(text.replace(old, new, 1))


def find(docs: list[dict], kind: str, name: str) -> dict:
    for d in docs:
        if d.get("kind") == kind and d["metadata"].get("name") == name:
            return d
    raise AssertionError(f"self-test: no {kind}/{name} in the rendered documents")


def gateway_pod(docs: list[dict]) -> dict:
    return find(docs, "Deployment", GATEWAY_DEPLOYMENT)["spec"]["template"]["spec"]


def gateway_container(docs: list[dict]) -> dict:
    return next(c for c in gateway_pod(docs)["containers"] if c["name"] == GATEWAY_CONTAINER)


def ingress_rules(docs: list[dict]) -> list:
    return find(docs, "NetworkPolicy", "sealgate")["spec"]["ingress"]


PROD_ARGS = "overlays/prod/deployment-args.yaml"
PROD_KUSTOMIZATION = "overlays/prod/kustomization.yaml"
PROD = {"overlays/prod"}
DEV_AND_PROD = {"overlays/dev", "overlays/prod"}


def append_prod_arg(value: str) -> Callable[[Path, Any], None]:
    def apply(root: Path, y: Any) -> None:
        edit_yaml(root / PROD_ARGS, y, lambda d: d[0].append(
            {"op": "add", "path": "/spec/template/spec/containers/0/args/-", "value": value}))
    return apply


def breakages() -> list[Breakage]:
    def add_gateway_arg(value: str) -> Callable[[list[dict]], None]:
        return lambda docs: gateway_container(docs)["args"].append(value)

    def set_security(**values: Any) -> Callable[[list[dict]], None]:
        return lambda docs: gateway_container(docs)["securityContext"].update(values)

    def metrics_from_pods(docs: list[dict]) -> None:
        ingress_rules(docs)[1]["from"].append({"podSelector": {}})

    def literal_aws_secret(docs: list[dict]) -> None:
        env = gateway_container(docs)["env"]
        for e in env:
            if e["name"] == "AWS_SECRET_ACCESS_KEY":
                e.pop("valueFrom")
                e["value"] = "not-a-real-key"

    def no_replay_store(docs: list[dict]) -> None:
        c = gateway_container(docs)
        c["args"] = [a for a in c["args"] if not a.startswith("--replay-store")]

    def docker_single_stage(root: Path, y: Any) -> None:
        text = (root / "Dockerfile").read_text()
        (root / "Dockerfile").write_text(text[text.rindex("\nFROM ") + 1:])

    def docker_copies_keys(root: Path, y: Any) -> None:
        with open(root / "Dockerfile", "a") as f:
            f.write("COPY .sealgate /var/lib/sealgate/data\n")

    B = Breakage
    return [
        # Edits of the files, rendered again with kustomize.
        B("readOnlyRootFilesystem dropped in base (reaches dev and prod)", "policy/read-only-root", DEV_AND_PROD,
          source=lambda r, y: edit_text(r / "base/deployment.yaml", "            readOnlyRootFilesystem: true\n"
                                        "            allowPrivilegeEscalation: false\n            privileged: false\n"
                                        "            capabilities:\n              drop:\n                - ALL\n"
                                        "          volumeMounts:\n            - name: state\n"
                                        "              mountPath: /var/lib/sealgate\n            - name: tmp\n"
                                        "              mountPath: /tmp\n            - name: models",
                                        "            allowPrivilegeEscalation: false\n            privileged: false\n"
                                        "            capabilities:\n              drop:\n                - ALL\n"
                                        "          volumeMounts:\n            - name: state\n"
                                        "              mountPath: /var/lib/sealgate\n            - name: tmp\n"
                                        "              mountPath: /tmp\n            - name: models")),
        B("metrics port 9464 opened to everyone in base", "policy/network-policy", PROD,
          source=lambda r, y: edit_yaml(r / "base/networkpolicy.yaml", y, lambda d: d[0]["spec"]["ingress"][1].pop("from"))),
        B("no NetworkPolicy at all", "policy/network-policy", PROD,
          source=lambda r, y: edit_text(r / "base/kustomization.yaml", "  - networkpolicy.yaml\n", "")),
        B("--danger-allow-anonymous added to prod", "prod/no-danger-flags", PROD, source=append_prod_arg("--danger-allow-anonymous")),
        B("prod without --aws-kms", "prod/aws-kms", PROD,
          source=lambda r, y: edit_yaml(r / PROD_ARGS, y, lambda d: d.__setitem__(
              0, [op for op in d[0] if op.get("value") != "--aws-kms"]))),
        B("prod image by tag, not digest", "prod/image-digest", PROD,
          source=lambda r, y: edit_text(r / PROD_KUSTOMIZATION, "    digest: sha256:" + "0" * 64, '    newTag: "1.0"')),
        B("prod renders a Secret with data (secretGenerator)", "prod/no-secret-data", PROD,
          source=lambda r, y: edit_yaml(r / PROD_KUSTOMIZATION, y, lambda d: d[0].update(
              secretGenerator=[{"name": "sealgate-redis", "literals": ["password=hunter2"]}]))),
        B("prod with 1 replica", "prod/replicas", PROD,
          source=lambda r, y: edit_yaml(r / "overlays/prod/deployment-patch.yaml", y, lambda d: d[0]["spec"].update(replicas=1))),
        B("prod without HPA and PDB", "prod/hpa", PROD,
          source=lambda r, y: edit_text(r / "base/kustomization.yaml",
                                        "  - poddisruptionbudget.yaml\n  - horizontalpodautoscaler.yaml\n", "")),
        B("base initContainer renamed: prod's patches no longer apply, the render must fail", "render", PROD,
          source=lambda r, y: edit_text(r / "base/deployment.yaml", "- name: keys-import", "- name: import-keys")),
        B("dev data dir is the emptyDir mount point itself", "policy/data-dir", {"overlays/dev"},
          source=lambda r, y: edit_text(r / "overlays/dev/deployment-patch.yaml",
                                        "--data-dir=/var/lib/sealgate/data", "--data-dir=/var/lib/sealgate")),
        B("Dockerfile: final stage USER root", "docker/non-root", {"docker"},
          source=lambda r, y: edit_text(r / "Dockerfile", "USER 65532:65532", "USER root")),
        B("Dockerfile: single stage", "docker/multi-stage", {"docker"}, source=docker_single_stage),
        B("Dockerfile: copies a .sealgate data dir", "docker/no-secrets", {"docker"}, source=docker_copies_keys),
        B("Dockerfile: COPY . (whole context)", "docker/no-secrets", {"docker"},
          source=lambda r, y: edit_text(r / "Dockerfile", "COPY Cargo.toml Cargo.lock ./", "COPY . .")),
        B("example Secret holds a PEM private key", "examples/placeholders", {"examples"},
          source=lambda r, y: edit_text(r / EXAMPLES, "tls.key: PLACEHOLDER private key (PEM)",
                                        'tls.key: "-----BEGIN PRIVATE KEY-----\\nMC4CAQAw...\\n-----END PRIVATE KEY-----"')),
        B("example Secret key out of sync with prod", "examples/in-sync", {"examples"},
          source=lambda r, y: edit_text(r / EXAMPLES, "  password: PLACEHOLDER\n", "  redis-password: PLACEHOLDER\n")),
        # Edits of the rendered documents.
        B("unknown field readinessProbe.initialDelay (strict schema)", "schema", PROD,
          rendered=lambda d: gateway_container(d)["readinessProbe"].update(initialDelay=5)),
        B("unknown top-level field spec.replica (strict schema)", "schema", PROD,
          rendered=lambda d: find(d, "Deployment", GATEWAY_DEPLOYMENT)["spec"].update(replica=3)),
        B("wrong type: replicas \"three\" (schema)", "schema", PROD,
          rendered=lambda d: find(d, "Deployment", GATEWAY_DEPLOYMENT)["spec"].update(replicas="three")),
        B("allowPrivilegeEscalation true in the keys-import initContainer", "policy/no-privilege-escalation", PROD,
          rendered=lambda d: gateway_pod(d)["initContainers"][0]["securityContext"].update(allowPrivilegeEscalation=True)),
        B("pod runs as root (runAsUser 0)", "policy/run-as-non-root", PROD,
          rendered=lambda d: gateway_pod(d)["securityContext"].update(runAsUser=0, runAsNonRoot=False)),
        B("capabilities: add NET_ADMIN, no drop ALL", "policy/capabilities", PROD,
          rendered=set_security(capabilities={"add": ["NET_ADMIN"]})),
        B("privileged container", "policy/privileged", PROD, rendered=set_security(privileged=True)),
        B("an ingress rule with no ports and no peers (every port)", "policy/network-policy", PROD,
          rendered=lambda d: ingress_rules(d).append({})),
        B("metrics port also from every pod of the namespace", "policy/network-policy", PROD, rendered=metrics_from_pods),
        B("metrics port from an ipBlock 0.0.0.0/0", "policy/network-policy", PROD,
          rendered=lambda d: ingress_rules(d).append({"from": [{"ipBlock": {"cidr": "0.0.0.0/0"}}],
                                                      "ports": [{"port": "metrics"}]})),
        B("metrics Service of type LoadBalancer", "policy/metrics-exposure", PROD,
          rendered=lambda d: find(d, "Service", "sealgate-metrics")["spec"].update(type="LoadBalancer")),
        B("readiness probe on /healthz instead of /readyz", "policy/probes", PROD,
          rendered=lambda d: gateway_container(d)["readinessProbe"]["httpGet"].update(path="/healthz")),
        B("liveness probe on the TLS port", "policy/probes", PROD,
          rendered=lambda d: gateway_container(d)["livenessProbe"]["httpGet"].update(port="https")),
        B("metrics listener on loopback (probes cannot reach it)", "policy/metrics-listen", PROD,
          rendered=lambda d: gateway_container(d)["args"].remove("--metrics-listen=0.0.0.0:9464")),
        B("no preStop hook", "policy/pre-stop", PROD, rendered=lambda d: gateway_container(d).pop("lifecycle")),
        B("terminationGracePeriodSeconds below preStop + drain", "policy/grace-period", PROD,
          rendered=lambda d: gateway_pod(d).update(terminationGracePeriodSeconds=30)),
        B("service account token mounted", "policy/service-account-token", PROD,
          rendered=lambda d: gateway_pod(d).update(automountServiceAccountToken=True)),
        B("rolling update with maxUnavailable 1", "policy/rollout", PROD,
          rendered=lambda d: find(d, "Deployment", GATEWAY_DEPLOYMENT)["spec"]["strategy"]["rollingUpdate"].update(maxUnavailable=1)),
        B("3 replicas without --replay-store", "policy/replay-store", PROD, rendered=no_replay_store),
        B("Redis password in the --replay-store URL", "policy/replay-store", PROD,
          rendered=lambda d: gateway_container(d)["args"].append("--replay-store=redis://:hunter2@sealgate-redis:6379")),
        B("--rotate-keys-every with several replicas", "policy/key-rotation", PROD,
          rendered=add_gateway_arg("--rotate-keys-every=24h")),
        B("--danger-plaintext-bench in prod", "prod/no-danger-flags", PROD,
          rendered=add_gateway_arg("--danger-plaintext-bench")),
        B("--hpke-key-kms local in prod", "prod/aws-kms", PROD,
          rendered=add_gateway_arg("--hpke-key-kms=local:default")),
        B("AWS secret key as a literal env value", "policy/secret-in-env", PROD, rendered=literal_aws_secret),
        B("prod namespace without Pod Security 'restricted'", "prod/pod-security", PROD,
          rendered=lambda d: find(d, "Namespace", "sealgate")["metadata"]["labels"].pop("pod-security.kubernetes.io/enforce")),
    ]


def make_copy(tmp: Path) -> Path:
    root = tmp / "kubernetes"
    for part in ("base", "overlays", "examples"):
        shutil.copytree(HERE / part, root / part)
    shutil.copy(DOCKERFILE, root / "Dockerfile")
    return root


def self_test(validator: Validator, control: Rendered) -> list[str]:
    """Runs every breakage; returns the names of those that were NOT refused. `control` is
    the rendering of the real files, which a copy renders to as well."""
    with tempfile.TemporaryDirectory(prefix="sealgate-selftest-") as tmp:
        clean = make_copy(Path(tmp))
        report, _ = run_checks(validator, clean, clean / "Dockerfile", rendered=control)
        if report.findings:
            return ["the unmodified copy does not pass: " + "; ".join(map(str, report.findings))]

        def one(b: Breakage) -> tuple[bool, str]:
            if b.source is not None:
                with tempfile.TemporaryDirectory(prefix="sealgate-selftest-") as case_tmp:
                    root = make_copy(Path(case_tmp))
                    b.source(root, validator.yaml)
                    reuse = {k: v for k, v in control.items() if k not in b.targets}
                    found, _ = run_checks(validator, root, root / "Dockerfile", only=b.targets, rendered=reuse)
            else:
                broken = {}
                for name in b.targets:
                    docs = copy.deepcopy(control[name][0])
                    assert b.rendered is not None
                    b.rendered(docs)
                    broken[name] = (docs, None)
                found, _ = run_checks(validator, clean, clean / "Dockerfile", only=b.targets, rendered=broken)
            matching = [f for f in found.findings if f.check == b.expect]
            if matching:
                return True, f"[{matching[0].check}] {matching[0].message}"
            return False, f"expected [{b.expect}], got: {'; '.join(map(str, found.findings)) or 'no finding at all'}"

        items = breakages()
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(2, min(4, os.cpu_count() or 2))) as pool:
            results = list(pool.map(one, items))
    missed = []
    for b, (refused, detail) in zip(items, results):
        kind = "file" if b.source else "rendered"
        print(f"  {'REFUSED' if refused else 'NOT REFUSED':<11} ({kind}) {b.name}\n      {detail}")
        if not refused:
            missed.append(b.name)
    return missed


# ---------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--self-test", action="store_true",
                        help="after the checks, break copies of the manifests on purpose and verify each is refused")
    options = parser.parse_args()
    started = time.monotonic()
    forbid_network()
    try:
        yaml_mod, kv_utils, kv_version = import_dependencies()
        renderer = find_renderer()
    except SetupError as e:
        print(f"ERROR: {e}", file=sys.stderr)
        return 2
    validator = Validator(yaml_mod, kv_utils, renderer)
    print(f"Sealgate deploy check: kubernetes-validate {kv_version} (strict; bundled schemas for Kubernetes "
          f"{' and '.join(KUBERNETES_VERSIONS)}, offline), {renderer_version(renderer)}")
    rendered = render_all(validator, HERE, [t.name for t in TARGETS])
    report, summary = run_checks(validator, HERE, DOCKERFILE, rendered=rendered)
    for line in summary.lines:
        print(f"  {line}")
    for finding in report.findings:
        print(finding, file=sys.stderr)
    if report.findings:
        print(f"FAILED: {len(report.findings)} problem(s) ({time.monotonic() - started:.1f} s)", file=sys.stderr)
        return 1
    if options.self_test:
        print(f"Self-test: {len(breakages())} deliberately broken copies, each must be refused for the expected reason:")
        missed = self_test(validator, rendered)
        if missed:
            print(f"FAILED: the validator accepted {len(missed)} broken cop(ies): {'; '.join(missed)} "
                  f"({time.monotonic() - started:.1f} s)", file=sys.stderr)
            return 1
        print(f"Self-test OK: all {len(breakages())} broken copies refused")
    print(f"OK ({time.monotonic() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
