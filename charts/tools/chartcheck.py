#!/usr/bin/env python3
"""Helpers of charts/check.sh (run by it; needs PyYAML, which kubernetes-validate brings).

  split  RENDERED OUTDIR NAME   core kinds -> OUTDIR/NAME.core.yaml, CRD kinds -> OUTDIR/NAME.crds.json
  assert RENDERED NAME          chart-specific checks of one rendered manifest set
  env    REPO CHART             the chart's OUTBOXD_* variables == the ones the binary reads
  docs   CHART SHOP_RENDERED (--check | --update)
                                README.md: values table from values.yaml `# --` comments, and the
                                sidecar example's `helm template` output
"""

import json
import re
import sys
from pathlib import Path

import yaml

CRD_GROUPS = ("monitoring.coreos.com/",)


def load_docs(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


# --------------------------------------------------------------------------------------- split


def cmd_split(rendered, outdir, name):
    docs = load_docs(rendered)
    core = [d for d in docs if not d["apiVersion"].startswith(CRD_GROUPS)]
    crds = [d for d in docs if d["apiVersion"].startswith(CRD_GROUPS)]
    out = Path(outdir)
    with open(out / f"{name}.core.yaml", "w") as f:
        yaml.safe_dump_all(core, f, sort_keys=False)
    with open(out / f"{name}.crds.json", "w") as f:
        json.dump(crds, f)
    print(f"{len(core)} core objects, {len(crds)} Prometheus Operator objects")


# -------------------------------------------------------------------------------------- assert

# humantime units, in milliseconds (an independent re-implementation of the chart's parser)
UNITS_MS = {
    **dict.fromkeys(["ms", "msec", "millis"], 1),
    **dict.fromkeys(["s", "sec", "secs", "second", "seconds"], 1000),
    **dict.fromkeys(["m", "min", "mins", "minute", "minutes"], 60_000),
    **dict.fromkeys(["h", "hr", "hrs", "hour", "hours"], 3_600_000),
    **dict.fromkeys(["d", "day", "days"], 86_400_000),
    **dict.fromkeys(["w", "week", "weeks"], 604_800_000),
}


def duration_seconds(text):
    parts = re.findall(r"(\d+)\s*([a-zA-Z]+)", text)
    if not parts or re.sub(r"(\d+)\s*([a-zA-Z]+)|\s", "", text):
        raise ValueError(f"not a duration: {text!r}")
    ms = sum(int(n) * UNITS_MS[u] for n, u in parts)
    return -(-ms // 1000)


class Failures:
    def __init__(self, name):
        self.name, self.items = name, []

    def check(self, cond, message):
        if not cond:
            self.items.append(message)


def pod_specs(docs):
    """(owner, pod spec, pod metadata) of every Deployment and Job."""
    for d in docs:
        if d["kind"] in ("Deployment", "Job"):
            tpl = d["spec"]["template"]
            yield d, tpl["spec"], tpl["metadata"]


def matches(selector, labels):
    return all(labels.get(k) == v for k, v in selector.items())


def cmd_assert(rendered, name):
    docs = load_docs(rendered)
    f = Failures(name)
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    cms = [c for c in by_kind.get("ConfigMap", []) if "OUTBOXD_LISTEN" in c.get("data", {})]
    f.check(len(cms) == 1, "exactly one outboxd ConfigMap")
    if not cms:
        return report(f)
    env = cms[0]["data"]
    for key, value in env.items():
        f.check(isinstance(value, str), f"ConfigMap {key} is a string")
    listen = env["OUTBOXD_LISTEN"]
    port = int(listen.rsplit(":", 1)[1])
    loopback = listen.startswith("127.") or listen.startswith("[::1]:")
    grace = duration_seconds(env.get("OUTBOXD_SHUTDOWN_GRACE", "30s"))

    outboxd_pods = 0
    for owner, spec, meta in pod_specs(docs):
        f.check(spec.get("automountServiceAccountToken") is False,
                f"{owner['kind']} {owner['metadata']['name']}: no service account token")
        native = [i for i in spec.get("initContainers", []) if i.get("restartPolicy") == "Always"]
        for c in spec["containers"] + native:
            is_outboxd = c.get("args") in (["run"], ["migrate"])
            if not is_outboxd:
                continue
            where = f"{owner['kind']} {owner['metadata']['name']} container {c['name']}"
            sc = c.get("securityContext", {})
            f.check(sc.get("runAsNonRoot") is True, f"{where}: runAsNonRoot")
            f.check(sc.get("readOnlyRootFilesystem") is True, f"{where}: readOnlyRootFilesystem")
            f.check(sc.get("allowPrivilegeEscalation") is False, f"{where}: allowPrivilegeEscalation false")
            f.check("ALL" in sc.get("capabilities", {}).get("drop", []), f"{where}: drop ALL capabilities")
            f.check(sc.get("seccompProfile", {}).get("type") == "RuntimeDefault", f"{where}: seccomp RuntimeDefault")
            res = c.get("resources", {})
            f.check(res.get("requests", {}).get("memory") and res.get("limits", {}).get("memory"),
                    f"{where}: memory request and limit")
            envs = {e["name"]: e for e in c.get("env", [])}
            f.check("secretKeyRef" in envs.get("DATABASE_URL", {}).get("valueFrom", {}),
                    f"{where}: DATABASE_URL from a Secret")
            if c["args"] == ["migrate"]:
                ann = owner["metadata"].get("annotations", {})
                f.check(ann.get("helm.sh/hook") == "pre-install,pre-upgrade", f"{where}: pre-install,pre-upgrade hook")
                f.check(spec.get("restartPolicy") == "Never", f"{where}: restartPolicy Never")
                # Pre-install hooks run before the release's ordinary objects exist: a Secret the
                # chart renders must itself be an earlier hook.
                secret = envs["DATABASE_URL"]["valueFrom"]["secretKeyRef"]["name"]
                for s in by_kind.get("Secret", []):
                    if s["metadata"]["name"] != secret:
                        continue
                    sann = s["metadata"].get("annotations", {})
                    f.check(sann.get("helm.sh/hook") == ann.get("helm.sh/hook")
                            and int(sann.get("helm.sh/hook-weight", 0)) < int(ann.get("helm.sh/hook-weight", 0)),
                            f"{where}: its Secret {secret} is created by an earlier hook")
                f.check(not spec.get("serviceAccountName")
                        or spec["serviceAccountName"] not in [a["metadata"]["name"] for a in by_kind.get("ServiceAccount", [])],
                        f"{where}: does not use the chart's ServiceAccount (created after pre-install hooks)")
                continue
            outboxd_pods += 1
            f.check({"configMapRef": {"name": cms[0]["metadata"]["name"]}} in c.get("envFrom", []),
                    f"{where}: envFrom the outboxd ConfigMap")
            f.check(spec.get("terminationGracePeriodSeconds", 30) > grace,
                    f"{where}: terminationGracePeriodSeconds {spec.get('terminationGracePeriodSeconds')} > shutdown grace {grace}s")
            f.check(any(k.startswith("checksum/outboxd-config") for k in meta.get("annotations", {})),
                    f"{where}: config checksum annotation on the pod")
            if loopback:
                f.check("livenessProbe" not in c and "ports" not in c, f"{where}: no probes/ports on loopback")
                continue
            f.check("secretKeyRef" in envs.get("OUTBOXD_ADMIN_TOKEN", {}).get("valueFrom", {}),
                    f"{where}: OUTBOXD_ADMIN_TOKEN from a Secret (listen {listen} is beyond loopback)")
            ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
            f.check(ports.get("outboxd-http") == port, f"{where}: containerPort outboxd-http = {port}")
            lp = c.get("livenessProbe", {}).get("httpGet", {})
            f.check(lp == {"path": "/healthz", "port": "outboxd-http"}, f"{where}: liveness GET /healthz")
            sp = c.get("startupProbe", {}).get("httpGet", {})
            f.check(sp == {"path": "/healthz", "port": "outboxd-http"}, f"{where}: startup probe GET /healthz")
            if owner["kind"] == "Deployment" and owner["metadata"]["name"] == cms[0]["metadata"]["name"]:
                rp = c.get("readinessProbe", {})
                f.check(rp.get("httpGet") == {"path": "/readyz", "port": "outboxd-http"}, f"{where}: readiness GET /readyz")
                f.check(rp.get("timeoutSeconds", 1) > 5, f"{where}: readiness timeout above /readyz's 5 s")
    f.check(outboxd_pods >= 1 or name.startswith("sidecar"), "an outboxd container is rendered")
    if "native" in name:
        f.check(any(i.get("args") == ["run"] and i.get("restartPolicy") == "Always"
                    for _, spec, _ in pod_specs(docs) for i in spec.get("initContainers", [])),
                "native sidecar: outboxd is an init container with restartPolicy Always")
    tests = [p for p in by_kind.get("Pod", []) if p["metadata"].get("annotations", {}).get("helm.sh/hook") == "test"]
    for t in tests:
        cmd = " ".join(t["spec"]["containers"][0].get("command", []))
        f.check(cmd.endswith("/readyz"), "helm test Pod calls /readyz")
        for svc in by_kind.get("Service", []):
            f.check(not matches(svc["spec"]["selector"], t["metadata"]["labels"]), "Service does not select the test Pod")
    admin_services = [s for s in by_kind.get("Service", [])
                      if s["metadata"].get("labels", {}).get("app.kubernetes.io/component") != "inbound"]
    f.check(bool(tests) == (bool(admin_services) and not name.startswith("examples")),
            "a helm test Pod exactly when there is an outboxd Service")

    deployments = [d for d in by_kind.get("Deployment", []) if d["metadata"]["name"] == cms[0]["metadata"]["name"]]
    jobs = by_kind.get("Job", [])
    for dep in deployments:
        labels = dep["spec"]["template"]["metadata"]["labels"]
        f.check(matches(dep["spec"]["selector"]["matchLabels"], labels), "Deployment selector matches its pods")
        hpa = by_kind.get("HorizontalPodAutoscaler", [])
        replicas = hpa[0]["spec"]["minReplicas"] if hpa else dep["spec"].get("replicas", 1)
        f.check(not hpa or "replicas" not in dep["spec"], "no fixed replicas with an HPA")
        pdbs = by_kind.get("PodDisruptionBudget", [])
        f.check(bool(pdbs) == (replicas > 1), f"a PodDisruptionBudget exactly when replicas ({replicas}) > 1")
        for pdb in pdbs:
            f.check(matches(pdb["spec"]["selector"]["matchLabels"], labels), "PDB selects the Deployment's pods")
        for svc in by_kind.get("Service", []):
            f.check(matches(svc["spec"]["selector"], labels), "Service selects the Deployment's pods")
            for job in jobs:
                f.check(not matches(svc["spec"]["selector"], job["spec"]["template"]["metadata"]["labels"]),
                        "Service does not select the migration Job's pod")
        f.check(bool(admin_services) != loopback, "an admin Service exactly when listening beyond loopback")
        for sm in by_kind.get("ServiceMonitor", []):
            svc_ports = [p["name"] for s in by_kind.get("Service", []) for p in s["spec"]["ports"]]
            for ep in sm["spec"]["endpoints"]:
                f.check(ep["port"] in svc_ports and ep["path"] == "/metrics", "ServiceMonitor scrapes a Service port's /metrics")
    for pm in by_kind.get("PodMonitor", []):
        for ep in pm["spec"]["podMetricsEndpoints"]:
            f.check(ep["port"] == "outboxd-http" and ep["path"] == "/metrics", "PodMonitor scrapes outboxd-http /metrics")
    check_inbound(f, env, by_kind, admin_services, deployments)
    for sec in by_kind.get("Secret", []):
        f.check(sec.get("type") == "Opaque" and "stringData" not in sec, "Secrets are Opaque with base64 data")
    return report(f)


def check_inbound(f, env, by_kind, admin_services, deployments):
    """The public inbound listener (config.inboundListen): its own port, its own Service, an
    Ingress that routes /in/ only; the admin Service never exposes it."""
    listen = env.get("OUTBOXD_INBOUND_LISTEN", "")
    reachable = bool(listen) and not (listen.startswith("127.") or listen.startswith("[::1]:"))
    inbound_services = [s for s in by_kind.get("Service", []) if s not in admin_services]
    for svc in admin_services:
        f.check(all(p.get("targetPort") != "outboxd-inbound" for p in svc["spec"]["ports"]),
                "the admin Service does not expose the inbound port")
    for ingress in by_kind.get("Ingress", []):
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                f.check(path["path"] == "/in/" and path["pathType"] == "Prefix",
                        "the inbound Ingress routes the prefix /in/ only")
                f.check(path["backend"]["service"]["name"] in [s["metadata"]["name"] for s in inbound_services],
                        "the inbound Ingress points at the inbound Service")
    if not deployments:
        f.check(not inbound_services and not by_kind.get("Ingress"), "no inbound Service without a Deployment")
        return
    f.check(bool(inbound_services) == reachable,
            f"an inbound Service exactly when config.inboundListen ({listen or 'off'}) is beyond loopback")
    if not reachable:
        return
    port = int(listen.rsplit(":", 1)[1])
    for svc in inbound_services:
        ports = svc["spec"]["ports"]
        f.check(len(ports) == 1 and ports[0]["targetPort"] == "outboxd-inbound",
                "the inbound Service has exactly the inbound port")
    for dep in deployments:
        for c in dep["spec"]["template"]["spec"]["containers"]:
            if c.get("args") != ["run"]:
                continue
            ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
            f.check(ports.get("outboxd-inbound") == port, f"containerPort outboxd-inbound = {port}")
    for np in by_kind.get("NetworkPolicy", []):
        allowed = [p["port"] for r in np["spec"].get("ingress", []) for p in r.get("ports", [])]
        f.check(port in allowed, f"the NetworkPolicy admits the inbound port {port}")


def report(f):
    if f.items:
        for m in f.items:
            print(f"  FAIL {f.name}: {m}")
        return 1
    print(f"  ok   {f.name}: chart assertions")
    return 0


# ----------------------------------------------------------------------------------------- env

CODE_ENV = re.compile(r'(?:\benv\s*=\s*|env::var(?:_os)?\(\s*|try_from_env\(\s*)"(OUTBOXD_[A-Z0-9_]+|DATABASE_URL)"')


def cmd_env(repo, chart):
    repo, chart = Path(repo), Path(chart)
    src = repo / "src"
    if not src.is_dir():
        print("  skip: no src/ next to the chart (checked outside the repository)")
        return 0
    code = set()
    for p in src.rglob("*.rs"):
        if "bin" in p.relative_to(src).parts[:1]:
            continue  # benchmark and chaos tools have their own knobs
        code |= set(CODE_ENV.findall(p.read_text()))
    # Settings the demo reads to decide its own defaults are not settings of `outboxd run`.
    helpers = (chart / "templates" / "_helpers.tpl").read_text()
    block = re.search(r'define "outboxd.configEnvNames" -}}(.*?){{- end }}', helpers, re.S).group(1)
    chart_vars = set(re.findall(r"OUTBOXD_[A-Z0-9_]+", block)) | {"OUTBOXD_ADMIN_TOKEN", "DATABASE_URL",
                                                                              "OUTBOXD_LISTEN_DATABASE_URL",
                                                                              "OUTBOXD_PORTAL_KEY"}
    missing = sorted(code - chart_vars)
    unknown = sorted(chart_vars - code)
    rc = 0
    if missing:
        print(f"  FAIL the binary reads {', '.join(missing)}, which the chart cannot set: add them to "
              "config in values.yaml, values.schema.json and outboxd.configEnvNames in _helpers.tpl")
        rc = 1
    if unknown:
        print(f"  FAIL the chart renders {', '.join(unknown)}, which the binary does not read")
        rc = 1
    readme = repo / "README.md"
    if readme.exists():
        table = [l for l in readme.read_text().splitlines() if l.startswith("| `")]
        documented = set(re.findall(r"`(OUTBOXD_[A-Z0-9_]+|DATABASE_URL)`", "\n".join(table)))
        for v in sorted(chart_vars - documented):
            print(f"  note: {v} is not in the README's configuration table")
        for v in sorted(documented - chart_vars):
            print(f"  note: the README documents {v}, which the chart does not set")
    if rc == 0:
        print(f"  ok   the chart sets all {len(code)} variables the binary reads (src/, without src/bin/)")
    return rc


# ---------------------------------------------------------------------------------------- docs

KEY = re.compile(r"^(\s*)([A-Za-z0-9_]+):(.*)$")


def values_rows(values_path):
    text = Path(values_path).read_text()
    data = yaml.safe_load(text)
    rows, stack, desc = [], [], None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("# -- "):
            desc = [stripped[5:]]
            continue
        if stripped.startswith("#"):
            if desc is not None and stripped != "#":
                desc.append(stripped[1:].strip())
            continue
        m = KEY.match(line)
        if not m:
            continue
        indent, key = len(m.group(1)), m.group(2)
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, key))
        if desc is None:
            continue
        path = [k for _, k in stack]
        value = data
        for k in path:
            value = value[k]
        rows.append((".".join(path), value, " ".join(desc)))
        desc = None
    return rows


def type_name(v):
    return {dict: "object", list: "list", bool: "bool", int: "int", float: "float",
            str: "string", type(None): "null"}[type(v)]


def fmt_default(v):
    s = json.dumps(v, separators=(", ", ": "))
    if len(s) > 60:
        s = "see values.yaml"
    return f"`{s}`".replace("|", "\\|")


def values_table(values_path):
    out = ["| key | type | default | description |", "|---|---|---|---|"]
    for key, value, desc in values_rows(values_path):
        desc = desc.replace("|", "\\|")
        out.append(f"| `{key}` | {type_name(value)} | {fmt_default(value)} | {desc} |")
    return "\n".join(out)


def sidecar_example(shop_rendered):
    docs = Path(shop_rendered).read_text().split("\n---\n")
    dep = [d for d in docs if "# Source: shop/templates/deployment.yaml" in d]
    return "```yaml\n---\n" + dep[0].strip() + "\n```"


def replace_section(text, marker, body):
    start, end = f"<!-- {marker}:start -->", f"<!-- {marker}:end -->"
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
    if not pattern.search(text):
        raise SystemExit(f"README.md lacks the {start} … {end} markers")
    return pattern.sub(lambda _: f"{start}\n{body}\n{end}", text)


def cmd_docs(chart, shop_rendered, mode):
    readme = Path(chart) / "README.md"
    old = readme.read_text()
    new = replace_section(old, "values-table", values_table(Path(chart) / "values.yaml"))
    new = replace_section(new, "sidecar-example-output", sidecar_example(shop_rendered))
    if new == old:
        print("  ok   README.md values table and sidecar example are up to date")
        return 0
    if mode == "--update":
        readme.write_text(new)
        print("  updated README.md")
        return 0
    print("  FAIL README.md is out of date with values.yaml or the sidecar example: run charts/check.sh --update-docs")
    return 1


# ---------------------------------------------------------------------------------------- binary


def cmd_binary(binary, rendered, name):
    """Starts `outboxd run` with the rendered ConfigMap as its environment and a database that
    refuses connections: exit code 1 (cannot connect) means every setting was accepted, exit
    code 2 means the binary rejected the chart's configuration. `run` waits for the database
    forever by default, so the check gives it OUTBOXD_STARTUP_TIMEOUT=1s."""
    import subprocess

    cms = [c for c in load_docs(rendered) if c["kind"] == "ConfigMap" and "OUTBOXD_LISTEN" in c.get("data", {})]
    env = {"PATH": "/usr/bin:/bin", **cms[0]["data"],
           "DATABASE_URL": "postgres://outboxd@127.0.0.1:1/outboxd",
           "OUTBOXD_ADMIN_TOKEN": "chart-check-token-0123456789abcdef",
           "OUTBOXD_STARTUP_TIMEOUT": "1s"}
    try:
        p = subprocess.run([binary, "run"], env=env, capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        print(f"  FAIL {name}: outboxd run did not stop within 30 s with an unreachable database")
        return 1
    last = (p.stderr.strip().splitlines() or [""])[-1]
    if p.returncode == 1:
        print(f"  ok   {name}: outboxd accepted the settings (then, as expected: {last[:60]}…)")
        return 0
    print(f"  FAIL {name}: outboxd run exited {p.returncode}: {last}")
    return 1


def main(argv):
    cmd, args = argv[1], argv[2:]
    if cmd == "binary":
        return cmd_binary(*args)
    if cmd == "split":
        return cmd_split(*args)
    if cmd == "assert":
        return cmd_assert(*args)
    if cmd == "env":
        return cmd_env(*args)
    if cmd == "docs":
        return cmd_docs(*args)
    raise SystemExit(__doc__)


if __name__ == "__main__":
    sys.exit(main(sys.argv) or 0)
