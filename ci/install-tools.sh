#!/usr/bin/env bash
# Build the chart's test tools into .tools/ (ignored by git). Each step is skipped when its
# output already exists, so running this again is cheap.
#   .tools/bin/helm            Helm v3 (the local pipeline runner calls this one)
#   .tools/bin/helm4           Helm v4
#   .tools/bin/helm-unittest   helm-unittest, run directly: helm-unittest charts/mlship
#   .tools/bin/kubeconform     kubeconform
#   .tools/bin/vegeta          vegeta, the constant-rate load generator of ci/bench_serving.py
#   .tools/k8s-schemas/        strict JSON schemas of the built-in kinds of two Kubernetes minors
# promtool comes from Debian's prometheus package.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
tools=$root/.tools

helm3_version=v3.21.4
helm4_version=v4.3.2
helm_unittest_version=v1.1.2 # pinned in ci/helm-unittest/go.mod
kubeconform_version=v0.8.0
vegeta_version=v12.13.0
# The Kubernetes releases whose OpenAPI spec becomes kubeconform's schemas: the current
# minor and the oldest minor the chart's kubeVersion constraint accepts.
kubernetes_versions=(1.37.2 1.34.4)

mkdir -p "$tools/bin"

go_install() {
    local dir=$1 package=$2 ldflags=${3:-}
    if [ -x "$tools/$dir/$(basename "${package%@*}")" ]; then
        return
    fi
    echo "building $package into .tools/$dir"
    GOBIN=$tools/$dir go install -ldflags "$ldflags" "$package"
}

# A plain `go install` of Helm v3 reports version "v3.21" and assumes Kubernetes 1.20, which
# the chart's kubeVersion rejects. Helm's own Makefile sets both through -ldflags, with the
# minor of the k8s.io/client-go it builds against (v0.36 for Helm v3.21). Helm v4 reads the
# client-go version at run time and needs only its own version.
kubernetes_ldflags="-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1"
kubernetes_ldflags+=" -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=36"
kubernetes_ldflags+=" -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1"
kubernetes_ldflags+=" -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=36"
helm3_ldflags="-X helm.sh/helm/v3/internal/version.version=$helm3_version $kubernetes_ldflags"
# Remove a Helm build that reports another version (for example one built without the flags above).
for pair in "helm3 $helm3_version" "helm4 $helm4_version"; do
    read -r dir version <<<"$pair"
    if [ -x "$tools/$dir/helm" ] &&
        [ "$("$tools/$dir/helm" version --template '{{.Version}}')" != "$version" ]; then
        rm -f "$tools/$dir/helm"
    fi
done
go_install helm3 "helm.sh/helm/v3/cmd/helm@$helm3_version" "$helm3_ldflags"
go_install helm4 "helm.sh/helm/v4/cmd/helm@$helm4_version" \
    "-X helm.sh/helm/v4/internal/version.version=$helm4_version"
go_install kubeconform "github.com/yannh/kubeconform/cmd/kubeconform@$kubeconform_version"
ln -sfn ../helm3/helm "$tools/bin/helm"
ln -sfn ../helm4/helm "$tools/bin/helm4"
go_install vegeta "github.com/tsenart/vegeta/v12@$vegeta_version" "-X main.Version=$vegeta_version"
ln -sfn ../kubeconform/kubeconform "$tools/bin/kubeconform"
ln -sfn ../vegeta/vegeta "$tools/bin/vegeta"

# helm-unittest's go.mod has a replace line, which `go install pkg@version` rejects, so it
# is built from a module of our own that repeats that line.
if [ ! -x "$tools/helm-unittest/helm-unittest" ]; then
    echo "building helm-unittest $helm_unittest_version into .tools/helm-unittest"
    # The same Kubernetes version flags as Helm v3 above (helm-unittest links Helm v3.21.3).
    (cd ci/helm-unittest && go build -ldflags "$kubernetes_ldflags" \
        -o "$tools/helm-unittest/helm-unittest" github.com/helm-unittest/helm-unittest/cmd/helm-unittest)
fi
ln -sfn ../helm-unittest/helm-unittest "$tools/bin/helm-unittest"

if ! command -v promtool >/dev/null 2>&1; then
    echo "installing promtool (Debian package prometheus)"
    apt-get install -y prometheus
fi

python=$(command -v python3)
for version in "${kubernetes_versions[@]}"; do
    out=$tools/k8s-schemas/v$version-standalone-strict
    if [ -f "$out/deployment-apps-v1.json" ]; then
        continue
    fi
    module_dir=$(go mod download -json "k8s.io/kubernetes@v$version" |
        "$python" -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')
    "$python" tests/chart/jsonschemas.py "$module_dir/api/openapi-spec/swagger.json" \
        "$tools/k8s-schemas" "$version"
done
