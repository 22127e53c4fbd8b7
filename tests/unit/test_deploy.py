"""The deployment files in deploy/: rendered manifests match the code, partner ACLs are exactly
what the topic definition allows, every file parses, the dashboard and the alert rules name only
metrics the code exports, and the compose file and the Kubernetes manifests pass the schemas
available offline: the Compose Specification (vendored by check-jsonschema) and the Kubernetes
built-in kinds (kubernetes-validate). No installable package ships the Strimzi or
prometheus-operator CRD schemas in a usable form, so those resources get structural schemas
written here from the CRD reference, plus cross-checks between the files."""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from schemas.registry import BUS, PARTNERS
from streams import deploy, lag, metrics, topics

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
K8S = DEPLOY / "k8s"
DASHBOARD = DEPLOY / "grafana" / "ketenbus.json"
RULES = DEPLOY / "prometheus" / "rules.yml"
COMPOSE = DEPLOY / "docker-compose.yml"

# Metrics Prometheus makes itself; not exported by ketenbus but fine to query.
PROMETHEUS_OWN = {"up"}


def docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]


def k8s_documents() -> list[tuple[str, dict[str, Any]]]:
    return [(p.name, d) for p in sorted(K8S.glob("*.yaml")) for d in docs(p)]


def by_kind(kind: str) -> list[dict[str, Any]]:
    return [d for _, d in k8s_documents() if d["kind"] == kind]


# --- rendered manifests ----------------------------------------------------------------------


def test_rendered_manifests_equal_the_committed_ones() -> None:
    rendered = deploy.rendered()
    assert set(rendered) == {"topics.yaml", "users.yaml", "prometheus-rule.yaml"}
    for name, text in rendered.items():
        committed = (K8S / name).read_text(encoding="utf-8")
        assert committed == text, f"deploy/k8s/{name} is stale: run `ketenbus deploy render`"


def test_the_comparison_sees_a_different_rendering() -> None:
    committed = (K8S / "topics.yaml").read_text(encoding="utf-8")
    assert deploy.rendered(partitions=3)["topics.yaml"] != committed
    assert deploy.rendered(replicas=2)["topics.yaml"] != committed


def test_render_writes_every_file_deterministically(tmp_path: Path) -> None:
    first = {p.name: p.read_text() for p in deploy.render(tmp_path / "a")}
    second = {p.name: p.read_text() for p in deploy.render(tmp_path / "b")}
    assert first == second == deploy.rendered()


def test_one_topic_manifest_per_topic_with_the_production_defaults() -> None:
    rendered = deploy.render_topics()
    assert [t["spec"]["topicName"] for t in rendered] == [t.name for t in topics.TOPICS]
    for manifest, topic in zip(rendered, topics.TOPICS, strict=True):
        assert manifest["metadata"]["name"] == topic.name
        assert manifest["spec"]["partitions"] == (topic.partitions or 6)
        assert manifest["spec"]["replicas"] == 3
        assert manifest["spec"].get("config", {}) == topic.config
        assert manifest["metadata"]["labels"]["strimzi.io/cluster"] == "ketenbus"
    klok = next(m for m in rendered if m["spec"]["topicName"] == topics.KLOK)
    assert klok["spec"]["partitions"] == 1  # its own count wins over the default


def test_partitions_and_replicas_are_parameters() -> None:
    rendered = deploy.render_topics(partitions=12, replicas=5, cluster="other")
    assert {m["spec"]["replicas"] for m in rendered} == {5}
    assert max(m["spec"]["partitions"] for m in rendered) == 12
    assert {m["metadata"]["labels"]["strimzi.io/cluster"] for m in rendered} == {"other"}
    with pytest.raises(ValueError):
        deploy.render_topics(partitions=0)


# --- ACLs --------------------------------------------------------------------------------------


def acl_set(user: dict[str, Any]) -> set[tuple[str, str, str, frozenset[str]]]:
    out = set()
    for acl in user["spec"]["authorization"]["acls"]:
        assert acl.get("type", "allow") == "allow"
        assert acl.get("host", "*") == "*"
        r = acl["resource"]
        out.add((r["type"], r["name"], r.get("patternType", "literal"), frozenset(acl["operations"])))
    return out


def allowed(user: dict[str, Any], resource_type: str, name: str) -> set[str]:
    """What Kafka's simple authorizer would allow this user on one resource."""
    ops: set[str] = set()
    for rtype, rname, pattern, operations in acl_set(user):
        if rtype != resource_type:
            continue
        if (pattern == "literal" and rname == name) or (pattern == "prefix" and name.startswith(rname)):
            ops |= operations
    return ops


USERS = {u["metadata"]["name"]: u for u in deploy.render_users()}


def test_one_user_per_partner_and_per_worker_role() -> None:
    assert list(USERS) == [*PARTNERS, "ketenbus-router", "ketenbus-timers"]
    for user in USERS.values():
        assert user["spec"]["authentication"] == {"type": "scram-sha-512"}
        assert user["spec"]["authorization"]["type"] == "simple"


@pytest.mark.parametrize("partner", PARTNERS)
def test_partner_acl_is_exactly_inbox_write_outbox_read_group_read(partner: str) -> None:
    assert acl_set(USERS[partner]) == {
        ("topic", topics.inbox(partner), "literal", frozenset({"Write", "Describe"})),
        ("topic", topics.outbox(partner), "literal", frozenset({"Read", "Describe"})),
        ("group", f"{partner}-", "prefix", frozenset({"Read"})),
    }


@pytest.mark.parametrize("partner", PARTNERS)
def test_partner_can_touch_no_other_topic(partner: str) -> None:
    user = USERS[partner]
    for topic in topics.TOPICS:
        expected = (
            {"Write", "Describe"}
            if topic.name == topics.inbox(partner)
            else {"Read", "Describe"}
            if topic.name == topics.outbox(partner)
            else set()
        )
        assert allowed(user, "topic", topic.name) == expected, topic.name
    for other in PARTNERS:
        if other != partner:
            assert allowed(user, "group", f"{other}-connector") == set()
    assert allowed(user, "group", f"{partner}-connector") == {"Read"}
    assert allowed(user, "group", "ketenbus-router") == set()


def test_the_acl_check_catches_an_extra_grant() -> None:
    user = json.loads(json.dumps(USERS["politie"]))
    user["spec"]["authorization"]["acls"].append(
        {"resource": {"type": "topic", "name": "keten.", "patternType": "prefix"}, "operations": ["Read"]}
    )
    assert allowed(user, "topic", topics.EVENTS) == {"Read"}
    with pytest.raises(AssertionError):
        assert acl_set(user) == acl_set(USERS["politie"])


def test_worker_users_can_do_their_role() -> None:
    router, timers = USERS["ketenbus-router"], USERS["ketenbus-timers"]
    for name in topics.INBOXES:
        assert "Read" in allowed(router, "topic", name)
    for name in (*topics.OUTBOXES, topics.EVENTS, topics.VERSTREKKINGEN, topics.DLQ):
        assert "Write" in allowed(router, "topic", name)
    assert "Read" in allowed(timers, "topic", topics.EVENTS)
    for name in (topics.inbox(BUS), topics.RADAR, topics.KLOK):
        assert "Write" in allowed(timers, "topic", name)
    assert "Write" not in allowed(timers, "topic", topics.outbox("politie"))
    assert "Write" not in allowed(router, "topic", topics.inbox("politie"))
    for user in (router, timers):  # provisioning lists every topic
        assert all("Describe" in allowed(user, "topic", t.name) for t in topics.TOPICS)


@pytest.mark.parametrize("role", deploy.ROLES)
def test_worker_group_acls_cover_every_consumer_group_of_the_role(role: str) -> None:
    groups = lag.consumer_groups("ketenbus", [role])
    assert groups
    for group in groups:
        assert "Read" in allowed(USERS[f"ketenbus-{role}"], "group", group)
    other = next(r for r in deploy.ROLES if r != role)
    assert not any("Read" in allowed(USERS[f"ketenbus-{other}"], "group", g) for g in groups)


def test_the_timer_workers_faust_app_is_its_group_and_may_create_its_changelogs() -> None:
    from streams.app import create_app
    from streams.settings import Settings

    app = create_app(Settings(), "127.0.0.1:9")
    assert lag.consumer_groups("ketenbus", ["timers"]) == [app.conf.id]
    changelog = f"{app.conf.id}-x-changelog"
    assert {"Create", "Write", "Read"} <= allowed(USERS["ketenbus-timers"], "topic", changelog)


def test_consumer_groups_name_both_router_lanes_and_the_timers() -> None:
    assert lag.consumer_groups("kb") == ["kb-router", "kb-router-alarm", "kb-timers"]
    assert lag.consumer_groups("kb", ["timers", "router"]) == ["kb-router", "kb-router-alarm", "kb-timers"]
    assert lag.consumer_groups("kb", ["router"]) == ["kb-router", "kb-router-alarm"]


# --- every file parses ---------------------------------------------------------------------------


def deploy_files(*suffixes: str) -> list[Path]:
    return sorted(p for p in DEPLOY.rglob("*") if p.is_file() and p.suffix in suffixes)


def test_every_yaml_and_json_file_in_deploy_parses() -> None:
    yamls, jsons = deploy_files(".yml", ".yaml"), deploy_files(".json")
    assert len(yamls) >= 12 and jsons == [DASHBOARD]
    for path in yamls:
        documents = docs(path)
        assert documents, f"{path} is empty"
        assert all(isinstance(d, dict) for d in documents), path
    for path in jsons:
        assert isinstance(json.loads(path.read_text()), dict)


def test_the_parse_check_rejects_broken_yaml() -> None:
    with pytest.raises(yaml.YAMLError):
        list(yaml.safe_load_all("a: [1, 2\n---\nb: 1\n"))


# --- metric names ----------------------------------------------------------------------------------

_KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool",
    "offset", "inf", "nan",
}  # fmt: skip


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # ranges
    expr = re.sub(r"\$\w+", "", expr)  # dashboard variables
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    names = set()
    for m in re.finditer(r"(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)\b(\s*\()?", expr):
        name, call = m.group(1), m.group(2)
        if call or name.lower() in _KEYWORDS or re.fullmatch(r"\d+[smhdwy]", name):
            continue
        names.add(name)
    return names


def exported_names() -> set[str]:
    """Every sample name the metrics of streams.metrics and of the connectors can produce."""
    assert metrics.CONSUMER_LAG is not None
    for module in ("ingress", "webhook", "register"):  # each defines its own, on import
        importlib.import_module(f"connectors.{module}")
    from prometheus_client import REGISTRY

    suffixes = {
        "counter": ("_total", "_created"),
        "histogram": ("_bucket", "_count", "_sum", "_created"),
        "gauge": ("",),
    }
    names = set()
    for family in REGISTRY.collect():
        if family.name.startswith("ketenbus_"):
            names |= {family.name + s for s in suffixes[family.type]}
    return names


def dashboard_exprs() -> Iterator[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            yield panel["title"], target["expr"]


def rule_exprs() -> Iterator[tuple[str, str]]:
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            yield rule.get("alert") or rule["record"], rule["expr"]


def test_metric_name_parser() -> None:
    quantile = (
        "histogram_quantile(0.95, sum by (le) (rate(ketenbus_e2e_latency_seconds_bucket[$__rate_interval])))"
    )
    assert metric_names(quantile) == {"ketenbus_e2e_latency_seconds_bucket"}
    assert metric_names(
        'time() - max by (lane) (ketenbus_router_last_batch_timestamp_seconds{lane="a b"}) > 120 '
        "and on() sum(x_total offset 5m) > 0"
    ) == {"ketenbus_router_last_batch_timestamp_seconds", "x_total"}
    assert "ketenbus_nope_total" not in exported_names()


def test_exported_names_include_the_suffixes() -> None:
    names = exported_names()
    assert {
        "ketenbus_events_in_total",
        "ketenbus_events_in_created",
        "ketenbus_e2e_latency_seconds_bucket",
        "ketenbus_e2e_latency_seconds_count",
        "ketenbus_e2e_latency_seconds_sum",
        "ketenbus_consumer_lag_records",
        "ketenbus_timers_pending",
    } <= names
    assert "ketenbus_e2e_latency_seconds" not in names


@pytest.mark.parametrize(("where", "source"), [("dashboard", dashboard_exprs), ("rules", rule_exprs)])
def test_queries_name_only_exported_metrics(where: str, source: Any) -> None:
    exported = exported_names()
    used = set()
    for title, expr in source():
        names = metric_names(expr)
        assert names, f"{where} {title}: no metric in {expr!r}"
        unknown = names - exported - PROMETHEUS_OWN
        assert not unknown, f"{where} {title}: {sorted(unknown)} not exported by streams.metrics"
        used |= names
    if where == "dashboard":  # every metric has a panel
        families = {re.sub(r"_(total|bucket|count|sum|created)$", "", n) for n in exported}
        shown = {re.sub(r"_(total|bucket|count|sum|created)$", "", n) for n in used}
        assert families <= shown, f"no panel for {sorted(families - shown)}"


def test_dashboard_is_well_formed() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    assert dashboard["uid"] == "ketenbus"
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["query"] == "prometheus"
    for panel in dashboard["panels"]:
        pos = panel["gridPos"]
        assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24
        for target in panel.get("targets", []):
            assert target["datasource"]["uid"] == "${datasource}"
    texts = json.dumps(dashboard)
    for needed in ("histogram_quantile(0.95", "ketenbus_dlq_total", "ketenbus_consumer_lag_records"):
        assert needed in texts


def test_grafana_provisioning_points_at_prometheus_and_the_dashboard() -> None:
    (source,) = docs(DEPLOY / "grafana/provisioning/datasources/prometheus.yml")[0]["datasources"]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    (provider,) = docs(DEPLOY / "grafana/provisioning/dashboards/ketenbus.yml")[0]["providers"]
    grafana = docs(COMPOSE)[0]["services"]["grafana"]
    mounts = dict(v.rsplit(":", 1)[0].split(":", 1) for v in grafana["volumes"] if v.startswith("./"))
    assert mounts["./grafana/ketenbus.json"].startswith(provider["options"]["path"] + "/")
    assert mounts["./grafana/provisioning"] == "/etc/grafana/provisioning"


# --- compose --------------------------------------------------------------------------------------


def compose_schema() -> dict[str, Any]:
    """The Compose Specification JSON schema, as vendored by check-jsonschema (a test dependency)."""
    from importlib import resources

    path = resources.files("check_jsonschema.builtin_schemas.vendor").joinpath("compose-spec.json")
    return dict(json.loads(path.read_text(encoding="utf-8")))


def test_compose_file_matches_the_compose_specification() -> None:
    schema = compose_schema()
    assert schema["title"] == "Compose Specification"
    validator = jsonschema.Draft7Validator(schema)
    compose = docs(COMPOSE)[0]
    errors = [f"{'/'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(compose)]
    assert not errors
    compose["services"]["router"]["restart_policy"] = "always"  # a typo the schema must catch
    assert any("restart_policy" in e.message for e in validator.iter_errors(compose))


def test_compose_runs_a_three_node_kraft_cluster_and_the_workers() -> None:
    services = docs(COMPOSE)[0]["services"]
    kafkas = {name: s for name, s in services.items() if name.startswith("kafka-")}
    assert len(kafkas) == 3
    voters = {s["environment"]["KAFKA_CONTROLLER_QUORUM_VOTERS"] for s in kafkas.values()}
    assert len(voters) == 1
    (voters_str,) = voters
    ids = sorted(s["environment"]["KAFKA_NODE_ID"] for s in kafkas.values())
    assert ids == ["1", "2", "3"]
    assert voters_str == ",".join(f"{i}@kafka-{i}:9093" for i in ids)
    for s in kafkas.values():
        assert s["image"].startswith("apache/kafka:")
        assert "controller" in s["environment"]["KAFKA_PROCESS_ROLES"]
    for role in ("router", "timers"):
        worker = services[role]
        assert worker["command"] == ["up", "--roles", role, "--metrics-port", "9100"]
        env = worker["environment"]
        assert env["KETENBUS_BOOTSTRAP"] == "kafka-1:9092,kafka-2:9092,kafka-3:9092"
        assert int(env["KETENBUS_REPLICATION"]) <= len(kafkas)
        assert worker["build"]["dockerfile"] == "deploy/Dockerfile"
    assert (REPO / "deploy/Dockerfile").exists()
    assert {"postgres", "prometheus", "grafana"} <= set(services)
    for service in services.values():  # every mounted file of the repository exists
        for volume in service.get("volumes", []):
            if volume.startswith("./"):
                assert (DEPLOY / volume.split(":", 1)[0]).exists(), volume


def test_prometheus_config_scrapes_the_workers_and_loads_the_rules() -> None:
    config = docs(DEPLOY / "prometheus/prometheus.yml")[0]
    assert config["rule_files"] == ["rules.yml"]
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "ketenbus")
    assert sorted(n for sd in job["dns_sd_configs"] for n in sd["names"]) == ["router", "timers"]
    assert {sd["port"] for sd in job["dns_sd_configs"]} == {9100}
    prometheus = docs(COMPOSE)[0]["services"]["prometheus"]
    assert "./prometheus/rules.yml:/etc/prometheus/rules.yml:ro" in prometheus["volumes"]


# --- Kubernetes -----------------------------------------------------------------------------------

BUILTIN = {"ConfigMap", "Deployment", "Service", "PodDisruptionBudget"}
MONITORING = {"ServiceMonitor", "PrometheusRule"}
STRIMZI = {"Kafka", "KafkaNodePool", "KafkaTopic", "KafkaUser"}
KUSTOMIZE = {"Kustomization"}


def test_every_manifest_is_of_a_kind_that_is_checked() -> None:
    kinds = {d["kind"] for _, d in k8s_documents()}
    assert kinds == BUILTIN | MONITORING | STRIMZI | KUSTOMIZE


def test_builtin_kinds_match_the_kubernetes_schemas() -> None:
    import kubernetes_validate

    checked = 0
    for _, d in k8s_documents():
        if d["kind"] in BUILTIN:
            kubernetes_validate.validate(d, "1.30.0", strict=True)
            checked += 1
    assert checked == 5
    broken = json.loads(json.dumps(by_kind("Deployment")[0]))
    broken["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGett"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, "1.30.0", strict=True)


# Structural schemas of the prometheus-operator resources (monitoring.coreos.com/v1), after the
# CRD reference, for the fields ketenbus uses: unknown fields are errors. (The models generated
# from the CRDs, cloudcoil-models-prometheus-operator, register a pytest plugin that needs an
# undeclared dependency and broke test collection, so they are not used here.)
_DURATION = {
    "type": "string",
    "pattern": r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$",
}
_STRINGS = {"type": "object", "additionalProperties": {"type": "string"}}
_RELABEL = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "sourceLabels": {"type": "array", "items": {"type": "string"}},
        "targetLabel": {"type": "string"},
        "regex": {"type": "string"},
        "replacement": {"type": "string"},
        "action": {"type": "string"},
    },
}
_RULE = {
    "type": "object",
    "additionalProperties": False,
    "required": ["expr"],
    "oneOf": [{"required": ["alert"]}, {"required": ["record"]}],
    "properties": {
        "alert": {"type": "string"},
        "record": {"type": "string"},
        "expr": {"type": ["string", "integer"]},
        "for": _DURATION,
        "keep_firing_for": _DURATION,
        "labels": _STRINGS,
        "annotations": _STRINGS,
    },
}
MONITORING_SCHEMAS: dict[str, dict[str, Any]] = {
    "ServiceMonitor": {
        "type": "object",
        "additionalProperties": False,
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": "monitoring.coreos.com/v1"},
            "kind": {"const": "ServiceMonitor"},
            "metadata": {"type": "object", "required": ["name"]},
            "spec": {
                "type": "object",
                "additionalProperties": False,
                "required": ["selector", "endpoints"],
                "properties": {
                    "jobLabel": {"type": "string"},
                    "selector": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {"matchLabels": _STRINGS, "matchExpressions": {"type": "array"}},
                    },
                    "endpoints": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "additionalProperties": False,
                            "properties": {
                                "port": {"type": "string"},
                                "path": {"type": "string"},
                                "interval": _DURATION,
                                "scrapeTimeout": _DURATION,
                                "relabelings": {"type": "array", "items": _RELABEL},
                            },
                        },
                    },
                },
            },
        },
    },
    "PrometheusRule": {
        "type": "object",
        "additionalProperties": False,
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": "monitoring.coreos.com/v1"},
            "kind": {"const": "PrometheusRule"},
            "metadata": {"type": "object", "required": ["name"]},
            "spec": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "groups": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "additionalProperties": False,
                            "required": ["name", "rules"],
                            "properties": {
                                "name": {"type": "string", "minLength": 1},
                                "interval": _DURATION,
                                "rules": {"type": "array", "items": _RULE},
                            },
                        },
                    }
                },
            },
        },
    },
}


@pytest.mark.parametrize("kind", sorted(MONITORING))
def test_service_monitor_and_prometheus_rule_are_structurally_valid(kind: str) -> None:
    validator = jsonschema.Draft7Validator(MONITORING_SCHEMAS[kind])
    (d,) = by_kind(kind)
    errors = [f"{'/'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(d)]
    assert not errors
    broken = json.loads(json.dumps(d))
    broken["spec"]["intervall"] = "5s"
    assert list(validator.iter_errors(broken))


def test_prometheus_rule_wraps_the_same_rules() -> None:
    (rule,) = by_kind("PrometheusRule")
    assert rule["spec"]["groups"] == yaml.safe_load(RULES.read_text())["groups"]


# Structural schemas of the Strimzi resources ketenbus renders, after the CRD reference
# (kafka.strimzi.io/v1beta2): unknown fields and values are errors.
ACL_OPERATIONS = [
    "Read",
    "Write",
    "Create",
    "Delete",
    "Alter",
    "Describe",
    "ClusterAction",
    "AlterConfigs",
    "DescribeConfigs",
    "IdempotentWrite",
    "All",
]
_ACL = {
    "type": "object",
    "additionalProperties": False,
    "required": ["resource", "operations"],
    "properties": {
        "type": {"enum": ["allow", "deny"]},
        "host": {"type": "string"},
        "resource": {
            "type": "object",
            "additionalProperties": False,
            "required": ["type", "name"],
            "properties": {
                "type": {"enum": ["topic", "group", "cluster", "transactionalId"]},
                "name": {"type": "string", "minLength": 1},
                "patternType": {"enum": ["literal", "prefix"]},
            },
        },
        "operations": {
            "type": "array",
            "minItems": 1,
            "uniqueItems": True,
            "items": {"enum": ACL_OPERATIONS},
        },
    },
}
_METADATA = {
    "type": "object",
    "required": ["name", "labels"],
    "properties": {
        "name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$"},
        "labels": {"type": "object", "required": ["strimzi.io/cluster"]},
    },
}
STRIMZI_SCHEMAS: dict[str, dict[str, Any]] = {
    "KafkaTopic": {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": "kafka.strimzi.io/v1beta2"},
            "metadata": _METADATA,
            "spec": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "partitions": {"type": "integer", "minimum": 1},
                    "replicas": {"type": "integer", "minimum": 1, "maximum": 32767},
                    "config": {"type": "object", "additionalProperties": {"type": ["string", "integer"]}},
                    "topicName": {"type": "string"},
                },
            },
        },
    },
    "KafkaUser": {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": "kafka.strimzi.io/v1beta2"},
            "metadata": _METADATA,
            "spec": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "authentication": {
                        "type": "object",
                        "required": ["type"],
                        "properties": {"type": {"enum": ["tls", "tls-external", "scram-sha-512"]}},
                    },
                    "authorization": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["type", "acls"],
                        "properties": {"type": {"const": "simple"}, "acls": {"type": "array", "items": _ACL}},
                    },
                    "quotas": {  # Strimzi KafkaUserQuotas
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "producerByteRate": {"type": "integer", "minimum": 0},
                            "consumerByteRate": {"type": "integer", "minimum": 0},
                            "requestPercentage": {"type": "integer", "minimum": 0},
                            "controllerMutationRate": {"type": "number", "minimum": 0},
                        },
                    },
                },
            },
        },
    },
}


@pytest.mark.parametrize("kind", sorted(STRIMZI_SCHEMAS))
def test_strimzi_topics_and_users_are_structurally_valid(kind: str) -> None:
    validator = jsonschema.Draft7Validator(STRIMZI_SCHEMAS[kind])
    manifests = by_kind(kind)
    assert manifests
    for d in manifests:
        errors = [f"{'/'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(d)]
        assert not errors, f"{kind} {d['metadata']['name']}: {errors}"
    broken = json.loads(json.dumps(manifests[0]))
    broken["spec"]["partitionz"] = 3
    assert list(validator.iter_errors(broken))


def test_kafka_cluster_is_kraft_with_node_pools() -> None:
    (kafka,) = by_kind("Kafka")
    cluster = kafka["metadata"]["name"]
    assert kafka["apiVersion"] == "kafka.strimzi.io/v1beta2"
    assert kafka["metadata"]["annotations"] == {
        "strimzi.io/node-pools": "enabled",
        "strimzi.io/kraft": "enabled",
    }
    assert "zookeeper" not in kafka["spec"]
    spec = kafka["spec"]["kafka"]
    assert set(spec) <= {"version", "metadataVersion", "listeners", "authorization", "config"}
    assert spec["authorization"] == {"type": "simple"}
    for listener in spec["listeners"]:
        assert set(listener) <= {"name", "port", "type", "tls", "authentication", "configuration"}
        assert listener["tls"] is True and listener["authentication"] == {"type": "scram-sha-512"}
        assert re.fullmatch(r"[a-z0-9]{1,11}", listener["name"])
    assert set(kafka["spec"]["entityOperator"]) == {"topicOperator", "userOperator"}
    pools = by_kind("KafkaNodePool")
    assert {p["metadata"]["labels"]["strimzi.io/cluster"] for p in pools} == {cluster}
    roles = {r for p in pools for r in p["spec"]["roles"]}
    assert roles == {"controller", "broker"}
    for pool in pools:
        assert set(pool["spec"]) <= {"replicas", "roles", "storage", "resources", "jvmOptions", "template"}
        assert pool["spec"]["replicas"] >= 3
        assert pool["spec"]["storage"]["type"] in {"ephemeral", "persistent-claim", "jbod"}
    brokers = sum(p["spec"]["replicas"] for p in pools if "broker" in p["spec"]["roles"])
    config = spec["config"]
    assert config["min.insync.replicas"] < config["default.replication.factor"] <= brokers
    for d in by_kind("KafkaTopic") + by_kind("KafkaUser"):
        assert d["metadata"]["labels"]["strimzi.io/cluster"] == cluster
    assert max(t["spec"]["replicas"] for t in by_kind("KafkaTopic")) <= brokers


def test_workers_connect_as_their_users_and_are_probed_on_the_metrics_port() -> None:
    (config,) = by_kind("ConfigMap")
    (kafka,) = by_kind("Kafka")
    scram = next(x for x in kafka["spec"]["kafka"]["listeners"] if x["type"] == "internal")
    assert (
        config["data"]["KETENBUS_BOOTSTRAP"] == f"{kafka['metadata']['name']}-kafka-bootstrap:{scram['port']}"
    )
    assert config["data"]["KETENBUS_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert config["data"]["KETENBUS_SASL_MECHANISM"] == "SCRAM-SHA-512"
    users = {u["metadata"]["name"] for u in by_kind("KafkaUser")}
    deployments = {d["metadata"]["name"]: d for d in by_kind("Deployment")}
    assert set(deployments) == {"ketenbus-router", "ketenbus-timers"}
    for role in deploy.ROLES:
        d = deployments[f"ketenbus-{role}"]
        pod = d["spec"]["template"]
        assert d["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
        (container,) = pod["spec"]["containers"]
        args = container["args"]
        assert args[:3] == ["up", "--roles", role]
        port = int(args[args.index("--metrics-port") + 1])
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports["metrics"] == port == int(config["data"]["KETENBUS_METRICS_PORT"])
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            assert container[probe]["httpGet"] == {"path": "/metrics", "port": "metrics"}
        env = {e["name"]: e for e in container["env"]}
        assert env["KETENBUS_SASL_USERNAME"]["value"] == f"ketenbus-{role}" in users
        assert env["KETENBUS_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == f"ketenbus-{role}"
        ca = next(v for v in pod["spec"]["volumes"] if v["name"] == "cluster-ca")
        assert ca["secret"]["secretName"] == f"{kafka['metadata']['name']}-cluster-ca-cert"


def test_service_monitor_finds_the_workers_as_job_ketenbus() -> None:
    (service,) = by_kind("Service")
    (monitor,) = by_kind("ServiceMonitor")
    labels = service["metadata"]["labels"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert labels[monitor["spec"]["jobLabel"]] == "ketenbus"  # the job the alert rules expect
    assert 'up{job="ketenbus"}' in RULES.read_text()
    assert {e["port"] for e in monitor["spec"]["endpoints"]} <= {p["name"] for p in service["spec"]["ports"]}
    for d in by_kind("Deployment"):
        assert service["spec"]["selector"].items() <= d["spec"]["template"]["metadata"]["labels"].items()


def test_kustomization_lists_every_manifest() -> None:
    (kustomization,) = by_kind("Kustomization")
    listed = set(kustomization["resources"])
    assert listed == {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}


def test_every_partner_is_throttled_by_a_quota() -> None:
    from streams.deploy import render_users

    for user in render_users():
        if user["metadata"]["labels"]["app.kubernetes.io/component"] == "partner":
            assert user["spec"]["quotas"]["producerByteRate"] > 0, user["metadata"]["name"]
