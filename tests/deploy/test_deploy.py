"""The deployment files under deploy/: the Dockerfile and its entrypoint,
the compose file and the Kubernetes manifests.

Docker and Kubernetes cannot run on the development machines, so nothing
here starts a container. What is checked, offline: every manifest against
the Kubernetes schema (kubernetes-validate, which ships the schemas), the
compose file against the Compose Specification's JSON schema (vendored in
deploy/schema/), the shape deploy/README.md promises (one beat, two web
hosts, probes, an autoscaler on web, ...), the Dockerfile's essentials,
and the entrypoint and health check, run for real against stand-ins.
Each check is also shown to fail on a broken copy.
"""

import copy
import hashlib
import http.server
import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from mlserving.supervise import procfile_read

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
COMPOSE = DEPLOY / "compose.yaml"
COMPOSE_SCHEMA = DEPLOY / "schema" / "compose-spec.json"
# deploy/schema/README.md: where the copy came from.
COMPOSE_SCHEMA_SHA256 = (
    "d549057ebc2925f39f62799eab0db7b9e2c18b35b6c00595199116da3ed10e64"
)
DOCKERFILE = DEPLOY / "Dockerfile"
ENTRYPOINT = DEPLOY / "entrypoint.sh"
HEALTHCHECK = DEPLOY / "healthcheck.py"
# The oldest Kubernetes the manifests target (native sidecars, on by
# default since 1.29) and the newest the pinned kubernetes-validate ships.
K8S_VERSIONS = ["1.30", kubernetes_validate.latest_version()]
# What deploy/entrypoint.sh runs.
ROLES = ["web", "websockets", "ingest", "worker", "beat", "migrate"]
PROBE_HOST = "localhost"


@pytest.fixture
def no_network(monkeypatch):
    """Any connection attempt fails: validation must use only local files."""

    def refuse(*args, **kwargs):
        raise OSError("no network in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


# --- Kubernetes -------------------------------------------------------------


def k8s_documents() -> list[tuple[str, dict]]:
    """(file:kind/name, manifest) of every YAML document under deploy/k8s,
    the examples included."""
    found = []
    for path in sorted(K8S.rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is None:
                continue
            label = f"{path.relative_to(K8S)}:{doc['kind']}/{doc['metadata']['name']}"
            found.append((label, doc))
    return found


def k8s_docs() -> list[dict]:
    return [doc for _, doc in k8s_documents()]


def pod_specs(docs: list[dict]) -> list[tuple[dict, dict]]:
    """(workload, pod spec) of every Deployment and Job."""
    return [
        (doc, doc["spec"]["template"]["spec"])
        for doc in docs
        if doc["kind"] in ("Deployment", "Job")
    ]


def all_containers(pod: dict) -> list[dict]:
    return pod.get("initContainers", []) + pod["containers"]


def role_of(pod: dict) -> str:
    """The entrypoint role of a pod's main container."""
    return pod["containers"][0]["args"][0]


def deployment(docs: list[dict], role: str) -> dict:
    found = [
        doc
        for doc, pod in pod_specs(docs)
        if doc["kind"] == "Deployment" and role_of(pod) == role
    ]
    assert len(found) == 1, f"{len(found)} Deployments run {role}"
    return found[0]


def configmap_data(docs: list[dict]) -> dict:
    (data,) = [doc["data"] for doc in docs if doc["kind"] == "ConfigMap"]
    return data


def beat_problems(docs: list[dict]) -> list[str]:
    beats = [
        doc
        for doc, pod in pod_specs(docs)
        if doc["kind"] == "Deployment" and role_of(pod) == "beat"
    ]
    if len(beats) != 1:
        return [f"{len(beats)} beat Deployments"]
    spec = beats[0]["spec"]
    problems = []
    if spec.get("replicas") != 1:
        problems.append(f"beat replicas {spec.get('replicas')!r}, not 1")
    strategy = spec.get("strategy", {}).get("type")
    if strategy != "Recreate":
        problems.append(f"beat strategy {strategy!r}: two beats during a rollout")
    return problems


def web_problems(docs: list[dict]) -> list[str]:
    pod = deployment(docs, "web")["spec"]["template"]["spec"]
    (web,) = [c for c in pod["containers"] if c["args"] == ["web"]]
    ports = {p.get("name") for p in web.get("ports", [])} | {
        p["containerPort"] for p in web.get("ports", [])
    }
    problems = []
    for probe, path in [
        ("readinessProbe", "/v2/health/ready"),
        ("livenessProbe", "/v2/health/live"),
    ]:
        get = web.get(probe, {}).get("httpGet")
        if not get:
            problems.append(f"no HTTP {probe}")
            continue
        if get["path"] != path:
            problems.append(f"{probe} on {get['path']}, not {path}")
        if get["port"] not in ports:
            problems.append(f"{probe} on port {get['port']!r}, not the container's")
        hosts = [h["value"] for h in get.get("httpHeaders", []) if h["name"] == "Host"]
        if hosts != [PROBE_HOST]:
            problems.append(f"{probe} sends Host {hosts}: ALLOWED_HOSTS refuses IPs")
    resources = web.get("resources", {})
    for kind in ("requests", "limits"):
        missing = {"cpu", "memory"} - set(resources.get(kind, {}))
        if missing:
            problems.append(f"no {kind} for {sorted(missing)}")
    return problems


def hpa_problems(docs: list[dict]) -> list[str]:
    web = deployment(docs, "web")
    hpas = [
        doc
        for doc in docs
        if doc["kind"] == "HorizontalPodAutoscaler"
        and doc["spec"]["scaleTargetRef"]
        == {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": web["metadata"]["name"],
        }
    ]
    if len(hpas) != 1:
        return [f"{len(hpas)} autoscalers target the web Deployment"]
    spec = hpas[0]["spec"]
    problems = []
    if not any(
        m["type"] == "Resource" and m["resource"]["name"] == "cpu"
        for m in spec["metrics"]
    ):
        problems.append("the autoscaler does not scale on CPU")
    if spec.get("minReplicas", 1) < 2:
        problems.append("fewer than two web pods allowed")
    if "replicas" in web["spec"]:
        problems.append("web has replicas: every apply would reset the autoscaler's")
    return problems


def service_problems(docs: list[dict]) -> list[str]:
    web = deployment(docs, "web")
    pods = {
        doc["metadata"]["name"]: doc["spec"]["template"]["metadata"]["labels"]
        for doc, _ in pod_specs(docs)
    }
    web_name = web["metadata"]["name"]

    def selects(selector: dict, labels: dict) -> bool:
        return selector.items() <= labels.items()

    services = [
        doc
        for doc in docs
        if doc["kind"] == "Service" and selects(doc["spec"]["selector"], pods[web_name])
    ]
    if len(services) != 1:
        return [f"{len(services)} Services select the web pods"]
    service = services[0]
    problems = [
        f"the web Service also selects {name}'s pods"
        for name, labels in pods.items()
        if name != web_name and selects(service["spec"]["selector"], labels)
    ]
    web_ports = {
        p.get("name")
        for c in web["spec"]["template"]["spec"]["containers"]
        for p in c.get("ports", [])
    }
    for port in service["spec"]["ports"]:
        if port["targetPort"] not in web_ports:
            problems.append(f"targetPort {port['targetPort']!r} is no web port")
    return problems


def cache_problems(docs: list[dict]) -> list[str]:
    """Every pod that loads models (web, websockets, worker) caches the
    shared artifact store in an emptyDir of its own at ARTIFACT_CACHE_DIR;
    no volume is shared between pods for artifacts."""
    cache_dir = configmap_data(docs).get("ARTIFACT_CACHE_DIR")
    if not cache_dir:
        return ["no ARTIFACT_CACHE_DIR in the ConfigMap"]
    problems = [
        f"{doc['kind']}/{doc['metadata']['name']}: artifacts need no shared volume"
        for doc in docs
        if doc["kind"] == "PersistentVolumeClaim"
    ]
    for doc, pod in pod_specs(docs):
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        for volume in volumes.values():
            if "persistentVolumeClaim" in volume:
                problems.append(f"{doc['metadata']['name']} mounts a claim")
        if role_of(pod) not in ("web", "websockets", "worker"):
            continue
        mounts = [
            m["name"]
            for m in pod["containers"][0].get("volumeMounts", [])
            if m["mountPath"] == cache_dir
        ]
        if len(mounts) != 1 or "emptyDir" not in volumes.get(mounts[0], {}):
            problems.append(f"{role_of(pod)} has no emptyDir at {cache_dir}")
    return problems


def _shared_artifact_claim(docs):
    pod = _web_pod(docs)
    pod["volumes"].append(
        {"name": "shared", "persistentVolumeClaim": {"claimName": "artifacts"}}
    )


def _no_worker_cache(docs):
    pod = deployment(docs, "worker")["spec"]["template"]["spec"]
    pod["containers"][0]["volumeMounts"] = []


K8S_DOCUMENTS = k8s_documents()


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize(
    "manifest", [doc for _, doc in K8S_DOCUMENTS], ids=[i for i, _ in K8S_DOCUMENTS]
)
def test_manifest_is_valid_for_kubernetes(manifest, version, no_network):
    # strict: an unknown field (a misspelled probe) is an error too
    kubernetes_validate.validate(manifest, version, strict=True)


def _web_pod(docs):
    return deployment(docs, "web")["spec"]["template"]["spec"]


def _replicas_as_text(docs):
    deployment(docs, "beat")["spec"]["replicas"] = "one"


def _misspelled_probe(docs):
    container = _web_pod(docs)["containers"][0]
    container["livenesProbe"] = container.pop("livenessProbe")


def _no_selector(docs):
    del deployment(docs, "worker")["spec"]["selector"]


def _port_as_text(docs):
    _web_pod(docs)["containers"][0]["ports"][0]["containerPort"] = "8000"


@pytest.mark.parametrize(
    "breakage",
    [_replicas_as_text, _misspelled_probe, _no_selector, _port_as_text],
    ids=lambda f: f.__name__.strip("_"),
)
def test_a_broken_manifest_fails_validation(breakage):
    # given
    docs = copy.deepcopy(k8s_docs())
    before = {json.dumps(d, sort_keys=True) for d in docs}
    # when
    breakage(docs)
    broken = [d for d in docs if json.dumps(d, sort_keys=True) not in before]
    # then
    assert len(broken) == 1
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken[0], K8S_VERSIONS[0], strict=True)


@pytest.mark.parametrize(
    "problems",
    [beat_problems, web_problems, hpa_problems, service_problems, cache_problems],
)
def test_manifests_have_the_promised_shape(problems):
    assert problems(k8s_docs()) == []


def _two_beats(docs):
    deployment(docs, "beat")["spec"]["replicas"] = 2


def _rolling_beat(docs):
    deployment(docs, "beat")["spec"]["strategy"] = {"type": "RollingUpdate"}


def _no_readiness(docs):
    del _web_pod(docs)["containers"][0]["readinessProbe"]


def _probe_without_host(docs):
    del _web_pod(docs)["containers"][0]["livenessProbe"]["httpGet"]["httpHeaders"]


def _hpa_on_worker(docs):
    (hpa,) = [d for d in docs if d["kind"] == "HorizontalPodAutoscaler"]
    hpa["spec"]["scaleTargetRef"]["name"] = deployment(docs, "worker")["metadata"][
        "name"
    ]


def _service_on_websockets(docs):
    (service,) = [
        d
        for d in docs
        if d["kind"] == "Service" and d["metadata"]["name"].endswith("web")
    ]
    service["spec"]["selector"]["app.kubernetes.io/component"] = "websockets"


def _service_on_every_pod(docs):
    (service,) = [
        d
        for d in docs
        if d["kind"] == "Service" and d["metadata"]["name"].endswith("web")
    ]
    del service["spec"]["selector"]["app.kubernetes.io/component"]


@pytest.mark.parametrize(
    ("problems", "breakage"),
    [
        (beat_problems, _two_beats),
        (beat_problems, _rolling_beat),
        (web_problems, _no_readiness),
        (web_problems, _probe_without_host),
        (hpa_problems, _hpa_on_worker),
        (service_problems, _service_on_websockets),
        (service_problems, _service_on_every_pod),
        (cache_problems, _shared_artifact_claim),
        (cache_problems, _no_worker_cache),
    ],
    ids=lambda f: f.__name__.strip("_"),
)
def test_a_broken_shape_is_caught(problems, breakage):
    docs = copy.deepcopy(k8s_docs())
    breakage(docs)
    assert problems(docs) != []


def test_each_role_has_its_workload():
    workloads = sorted(
        (doc["kind"], role_of(pod)) for doc, pod in pod_specs(k8s_docs())
    )
    assert workloads == [
        ("Deployment", "beat"),
        ("Deployment", "web"),
        ("Deployment", "websockets"),
        ("Deployment", "worker"),
        ("Job", "migrate"),
    ]


def test_every_pod_runs_the_one_image_as_non_root():
    images = set()
    for doc, pod in pod_specs(k8s_docs()):
        name = doc["metadata"]["name"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] != 0, name
        for container in all_containers(pod):
            images.add(container["image"])
            assert container["securityContext"]["allowPrivilegeEscalation"] is False
            # the image's entrypoint runs a role, or a command is explicit
            if "command" not in container:
                assert container["args"][0] in ROLES, (name, container["name"])
    assert len(images) == 1, images


def test_web_pods_share_the_ingest_socket_with_their_sidecar():
    # given
    docs = k8s_docs()
    socket_dir = str(Path(configmap_data(docs)["EVENT_INGEST_SOCKET"]).parent)
    pod = _web_pod(docs)
    (ingest,) = [c for c in pod["initContainers"] if c.get("args") == ["ingest"]]
    (web,) = [c for c in pod["containers"] if c["args"] == ["web"]]

    def volume_at(container):
        (name,) = [
            m["name"] for m in container["volumeMounts"] if m["mountPath"] == socket_dir
        ]
        return name

    # then: a native sidecar (started first, stopped last), on the same
    # pod-local volume as the web worker
    assert ingest["restartPolicy"] == "Always"
    assert volume_at(ingest) == volume_at(web)
    (volume,) = [v for v in pod["volumes"] if v["name"] == volume_at(web)]
    assert "emptyDir" in volume


def test_probes_use_a_host_django_allows():
    docs = k8s_docs()
    allowed = configmap_data(docs)["ALLOWED_HOSTS"].split(",")
    assert PROBE_HOST in allowed
    assert configmap_data(docs)["DEBUG"] == "false"


def test_manifests_name_no_namespace():
    # `kubectl apply -n NAMESPACE -f deploy/k8s/` decides
    assert [
        d["metadata"]["name"] for d in k8s_docs() if "namespace" in d["metadata"]
    ] == []


def test_the_example_secret_is_not_applied_with_the_rest():
    # kubectl apply -f deploy/k8s/ reads the directory, not its subfolders:
    # placeholders must not overwrite the real Secret on every deploy
    top_level = [yaml.safe_load_all(p.read_text()) for p in K8S.glob("*.yaml")]
    assert not [d for docs in top_level for d in docs if d and d["kind"] == "Secret"]


# --- Compose ----------------------------------------------------------------


def compose_schema() -> dict:
    return json.loads(COMPOSE_SCHEMA.read_text())


def compose_doc() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def command_of(service: dict) -> str | None:
    command = service.get("command")
    return command[0] if command else None


def volume_at(service: dict, target: str) -> str | None:
    """The volume a compose service mounts at target."""
    for mount in service.get("volumes", []):
        source, _, mounted_at = mount.partition(":")
        if mounted_at == target:
            return source
    return None


def compose_problems(doc: dict) -> list[str]:
    services = doc["services"]
    problems = []
    by_role: dict[str, list[str]] = {}
    for name, service in services.items():
        by_role.setdefault(command_of(service), []).append(name)
    if len(by_role.get("beat", [])) != 1:
        problems.append(f"beat services: {by_role.get('beat', [])}")
    webs = by_role.get("web", [])
    if len(webs) != 2:
        problems.append(f"web services: {webs}")
    if not services.get("postgres", {}).get("image", "").startswith("postgres:16"):
        problems.append("no postgres:16")
    if not services.get("redis", {}).get("image", "").startswith("redis:7"):
        problems.append("no redis:7")
    app = {
        name: service
        for name, service in services.items()
        if name not in ("postgres", "redis")
    }
    builds = {
        json.dumps([s.get("image"), s.get("build")], sort_keys=True)
        for s in app.values()
    }
    if len(builds) != 1:
        problems.append(f"app services differ in image/build: {sorted(builds)}")
    for name, service in app.items():
        if command_of(service) not in ROLES:
            problems.append(f"{name} runs {service.get('command')}")
        if command_of(service) == "migrate":
            continue
        waits = service.get("depends_on", {}).get("migrate", {}).get("condition")
        if waits != "service_completed_successfully":
            problems.append(f"{name} does not wait for migrate")
    # no artifacts volume shared between hosts (the artifact store is in
    # PostgreSQL); each keeps its own cache. Only migrate, which registers
    # the files dropped in its volume, mounts one.
    for name, service in app.items():
        environment = service["environment"]
        if not environment.get("ARTIFACT_CACHE_DIR"):
            problems.append(f"{name} has no ARTIFACT_CACHE_DIR")
        elif volume_at(service, environment["ARTIFACT_CACHE_DIR"]):
            problems.append(f"{name} keeps its artifact cache on a volume")
        root = volume_at(service, environment["ARTIFACTS_ROOT"])
        if root and command_of(service) != "migrate":
            problems.append(f"{name} mounts the artifacts volume {root}")

    # each web host has its own ingest, through a volume no other host has
    def socket_volume(service):
        socket_path = services[webs[0]]["environment"]["EVENT_INGEST_SOCKET"]
        return volume_at(service, str(Path(socket_path).parent))

    volumes = [socket_volume(services[web]) for web in webs]
    if None in volumes or len(set(volumes)) != len(volumes):
        problems.append(f"web hosts' ingest sockets: {volumes}")
    for volume in volumes:
        owners = [
            name
            for name in by_role.get("ingest", [])
            if socket_volume(services[name]) == volume
        ]
        if volume and len(owners) != 1:
            problems.append(f"ingest processes on {volume}: {owners}")
    return problems


def test_the_vendored_compose_schema_is_the_recorded_copy():
    digest = hashlib.sha256(COMPOSE_SCHEMA.read_bytes()).hexdigest()
    assert digest == COMPOSE_SCHEMA_SHA256
    jsonschema.validators.validator_for(compose_schema()).check_schema(compose_schema())


def compose_errors(doc: dict) -> list[str]:
    schema = compose_schema()
    validator = jsonschema.validators.validator_for(schema)(schema)
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(doc)
    ]


def test_compose_file_follows_the_compose_specification(no_network):
    assert compose_errors(compose_doc()) == []


def _misspelled_key(doc):
    web = doc["services"]["web-a"]
    web["depend_on"] = web.pop("depends_on")


def _ports_as_text(doc):
    doc["services"]["web-b"]["ports"] = "8002:8000"


def _unknown_condition(doc):
    doc["services"]["beat"]["depends_on"]["migrate"]["condition"] = "finished"


@pytest.mark.parametrize(
    "breakage",
    [_misspelled_key, _ports_as_text, _unknown_condition],
    ids=lambda f: f.__name__.strip("_"),
)
def test_a_broken_compose_file_fails_validation(breakage):
    doc = compose_doc()
    breakage(doc)
    assert compose_errors(doc) != []


def test_compose_file_has_the_promised_services():
    assert compose_problems(compose_doc()) == []


def _second_beat(doc):
    doc["services"]["beat-2"] = copy.deepcopy(doc["services"]["beat"])


def _one_web_host(doc):
    del doc["services"]["web-b"]


def _no_postgres(doc):
    del doc["services"]["postgres"]


def _other_image(doc):
    doc["services"]["worker"]["image"] = "mlserving:old"


def _shared_ingest(doc):
    doc["services"]["web-b"]["volumes"] = doc["services"]["web-a"]["volumes"]


def _not_after_migrate(doc):
    doc["services"]["worker"]["depends_on"] = {}


def _shared_artifacts(doc):
    for web in ("web-a", "web-b"):
        doc["services"][web]["volumes"].append("artifacts:/app/artifacts")


@pytest.mark.parametrize(
    "breakage",
    [
        _second_beat,
        _one_web_host,
        _no_postgres,
        _other_image,
        _shared_ingest,
        _not_after_migrate,
        _shared_artifacts,
    ],
    ids=lambda f: f.__name__.strip("_"),
)
def test_a_compose_file_without_the_promised_services_is_caught(breakage):
    doc = compose_doc()
    breakage(doc)
    assert compose_problems(doc) != []


def test_compose_builds_the_dockerfile_from_the_repository_root():
    build = compose_doc()["services"]["web-a"]["build"]
    context = (COMPOSE.parent / build["context"]).resolve()
    assert context == ROOT
    assert (context / build["dockerfile"]).resolve() == DOCKERFILE


# --- Dockerfile, entrypoint, health check -----------------------------------


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order; comments, parser directives and
    line continuations handled, nothing more."""
    instructions, pending = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue  # a comment, also inside a continued instruction
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        whole = pending + stripped
        pending = ""
        keyword, _, arguments = whole.partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
    return instructions


def dockerfile_problems(text: str) -> list[str]:
    instructions = dockerfile_instructions(text)
    by_keyword: dict[str, list[str]] = {}
    for keyword, arguments in instructions:
        by_keyword.setdefault(keyword, []).append(arguments)
    problems = []
    froms = by_keyword.get("FROM", [])
    if not froms or not froms[0].startswith("python:3.11"):
        problems.append(f"FROM {froms}")
    users = by_keyword.get("USER", [])
    if not users or users[-1].split(":")[0] in ("root", "0"):
        problems.append(f"runs as {users[-1] if users else 'root'}")
    if "8000" not in " ".join(by_keyword.get("EXPOSE", [])).split():
        problems.append("does not expose 8000")
    healthchecks = by_keyword.get("HEALTHCHECK", [])
    if len(healthchecks) != 1 or "healthcheck.py" not in healthchecks[0]:
        problems.append(f"HEALTHCHECK {healthchecks}")
    runs = " ".join(by_keyword.get("RUN", []))
    if "pip install -r requirements.txt" not in runs:
        problems.append("does not install requirements.txt")
    if "collectstatic" not in runs:
        problems.append("no collectstatic at build time")
    if "entrypoint.sh" not in " ".join(by_keyword.get("ENTRYPOINT", [])):
        problems.append("not started by deploy/entrypoint.sh")
    if by_keyword.get("CMD", [""])[-1] != '["web"]':
        problems.append(f"default role {by_keyword.get('CMD')}, not web")
    return problems


def test_dockerfile_has_the_essentials():
    assert dockerfile_problems(DOCKERFILE.read_text()) == []


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("FROM python:3.11-slim", "FROM python:3.12-slim"),
        ("USER 10001:10001", "USER root"),
        ("EXPOSE 8000", "EXPOSE 8080"),
        ("HEALTHCHECK", "# HEALTHCHECK"),
        ("collectstatic", "check"),
        ('CMD ["web"]', 'CMD ["worker"]'),
    ],
)
def test_a_dockerfile_without_an_essential_is_caught(old, new):
    text = DOCKERFILE.read_text()
    assert old in text
    assert dockerfile_problems(text.replace(old, new)) != []


def test_the_build_context_leaves_out_secrets_and_local_state():
    # BuildKit reads <Dockerfile>.dockerignore beside the Dockerfile
    patterns = (DEPLOY / "Dockerfile.dockerignore").read_text().split()
    for needed in (".env", "**/.env", ".git", ".venv", "var", "artifacts/*"):
        assert needed in patterns


def bash_syntax_errors(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)


def test_entrypoint_is_valid_bash(tmp_path):
    # when
    result = bash_syntax_errors(ENTRYPOINT)
    broken = tmp_path / "entrypoint.sh"
    broken.write_text(ENTRYPOINT.read_text().replace("esac", ""))
    # then
    assert result.returncode == 0, result.stderr
    assert bash_syntax_errors(broken).returncode != 0


@pytest.fixture
def stand_ins(tmp_path):
    """python and celery stand-ins that print their name and arguments, one
    a line, and log each call as a line to CALLS; `python manage.py X`
    exits 1 when X is in FAIL."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = (
        "#!/bin/sh\n"
        'printf "%s\\n" "$(basename "$0")" "$@"\n'
        'echo "$(basename "$0") $*" >> "$CALLS"\n'
        'case " $FAIL " in *" $2 "*) exit 1 ;; esac\n'
    )
    for name in ("python", "celery"):
        (bin_dir / name).write_text(script)
        (bin_dir / name).chmod(0o755)
    prometheus = tmp_path / "prometheus"
    prometheus.mkdir()
    (prometheus / "counter_1.db").write_text("")
    environ = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "HOST": "0.0.0.0",
        "WEB_PORT": "8000",
        "CELERY_CONCURRENCY": "3",
        "PROMETHEUS_MULTIPROC_DIR": str(prometheus),
        "CALLS": str(tmp_path / "calls"),
        "FAIL": "",
    }

    def run(*args: str, **extra: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["bash", str(ENTRYPOINT), *args],
            env={**environ, **extra},
            capture_output=True,
            text=True,
            timeout=30,
        )

    run.prometheus = prometheus
    run.environ = environ
    run.calls = lambda: (tmp_path / "calls").read_text().splitlines()
    return run


def procfile_argv(role: str, environ: dict) -> list[str]:
    """The Procfile's command for role, as sh expands it."""
    command = procfile_read(ROOT / "Procfile")[role]
    result = subprocess.run(
        ["sh", "-c", f'printf "%s\\n" {command}'],
        env=environ,
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.splitlines()


@pytest.mark.parametrize(
    ("role", "procfile_role"),
    [
        ("web", "web"),
        ("websockets", "web"),
        ("ingest", "ingest"),
        ("worker", "worker"),
        ("beat", "beat"),
    ],
)
def test_entrypoint_runs_the_procfile_command_of_the_role(
    stand_ins, role, procfile_role
):
    result = stand_ins(role)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == procfile_argv(procfile_role, stand_ins.environ)


def test_entrypoint_passes_extra_arguments_whole(stand_ins):
    result = stand_ins("worker", "--hostname", "worker a@%h")
    assert result.stdout.splitlines()[-2:] == ["--hostname", "worker a@%h"]


def test_web_role_starts_with_fresh_prometheus_counters(stand_ins):
    stand_ins("web")
    assert not stand_ins.prometheus.exists()


def test_migrate_role_migrates_then_registers_and_converts(stand_ins):
    result = stand_ins("migrate")
    assert result.returncode == 0, result.stderr
    assert stand_ins.calls() == [
        "python manage.py migrate --noinput",
        "python manage.py sync_artifacts",
        "python manage.py compile_versions",
    ]


def test_migrate_role_survives_versions_that_cannot_be_converted(stand_ins):
    # reported, not fatal, as in run.sh
    result = stand_ins("migrate", FAIL="compile_versions")
    assert result.returncode == 0
    assert "compile_versions" in result.stderr


@pytest.mark.parametrize("failing", ["migrate", "sync_artifacts"])
def test_migrate_role_stops_at_a_failure(stand_ins, failing):
    result = stand_ins("migrate", FAIL=failing)
    assert result.returncode != 0
    # the failing step was the last one run
    assert stand_ins.calls()[-1].split()[:3] == ["python", "manage.py", failing]


def test_entrypoint_refuses_an_unknown_role(stand_ins):
    result = stand_ins("webb")
    assert result.returncode == 64
    assert "unknown role" in result.stderr


class _Probe(http.server.BaseHTTPRequestHandler):
    """Answers like the app: 400 for a Host Django does not allow, 404 off
    the liveness path, else `status`."""

    status = 200

    def do_GET(self):
        if self.headers["Host"] != PROBE_HOST:
            self.send_response(400)
        elif self.path != "/v2/health/live":
            self.send_response(404)
        else:
            self.send_response(self.status)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def probe_server():
    servers = []

    def start(status: int) -> int:
        handler = type("Handler", (_Probe,), {"status": status})
        server = http.server.HTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server.server_address[1]

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def run_healthcheck(port: int) -> int:
    # a proxy that refuses everything: loopback must not go through it
    proxy = f"http://127.0.0.1:{free_port()}"
    return subprocess.run(
        [sys.executable, str(HEALTHCHECK)],
        env={**os.environ, "WEB_PORT": str(port), "http_proxy": proxy},
        capture_output=True,
        timeout=30,
    ).returncode


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize(("status", "healthy"), [(200, True), (503, False)])
def test_health_check_passes_only_on_200(probe_server, status, healthy):
    assert (run_healthcheck(probe_server(status)) == 0) is healthy


def test_health_check_fails_when_nothing_listens():
    assert run_healthcheck(free_port()) == 1
