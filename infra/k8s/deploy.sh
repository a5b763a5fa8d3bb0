#!/bin/sh
# Roll out an overlay with its migrations first (docs/kubernetes.md, "Rolling out"):
#   infra/k8s/deploy.sh infra/k8s/overlays/production
# 1. delete the previous release's migration Jobs (a Job's pod template cannot change);
# 2. apply what the migrations need and the Jobs, nothing that runs the new version (the
#    namespace, ConfigMaps, NetworkPolicies, the media volume's claim: whatever is neither
#    api, worker, gateway nor storefront),
#    and wait until every Job completed:
#    the schema is migrated while the old pods still serve (expand/contract keeps them working);
# 3. apply everything: the Deployments roll one pod at a time (maxUnavailable 0), each new pod
#    taking traffic once /health/ready answers, each old one draining (preStop, then SIGTERM);
# 4. wait for every rollout.
# A failed Job stops here, before any pod of the new version starts.
set -eu
overlay=${1:?usage: deploy.sh <overlay directory>}
timeout=${MIGRATION_TIMEOUT:-900s}
namespace=$(kubectl kustomize "$overlay" | awk '$1 == "namespace:" { print $2; exit }')
migration=app.kubernetes.io/component=migration

kubectl -n "$namespace" delete job -l "$migration" --ignore-not-found --wait=true
kubectl apply -k "$overlay" -l "app.kubernetes.io/component notin (api,worker,gateway,storefront)"
kubectl -n "$namespace" wait --for=condition=complete job -l "$migration" --timeout="$timeout"
kubectl apply -k "$overlay"
for deployment in $(kubectl -n "$namespace" get deployment -o name); do
    kubectl -n "$namespace" rollout status "$deployment" --timeout=600s
done
