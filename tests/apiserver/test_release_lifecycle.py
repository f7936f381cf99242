"""Install, upgrade and roll back the chart with Helm v3 and Helm v4 on a real kube-apiserver.

Each Helm major gets its own namespace. The steps share one test per major because each
starts from the state the previous step left: install with values/dev.yaml, upgrade to
values/staging.yaml, upgrade to values/prod.yaml, then roll back to revision 2 (staging).
No controller runs, so the checks read the stored objects: nothing becomes ready.
"""

from __future__ import annotations

from typing import Any

import yaml

from tests.apiserver.chart import (
    RELEASE,
    SELDON_DEPLOYMENTS,
    WORKFLOW_TEMPLATES,
    create_referenced_secrets,
    fullname,
    merged_values,
    model_uri,
    release_args,
)
from tests.apiserver.cluster import KubeClient
from tests.apiserver.helm import Helm


def _helm_install_or_upgrade(helm: Helm, command: str, namespace: str, environment: str) -> None:
    helm.check(*release_args(command, namespace, environment, "--timeout", "60s"))


def _assert_release_labels(manifest: dict[str, Any], namespace: str) -> None:
    name = f"{manifest['kind']} {manifest['metadata']['name']}"
    labels = manifest["metadata"].get("labels", {})
    annotations = manifest["metadata"].get("annotations", {})
    assert labels.get("app.kubernetes.io/instance") == RELEASE, name
    assert labels.get("app.kubernetes.io/managed-by") == "Helm", name
    assert labels.get("app.kubernetes.io/part-of") == "mlship", name
    assert annotations.get("meta.helm.sh/release-name") == RELEASE, name
    assert annotations.get("meta.helm.sh/release-namespace") == namespace, name


def _assert_pipeline(kube: KubeClient, namespace: str, values: dict[str, Any]) -> None:
    prefix = fullname(values)
    template = kube.get(WORKFLOW_TEMPLATES.format(namespace=namespace) + f"/{prefix}-pipeline")
    _assert_release_labels(template, namespace)
    parameters = {p["name"]: p.get("value") for p in template["spec"]["arguments"]["parameters"]}
    assert parameters["environment"] == values["environment"]
    assert parameters["model-name"] == values["model"]["name"]

    config_map = kube.get(f"/api/v1/namespaces/{namespace}/configmaps/{prefix}-pipeline-config")
    _assert_release_labels(config_map, namespace)
    pipeline_config = yaml.safe_load(config_map["data"]["pipeline.yaml"])
    assert pipeline_config["environment"] == values["environment"]
    assert pipeline_config["modelName"] == values["model"]["name"]
    assert pipeline_config["validation"] == values["pipeline"]["validation"]


def _secret_reference(variable: dict[str, Any] | None) -> tuple[str, str] | None:
    if variable is None or "secretKeyRef" not in variable.get("valueFrom", {}):
        return None
    reference = variable["valueFrom"]["secretKeyRef"]
    return reference["name"], reference["key"]


def _assert_registry(kube: KubeClient, namespace: str, values: dict[str, Any]) -> None:
    registry = values["registry"]
    deployment = kube.find(f"/apis/apps/v1/namespaces/{namespace}/deployments/{fullname(values)}-registry")
    if not registry["enabled"]:
        assert deployment is None
        return

    assert deployment is not None, "registry Deployment not found"
    _assert_release_labels(deployment, namespace)
    assert deployment["spec"]["replicas"] == registry["replicas"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"].startswith(values["images"]["registry"]["repository"] + ":")
    environment = {variable["name"]: variable for variable in container.get("env", [])}
    command = container["command"]
    backend_uri = command[command.index("--backend-store-uri") + 1]

    postgresql = registry["backend"]["postgresql"]
    if registry["backend"]["type"] == "postgresql":
        secret = postgresql["existingSecret"]
        assert _secret_reference(environment.get("DB_USER")) == (secret, postgresql["userKey"])
        assert _secret_reference(environment.get("DB_PASSWORD")) == (secret, postgresql["passwordKey"])
        assert backend_uri.startswith("postgresql+psycopg2://$(DB_USER):$(DB_PASSWORD)@" + postgresql["host"])
    else:
        assert "DB_PASSWORD" not in environment
        assert backend_uri.startswith("sqlite:")

    s3 = registry["artifacts"]["s3"]
    if registry["artifacts"]["type"] == "s3":
        secret = s3["existingSecret"]
        assert _secret_reference(environment.get("AWS_ACCESS_KEY_ID")) == (secret, s3["accessKeyIdKey"])
        assert _secret_reference(environment.get("AWS_SECRET_ACCESS_KEY")) == (secret, s3["secretAccessKeyKey"])
        endpoint = environment.get("MLFLOW_S3_ENDPOINT_URL", {}).get("value", "")
        assert endpoint == s3["endpointUrl"]
    else:
        assert "AWS_SECRET_ACCESS_KEY" not in environment


def _predictor_parameters(predictor: dict[str, Any]) -> dict[str, Any]:
    return {p["name"]: p.get("value") for p in predictor["graph"].get("parameters", [])}


def _assert_serving(kube: KubeClient, namespace: str, values: dict[str, Any]) -> None:
    serving = values["serving"]
    path = SELDON_DEPLOYMENTS.format(namespace=namespace) + f"/{fullname(values)}-serving"
    deployment = kube.find(path)
    if not serving["enabled"]:
        assert deployment is None
        return

    assert deployment is not None, "SeldonDeployment not found"
    _assert_release_labels(deployment, namespace)
    predictors = deployment["spec"]["predictors"]
    expected_count = 1 + int(serving["canary"]["enabled"]) + int(serving["shadow"]["enabled"])
    assert len(predictors) == expected_count

    main = predictors[0]
    assert _predictor_parameters(main).get("model_uri") == model_uri(values)
    if not serving["autoscaling"]["enabled"]:
        assert main.get("replicas") == serving["replicas"]

    # Shadow predictors take no share of the traffic. A lone predictor has no traffic
    # field, and split traffic must add up to 100.
    live = [p for p in predictors if not p.get("shadow")]
    if len(live) > 1:
        assert sum(p.get("traffic", 0) for p in live) == 100
    if serving["canary"]["enabled"]:
        canary = next(p for p in live if p is not main)
        assert canary.get("traffic") == serving["canary"]["weight"]
        assert _predictor_parameters(canary).get("model_uri") == model_uri(
            values, serving["canary"]["model"]["version"]
        )


def _assert_schedule(kube: KubeClient, namespace: str, values: dict[str, Any]) -> None:
    """The CronWorkflow exists only where the schedule is on, so upgrades create and delete it."""
    schedule = values["pipeline"]["schedule"]
    path = f"/apis/argoproj.io/v1alpha1/namespaces/{namespace}/cronworkflows/{fullname(values)}-pipeline"
    cron_workflow = kube.find(path)
    if not (values["pipeline"]["enabled"] and schedule["enabled"]):
        assert cron_workflow is None
        return

    assert cron_workflow is not None, "CronWorkflow not found"
    _assert_release_labels(cron_workflow, namespace)
    assert cron_workflow["spec"]["schedules"] == [schedule["cron"]]


def _assert_monitoring(kube: KubeClient, namespace: str, values: dict[str, Any]) -> None:
    monitoring = values["monitoring"]
    group = f"/apis/monitoring.coreos.com/v1/namespaces/{namespace}"
    service_monitor = kube.find(f"{group}/servicemonitors/{fullname(values)}-serving")
    rule = kube.find(f"{group}/prometheusrules/{fullname(values)}-monitoring")

    dashboard = kube.find(f"/api/v1/namespaces/{namespace}/configmaps/{fullname(values)}-grafana-dashboard")

    assert (service_monitor is not None) == monitoring["serviceMonitor"]["enabled"]
    assert (rule is not None) == monitoring["prometheusRule"]["enabled"]
    assert (dashboard is not None) == monitoring["grafanaDashboard"]["enabled"]
    if dashboard is not None:
        grafana = monitoring["grafanaDashboard"]
        assert dashboard["metadata"]["labels"].get(grafana["label"]) == grafana["labelValue"]
    for manifest, settings in ((service_monitor, monitoring["serviceMonitor"]), (rule, monitoring["prometheusRule"])):
        if manifest is not None:
            _assert_release_labels(manifest, namespace)
            labels = manifest["metadata"]["labels"]
            assert settings["labels"].items() <= labels.items()


def _assert_release_matches(kube: KubeClient, namespace: str, environment: str) -> None:
    values = merged_values(environment)
    if values["pipeline"]["enabled"]:
        _assert_pipeline(kube, namespace, values)
    _assert_schedule(kube, namespace, values)
    _assert_registry(kube, namespace, values)
    _assert_serving(kube, namespace, values)
    _assert_monitoring(kube, namespace, values)


def _assert_history(helm: Helm, namespace: str, expected: list[tuple[str, str]]) -> None:
    """Compare (status, description start) of each revision, oldest first."""
    history = helm.history(RELEASE, namespace)
    actual = [(revision["status"], revision["description"]) for revision in history]
    assert [status for status, _ in actual] == [status for status, _ in expected], actual
    for (_, description), (_, prefix) in zip(actual, expected, strict=True):
        assert description.startswith(prefix), actual


def test_install_upgrade_rollback(helm: Helm, kube: KubeClient, crds: list[str]) -> None:
    namespace = f"lifecycle-{helm.major}"
    kube.ensure_namespace(namespace)

    _helm_install_or_upgrade(helm, "install", namespace, "dev")
    _assert_release_matches(kube, namespace, "dev")
    _assert_history(helm, namespace, [("deployed", "Install complete")])

    # staging and prod name existing Secrets (database, object store) that an operator
    # creates before the upgrade.
    create_referenced_secrets(kube, namespace, merged_values("staging"))
    _helm_install_or_upgrade(helm, "upgrade", namespace, "staging")
    _assert_release_matches(kube, namespace, "staging")

    create_referenced_secrets(kube, namespace, merged_values("prod"))
    _helm_install_or_upgrade(helm, "upgrade", namespace, "prod")
    _assert_release_matches(kube, namespace, "prod")

    helm.check("rollback", RELEASE, "2", "--namespace", namespace, "--timeout", "60s")
    _assert_release_matches(kube, namespace, "staging")
    _assert_history(
        helm,
        namespace,
        [
            ("superseded", "Install complete"),
            ("superseded", "Upgrade complete"),
            ("superseded", "Upgrade complete"),
            ("deployed", "Rollback to 2"),
        ],
    )

    # Helm stores each revision in a Secret, and only the current one has status=deployed.
    secrets = kube.get(f"/api/v1/namespaces/{namespace}/secrets?labelSelector=owner%3Dhelm,name%3D{RELEASE}")["items"]
    statuses = sorted(secret["metadata"]["labels"]["status"] for secret in secrets)
    assert statuses == ["deployed", "superseded", "superseded", "superseded"]
